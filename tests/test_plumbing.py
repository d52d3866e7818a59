"""bidsnet_lib.plumbing: messages, validators, image files, the atomic writer, devices, photos, weights."""

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib import plumbing
from bidsnet_lib.plumbing import (
    atomic_save,
    atomic_write,
    check_int,
    check_positive_int,
    fetch_weights,
    got_expected,
    image_files,
    read_photo,
    resolve_device,
    save_image,
    stale_temps,
)


def test_imports_nothing_from_the_library_and_no_torch_at_import():
    tree = ast.parse(Path(plumbing.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("bidsnet_lib")]
    code = "import sys, bidsnet_lib.plumbing; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_one_phrasing_and_the_validators():
    assert got_expected("size", 0, "an int >= 32") == "size: got 0, expected an int >= 32"
    assert check_int("n", 5, 1, 9) == 5
    with pytest.raises(ValueError, match="^n: got 10, expected an int from 1 to 9$"):
        check_int("n", 10, 1, 9)
    with pytest.raises(ValueError, match="^n: got -1, expected an int >= 0$"):
        check_int("n", -1, 0)
    with pytest.raises(TypeError, match="^n: got True, expected an int$"):
        check_int("n", True)
    assert check_positive_int("w", 3) == 3
    for bad in (0, 2.0, True, "8"):
        with pytest.raises(ValueError, match="^w: got .*, expected a positive int$"):
            check_positive_int("w", bad)


# "x must be ..., got ..." and "x: got ...; expected ...", the two phrasings the library had.
OLD_PHRASING = re.compile(r"\bmust\b.*\bgot\b|\bgot\b.*; expected", re.S)


def raise_messages(source: str) -> list[tuple[int, str]]:
    """(line, message) of every ``raise X("...")`` with a literal message; f-string fields read {}."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            message = node.exc.args[0]
            if isinstance(message, ast.JoinedStr):  # implicit concatenation across lines joins here too
                found.append((node.lineno, "".join(
                    v.value if isinstance(v, ast.Constant) else "{}" for v in message.values)))
            elif isinstance(message, ast.Constant) and isinstance(message.value, str):
                found.append((node.lineno, message.value))
    return found


def test_the_old_phrasings_are_found_across_lines():
    source = (
        'raise ValueError(f"size must be an int >= 1, got {size!r}")\n'
        'raise TypeError(\n    f"model: got {type(m).__name__}; "\n    "expected a module")\n'
        'raise ValueError(f"size: got {size!r}, expected an int >= 1")\n'
        'raise ValueError(got_expected("size", size, "an int that must be >= 1"))\n'
    )
    old = [line for line, text in raise_messages(source) if OLD_PHRASING.search(text)]
    assert old == [1, 2]


def test_library_errors_use_the_one_phrasing():
    library = Path(plumbing.__file__).parent
    old = []
    for path in sorted(library.rglob("*.py")):
        name = path.relative_to(library).as_posix()
        old += [f"bidsnet_lib/{name}:{line}: {text}" for line, text in raise_messages(path.read_text())
                if OLD_PHRASING.search(text)]
    assert not old, "write these as `name: got X, expected Y` (plumbing.got_expected):\n" + "\n".join(old)


def test_image_files_skip_hidden_and_foreign_files_and_take_every_extension(tmp_path):
    for name in ("a.PNG", "b.bmp", "c.tiff", "d.webp", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.jpg").write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.PNG", "b.bmp", "c.tiff", "d.webp"]
    assert [p.name for p in image_files(tmp_path, recursive=True)][-1] == "e.jpg"


def test_atomic_write_text_bytes_and_streams_with_normal_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        text = atomic_write(tmp_path / "new" / "a.txt", "héllo")
        data = atomic_write(tmp_path / "b.bin", b"\x00\x01")
        streamed = atomic_write(tmp_path / "c.bin", lambda f: f.write(b"abc"))
    finally:
        os.umask(old)
    assert text.read_text(encoding="utf-8") == "héllo" and data.read_bytes() == b"\x00\x01"
    assert streamed.read_bytes() == b"abc"
    assert stat.S_IMODE(text.stat().st_mode) == 0o640  # what open() gives under this umask, not 0600
    os.chmod(text, 0o600)
    atomic_write(text, "again")
    assert stat.S_IMODE(text.stat().st_mode) == 0o600  # a rewrite keeps the file's own mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "c.bin", "new"]


def test_atomic_write_leaves_the_old_file_on_failure_and_no_temp(tmp_path):
    path = atomic_write(tmp_path / "a.txt", "old")

    def fails(stream):
        stream.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fails)
    assert path.read_text() == "old" and not stale_temps(path)
    with pytest.raises(IsADirectoryError, match="expected a file to write, not a folder"):
        atomic_write(tmp_path, "x")
    with pytest.raises(TypeError, match="content: got 'int'"):
        atomic_write(path, 3)


def test_temp_names_are_unique_so_two_writers_never_collide(tmp_path):
    names = {plumbing.temp_name(tmp_path / "a.txt") for _ in range(100)}
    assert len(names) == 100 and all(n.name.startswith(".a.txt.") and n.suffix == ".tmp" for n in names)
    leftover = plumbing.temp_name(tmp_path / "a.txt")
    leftover.write_text("killed mid-write")
    assert stale_temps(tmp_path / "a.txt") == [leftover]


def test_atomic_save_round_trips_tensors(tmp_path):
    path = atomic_save({"w": torch.arange(4)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(4))


def test_resolve_device_is_one_line_naming_what_exists():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="^--device: got 'gpu', expected a device name; available here: cpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^--device: got 'cuda', expected a device this machine has: cpu$"):
            resolve_device("cuda")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "I", "F", "1"])
def test_read_photo_every_mode_gives_rgb_on_white(mode):
    level = np.tile(np.linspace(0, 1, 16), (8, 1))  # (8, 16)
    alpha = np.where(np.arange(16) < 8, 255, 0).astype(np.uint8)[None].repeat(8, 0)
    grey8 = np.rint(level * 255).astype(np.uint8)
    pil = {"L": Image.fromarray(grey8), "RGB": Image.fromarray(np.dstack([grey8] * 3)),
           "RGBA": Image.fromarray(np.dstack([grey8] * 3 + [alpha])),
           "LA": Image.fromarray(np.dstack([grey8, alpha]), "LA"),
           "P": Image.fromarray(np.dstack([grey8] * 3)).convert("P", palette=Image.Palette.ADAPTIVE),
           "I;16": Image.fromarray(np.rint(level * 65535).astype(np.uint16)),
           "I": Image.fromarray(np.rint(level * 65535).astype(np.int32), "I"),
           "F": Image.fromarray(level.astype(np.float32), "F"),
           "1": Image.fromarray(grey8 > 127)}[mode]
    photo = read_photo(pil)
    assert photo.rgb.shape == (8, 16, 3) and photo.rgb.dtype == np.uint8
    expected = np.where(alpha[..., None] == 255, grey8[..., None], 255) if mode in ("RGBA", "LA") else \
        (np.where(grey8 > 127, 255, 0)[..., None] if mode == "1" else grey8[..., None])
    atol = 8 if mode == "P" else 1  # a palette quantises
    np.testing.assert_allclose(photo.rgb.astype(int), np.broadcast_to(expected, (8, 16, 3)), atol=atol)
    assert photo.grey == (mode in ("L", "LA", "I;16", "I", "F", "1"))
    assert (photo.alpha is not None) == (mode in ("RGBA", "LA"))


def test_with_rgb_writes_holes_only_in_the_photo_own_form():
    grey16 = read_photo(Image.fromarray(np.full((4, 4), 1000, np.uint16)))
    where = np.zeros((4, 4), bool)
    where[1, 1] = True
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    out = grey16.with_rgb(red, where)
    assert out.dtype == np.uint16 and out.shape == (4, 4)
    assert out[1, 1] == round(0.299 * 65535) and out[0, 0] == 1000
    rgba = read_photo(np.dstack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 9, np.uint8)]))
    out = rgba.with_rgb(red, where)
    assert tuple(out[1, 1]) == (255, 0, 0, 9) and tuple(out[0, 0]) == (0, 0, 0, 9)


def test_read_photo_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="image: got .*, expected an image file, not a folder"):
        read_photo(tmp_path)
    with pytest.raises(ValueError, match="its folder .* does not exist"):
        read_photo(tmp_path / "no" / "x.png")
    with pytest.raises(ValueError, match="mode F values"):
        read_photo(Image.fromarray(np.full((2, 2), np.nan, np.float32), "F"))
    with pytest.raises(ValueError, match="mode I values"):
        read_photo(Image.fromarray(np.full((2, 2), -5, np.int32), "I"))


def test_save_image_formats(tmp_path):
    grey16 = np.full((4, 4), 40000, np.uint16)
    assert Image.open(save_image(grey16, tmp_path / "a.png")).mode.startswith("I;16")
    assert np.asarray(Image.open(save_image(grey16, tmp_path / "a.bmp"))).max() == 40000 // 257
    with pytest.raises(ValueError, match="keeps transparency"):
        save_image(np.zeros((4, 4, 4), np.uint8), tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="output: got .*a.gif', expected a file ending in one of"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.gif")


def test_fetch_weights_from_a_path_the_cache_or_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    with pytest.raises(FileNotFoundError, match=r"w.pth, which is not in torch.hub's cache and example.org "
                                                r"cannot be reached \(offline\?\)"):
        fetch_weights("w.pth", "https://example.org/w.pth", "Thing")
    torch.save({"a": torch.ones(1)}, tmp_path / "given.pth")
    state, source = fetch_weights("w.pth", "https://example.org/w.pth", "Thing", path=tmp_path / "given.pth")
    assert source == tmp_path / "given.pth" and torch.equal(state["a"], torch.ones(1))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save([1, 2], tmp_path / "hub" / "checkpoints" / "w.pth")
    with pytest.raises(ValueError, match="got 'list', expected a state dict"):
        fetch_weights("w.pth", "https://example.org/w.pth", "Thing")
