"""bidsnet_lib.plumbing: messages, validators, image files, the atomic writer, devices, photos, masks,
downloads, weights."""

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
    DownloadError,
    atomic_move,
    atomic_save,
    atomic_write,
    check_choice,
    check_finite_float,
    check_fraction,
    check_int,
    check_positive_int,
    download_file,
    fetch_weights,
    got_expected,
    image_files,
    image_size,
    read_mask,
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
    assert check_int("limit", None, 1, optional=True) is None
    with pytest.raises(ValueError, match="^limit: got 0, expected None or an int >= 1$"):
        check_int("limit", 0, 1, optional=True)
    with pytest.raises(TypeError, match="^n: got 2.5, expected an int >= 0$"):  # the whole expectation
        check_int("n", 2.5, 0)


def test_the_float_and_choice_validators():
    assert check_finite_float("w", 2) == 2.0 and isinstance(check_finite_float("w", 2), float)
    for bad in (float("nan"), float("inf"), -1):
        with pytest.raises(ValueError, match=r"^w: got .*, expected a finite number >= 0$"):
            check_finite_float("w", bad, 0)
    with pytest.raises(TypeError, match="^w: got '1', expected a finite number$"):
        check_finite_float("w", "1")
    with pytest.raises(TypeError, match="^w: got True, expected a number in"):
        check_finite_float("w", True, 0, 1)
    with pytest.raises(ValueError, match=r"^share: got 0, expected a number in \(0, 1\)$"):
        check_finite_float("share", 0, 0, 1, low_open=True, high_open=True)
    assert check_fraction("p", 1) == 1.0
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"^p: got .*, expected a number in \(0.0, 1.0\]$"):
            check_fraction("p", bad)
    with pytest.raises(ValueError, match=r"^p: got 1.0, expected a number in \[0.0, 1.0\)$"):
        check_fraction("p", 1.0, low_open=False, high_open=True)
    assert check_choice("kind", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"^kind: got 'c', expected one of \['a', 'b'\]$"):
        check_choice("kind", "c", {"a": 1, "b": 2})
    with pytest.raises(ValueError, match=r"^kind: got \['a'\], expected one of"):
        check_choice("kind", ["a"], {"a": 1})  # unhashable: no key, and no TypeError


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


def test_a_file_named_near_the_name_limit_is_written(tmp_path):
    """#30.10: the temporary name added ~20 characters, so a 250-byte name failed (ENAMETOOLONG)."""
    long, other = tmp_path / ("a" * 246 + ".png"), tmp_path / ("a" * 245 + ".png")
    assert atomic_write(long, b"x").read_bytes() == b"x"
    leftover = plumbing.temp_name(long)
    assert len(leftover.name) <= plumbing.NAME_MAX
    leftover.write_bytes(b"killed mid-write")
    plumbing.temp_name(other).write_bytes(b"another file's")
    assert stale_temps(long) == [leftover]
    odd = tmp_path / "[x].txt"  # glob's special characters are names here
    plumbing.temp_name(odd).write_text("left")
    assert len(stale_temps(odd)) == 1


def test_atomic_write_check_may_refuse_the_new_content(tmp_path):
    path = atomic_write(tmp_path / "a.txt", "old")

    def refuse(temporary: Path):
        assert temporary.read_text() == "bad" and temporary.parent == tmp_path
        raise ValueError("not the right content")

    with pytest.raises(ValueError, match="not the right content"):
        atomic_write(path, "bad", check=refuse)
    assert path.read_text() == "old" and not stale_temps(path)


def test_atomic_move_puts_a_file_or_a_folder_in_place(tmp_path):
    (tmp_path / "src.txt").write_text("x")
    assert atomic_move(tmp_path / "src.txt", tmp_path / "deep" / "dst.txt").read_text() == "x"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "f").write_text("y")
    (tmp_path / "empty").mkdir()
    atomic_move(tmp_path / "folder", tmp_path / "empty")  # an empty folder is replaced
    assert (tmp_path / "empty" / "f").read_text() == "y" and not (tmp_path / "folder").exists()


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


# ----------------------------------------------------------------------------- the one photo opener
def test_read_photo_forms(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    grey = rgb[:, :, 0]
    Image.fromarray(rgb).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_photo(rgb).rgb, rgb)
    on_white = np.rint(rgb * (7 / 255) + 255 * (1 - 7 / 255)).astype(np.uint8)  # the one alpha rule
    np.testing.assert_array_equal(read_photo(rgba).rgb, on_white)
    np.testing.assert_array_equal(read_photo(grey).rgb, np.dstack([grey] * 3))
    np.testing.assert_array_equal(read_photo(grey[:, :, None]).rgb, np.dstack([grey] * 3))
    np.testing.assert_array_equal(read_photo(Image.fromarray(rgba)).rgb, on_white)
    np.testing.assert_array_equal(read_photo(tmp_path / "p.png").rgb, rgb)
    np.testing.assert_array_equal(read_photo(str(tmp_path / "p.png")).rgb, rgb)
    upload = (tmp_path / "p.png").read_bytes()  # a widget's upload: the file's bytes
    np.testing.assert_array_equal(read_photo(memoryview(upload)).rgb, rgb)


def test_read_photo_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="image dtype: got 'float64', expected uint8"):
        read_photo(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"image shape: got \(4, 4, 2\), expected \(H, W\)"):
        read_photo(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="image: got 'list', expected a uint8 numpy array"):
        read_photo([[1, 2]])
    with pytest.raises(ValueError, match="expected an image file; there is no file"):
        read_photo(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"^image: '.*notes.png' is not an image this program can read"):
        read_photo(tmp_path / "notes.png")
    with pytest.raises(ValueError, match=r"notes.png: not an image"):  # the path named once
        read_photo(tmp_path / "notes.png", str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match="^upload: its bytes are not an image"):
        read_photo(b"plain text", "upload")


def rotated_file(path: Path, shown: np.ndarray, orientation: int = 6) -> Path:
    """Save ``shown`` (H, W) or (H, W, 3) stored turned, with the EXIF tag that turns it back."""
    stored = np.rot90(shown, 1)  # EXIF 6: a viewer turns the stored pixels 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif)
    return path


def test_photos_follow_exif_and_draft_decodes_a_jpeg_smaller(tmp_path):
    shown = np.zeros((40, 64, 3), np.uint8)
    shown[:, :16] = 255  # a white band on the left, as shown
    path = rotated_file(tmp_path / "r.png", shown)
    assert image_size(path) == (64, 40)  # (width, height) as shown, from the header
    np.testing.assert_array_equal(read_photo(path).rgb, shown)
    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((256, 320, 3), 90, np.uint8)).save(big, quality=95)
    assert read_photo(big, draft=0.3).rgb.shape == (128, 160, 3)  # 1/2 keeps >= 0.3 of each side
    assert read_photo(big, draft=0.2).rgb.shape == (64, 80, 3)
    assert read_photo(big, draft=0.1).rgb.shape == (32, 40, 3)  # 1/8, the smallest JPEG scale
    assert read_photo(tmp_path / "r.png", draft=0.1).rgb.shape == (40, 64, 3)  # PNG: always whole
    with pytest.raises(ValueError, match="mask: 'no.png' is not an image"):
        image_size(Path("no.png"), "mask")


# ----------------------------------------------------------------------------- the one mask opener
def test_read_mask_forms_and_threshold(tmp_path):
    holes = np.zeros((12, 10), np.uint8)
    holes[3:8, 2:6] = 1
    np.testing.assert_array_equal(read_mask(holes), holes)  # 0/1
    np.testing.assert_array_equal(read_mask(holes * 255), holes)  # 0/255
    np.testing.assert_array_equal(read_mask(holes.astype(bool)), holes)
    np.testing.assert_array_equal(read_mask(holes.astype(np.int64)), holes)  # 0/1 of any int type
    np.testing.assert_array_equal(read_mask(holes.astype(np.float32)), holes)
    np.testing.assert_array_equal(read_mask(Image.fromarray(holes * 255)), holes)
    np.testing.assert_array_equal(read_mask(Image.fromarray(holes * 255).convert("1")), holes)
    np.testing.assert_array_equal(read_mask(np.dstack([holes * 255] * 3)), holes)
    Image.fromarray(holes * 255).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), holes)
    np.testing.assert_array_equal(read_mask((tmp_path / "m.png").read_bytes()), holes)
    Image.fromarray(holes).save(tmp_path / "m01.png")  # a file of 0 and 1: holes, not 1/255 grey
    np.testing.assert_array_equal(read_mask(tmp_path / "m01.png"), holes)
    Image.fromarray(holes.astype(np.uint16) * 65535).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png"), holes)
    # Anti-aliased grey: a hole above half of full scale; inverted, threshold moved.
    grey = np.array([[0, 127, 128, 255]], np.uint8)
    np.testing.assert_array_equal(read_mask(grey), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(read_mask(grey, invert=True), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(read_mask(grey, threshold=0.9), [[0, 0, 0, 1]])
    np.testing.assert_array_equal(read_mask(np.array([[0.2, 0.5, 0.51]])), [[0, 0, 1]])
    np.testing.assert_array_equal(read_mask(np.array([[0, 40000]], np.uint16)), [[0, 1]])
    rgba = np.dstack([grey, grey, grey, np.zeros_like(grey)])  # alpha ignored: the holes are the grey
    np.testing.assert_array_equal(read_mask(rgba), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(read_mask(Image.fromarray(rgba)), [[0, 0, 1, 1]])
    assert read_mask(grey).dtype == np.uint8


def test_read_mask_rejects_bad_input():
    red = np.zeros((4, 4, 3), np.uint8)
    red[:, :, 2] = 255
    with pytest.raises(ValueError, match="my.png: got colour channels that disagree at 16 pixels, expected a grey mask"):
        read_mask(red, "my.png")
    with pytest.raises(ValueError, match=r"threshold: got 1.0, expected a number in \(0.0, 1.0\)"):
        read_mask(red, threshold=1.0)
    with pytest.raises(ValueError, match=r"threshold: got 0, expected a number in \(0.0, 1.0\)"):
        read_mask(red, threshold=0)
    with pytest.raises(TypeError, match="mask: got dtype int64, expected a mask of bool, uint8, uint16 or float"):
        read_mask(np.full((4, 4), 3, np.int64))
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)"):
        read_mask(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(TypeError, match="mask: got 'list', expected a numpy array"):
        read_mask([[0, 1]])
    with pytest.raises(TypeError, match="mask: got 'float', expected a numpy array"):
        read_mask(3.0)


def test_read_mask_single_channel_and_bounds_of_full_scale():
    np.testing.assert_array_equal(read_mask(np.array([[[0], [255]]], np.uint8)), [[0, 1]])
    sixteen = np.array([[32767, 32768]], np.uint16)  # half of 65535 splits them
    np.testing.assert_array_equal(read_mask(sixteen), [[0, 1]])
    np.testing.assert_array_equal(read_mask(np.array([[0.0, 0.5, 1.0]])), [[0, 0, 1]])  # > threshold
    jpeg_noise = np.dstack([np.full((2, 2), 200, np.uint8), np.full((2, 2), 210, np.uint8),
                            np.full((2, 2), 190, np.uint8)])  # 20 of 255 apart: within 0.25
    np.testing.assert_array_equal(read_mask(jpeg_noise), np.ones((2, 2)))
    with pytest.raises(ValueError, match="got colour channels that disagree at 4 pixels"):
        read_mask(jpeg_noise, channel_tolerance=0.05)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(channel_tolerance=0), ValueError, r"channel_tolerance: got 0, expected a number in \(0.0, 1.0\]"),
    (dict(channel_tolerance="x"), TypeError, "channel_tolerance: got 'x', expected a number"),
    (dict(threshold=True), TypeError, "threshold: got True, expected a number"),
    (dict(threshold=-0.5), ValueError, r"threshold: got -0.5, expected a number in \(0.0, 1.0\)"),
])
def test_read_mask_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        read_mask(np.zeros((2, 2), np.uint8), **kwargs)


def test_read_mask_reads_png_jpeg_16_bit_and_non_ascii_paths(tmp_path):
    mask = np.zeros((40, 32), np.uint8)
    mask[:10] = 1
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(str(tmp_path / "m.png"), invert=True), 1 - mask)
    Image.fromarray(mask * 255).save(tmp_path / "maské ü.jpg", quality=95)
    assert read_mask(tmp_path / "maské ü.jpg").shape == (40, 32)
    assert (read_mask(tmp_path / "maské ü.jpg") != mask).mean() < 0.01
    Image.fromarray(mask.astype(np.uint16) * 65535).save(tmp_path / "m16.png")  # 16-bit PNG
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png"), mask)


def test_read_mask_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"mask: got '.*absent.png', expected an image file; there is no file"):
        read_mask(tmp_path / "absent.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"mask: '.*text.png' is not an image this program can read"):
        read_mask(tmp_path / "text.png")
    red = np.zeros((4, 4, 3), np.uint8)
    red[:, :, 2] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    with pytest.raises(ValueError, match="red.png: got colour channels that disagree at 16 pixels"):
        read_mask(tmp_path / "red.png", str(tmp_path / "red.png"))
    with pytest.raises(ValueError, match=r"threshold: got 2, expected a number in \(0.0, 1.0\)"):
        read_mask(tmp_path / "red.png", threshold=2)


@pytest.mark.parametrize("bad, got", [(np.nan, "1 NaN or infinite values"), (np.inf, "1 NaN or infinite values"),
                                      (-np.inf, "1 NaN or infinite values"), (3.0, r"values in \[0.0, 3.0\]"),
                                      (-0.5, r"values in \[-0.5, 0.0\]")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_masks_outside_0_1_or_not_finite_are_refused(bad, got, dtype):
    """NaN compares False with the threshold: it used to read as a known pixel, silently."""
    mask = np.zeros((4, 4), dtype)
    mask[1, 2] = bad
    with pytest.raises(ValueError, match=f"^hole: got {got}, expected a float mask in \\[0, 1\\]$"):
        read_mask(mask, "hole")
    if not np.isfinite(bad):  # a float TIFF: the decoder's own check refuses it
        with pytest.raises(ValueError, match="^mask: got 'mode F values"):
            read_mask(Image.fromarray(mask.astype(np.float32), "F"))


def test_read_mask_follows_exif_like_read_photo(tmp_path):
    shown = np.zeros((40, 64), np.uint8)
    shown[:8, :16] = 255  # a hole at the top left, as shown
    for suffix in (".png", ".jpg"):
        path = rotated_file(tmp_path / f"m{suffix}", shown)
        np.testing.assert_array_equal(read_mask(path), shown // 255)
        assert read_photo(path).rgb.shape[:2] == read_mask(path).shape == (40, 64)


# ----------------------------------------------------------------------------- the one downloader
def test_download_file_checks_its_checksum_and_leaves_nothing_on_failure(tmp_path):
    import hashlib

    source = tmp_path / "served.bin"
    source.write_bytes(b"weights" * 100)
    sha256, md5 = (hashlib.new(a, source.read_bytes()).hexdigest() for a in ("sha256", "md5"))
    got = download_file(source.as_uri(), tmp_path / "a" / "w.bin", "Thing", checksum=f"sha256:{sha256[:8]}",
                        progress=False)
    assert got.read_bytes() == source.read_bytes()
    assert download_file(source.as_uri(), tmp_path / "b.bin", "Thing", checksum=f"md5:{md5}", progress=False)
    with pytest.raises(DownloadError, match=r"^Thing: could not download file://.*served.bin \(a file with md5 "
                                            r"[0-9a-f]{32}, expected 0{32}: a partial or changed download\); "
                                            r"download .* and place it as .*c.bin, or ask$") as info:
        download_file(source.as_uri(), tmp_path / "c.bin", "Thing", checksum="md5:" + "0" * 32, progress=False,
                      alternative=", or ask")
    assert info.value.reason.startswith("a file with md5")
    assert not (tmp_path / "c.bin").exists() and not stale_temps(tmp_path / "c.bin")


def test_download_file_offline_and_missing(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    with pytest.raises(DownloadError, match=r"could not download file:///no/such.bin \(URLError: .*; offline\?\); "
                                            r"download file:///no/such.bin on a machine with internet"):
        download_file("file:///no/such.bin", tmp_path / "x.bin", "Thing", progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written

    def missing(url, timeout):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", missing)
    assert download_file("https://example.org/x.json", tmp_path / "x.json", "Thing", missing_ok=True) is None
    with pytest.raises(DownloadError, match="HTTP Error 404: Not Found"):
        download_file("https://example.org/x.json", tmp_path / "x.json", "Thing")
    assert list(tmp_path.iterdir()) == []


def test_fetch_weights_downloads_through_the_one_downloader_and_checks_the_name_s_hash(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: True)
    torch.save({"a": torch.ones(1)}, tmp_path / "w.pth")
    prefix = hashlib.sha256((tmp_path / "w.pth").read_bytes()).hexdigest()[:8]
    (tmp_path / f"w-{prefix}.pth").write_bytes((tmp_path / "w.pth").read_bytes())
    state, cached = fetch_weights(f"w-{prefix}.pth", (tmp_path / f"w-{prefix}.pth").as_uri(), "Thing")
    assert cached == tmp_path / "hub" / "checkpoints" / f"w-{prefix}.pth" and torch.equal(state["a"], torch.ones(1))
    (tmp_path / "w-00000000.pth").write_bytes((tmp_path / "w.pth").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"the download failed \(a file with sha256 .*, expected 00000000"):
        fetch_weights("w-00000000.pth", (tmp_path / "w-00000000.pth").as_uri(), "Thing")
    assert not (tmp_path / "hub" / "checkpoints" / "w-00000000.pth").exists()
