"""The wheel carries what a bare install needs: built, installed with --no-deps into a fresh venv
outside the repository (tools/bare_install.py says how the dev set stays reachable while the
editable install does not), it inpaints with its own checkpoint from any working directory."""

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from course_files import ROOT
from scripts import load_script

from bidsnet_lib.inference import SHIPPED_CHECKPOINT, Inpainter
from bidsnet_lib.masks import SHIPPED_MASKS, square_photo
from bidsnet_lib.plumbing import read_mask

bare_install = load_script("tools/bare_install.py")

MASK = "set1/30-40/000.png"
# Run by the bare install's python, from an empty folder: a photo, a shipped mask, the default model.
SCRIPT = f"""
import json, sys
import numpy as np
from skimage import data
import bidsnet_lib
from bidsnet_lib.inference import Inpainter
from bidsnet_lib.masks import SHIPPED_MASKS, square_photo
from bidsnet_lib.plumbing import read_mask

inpainter = Inpainter.from_checkpoint(device="cpu")
out = inpainter.inpaint(square_photo(data.chelsea(), 256), read_mask(SHIPPED_MASKS / {MASK!r}))
np.save("filled.npy", out)
print(json.dumps({{"package": bidsnet_lib.__file__, "prefix": sys.prefix, "label": inpainter.label}}))
"""


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """(wheel, python of a fresh venv with it installed)."""
    folder = tmp_path_factory.mktemp("bare")
    wheel = bare_install.build_wheel(folder / "wheel")
    return wheel, bare_install.make_venv(folder / "venv", wheel)


def bare_env() -> dict:
    """The environment minus anything that would put the checkout on the bare python's path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_wheel_holds_the_checkpoint_and_the_fixed_masks(bare):
    wheel, _ = bare
    package = ROOT / "bidsnet_lib"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        data = {rel: archive.read(f"bidsnet_lib/{rel}") for rel in
                [str(p.relative_to(package)) for p in [SHIPPED_CHECKPOINT, *SHIPPED_MASKS.rglob("*")]
                 if p.is_file()]}
    assert f"bidsnet_lib/{SHIPPED_CHECKPOINT.relative_to(package)}" in names
    assert "bidsnet_lib/checkpoints/MODEL_CARD.md" in names
    assert len([n for n in names if n.startswith("bidsnet_lib/eval_masks/") and n.endswith(".png")]) == len(
        list(SHIPPED_MASKS.rglob("*.png"))) > 0
    for rel, blob in data.items():
        assert blob == (package / rel).read_bytes(), rel
    assert not [n for n in names if n.startswith(("data/", "notebooks/", "tests/"))]


def test_bare_install_inpaints_with_the_shipped_checkpoint_from_anywhere(bare, tmp_path):
    _, python = bare
    result = subprocess.run([str(python), "-c", SCRIPT], cwd=tmp_path, env=bare_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    # The wheel's copy, not the checkout's (the dev venv's editable install is not reachable).
    assert Path(info["package"]).is_relative_to(info["prefix"]) and not Path(info["package"]).is_relative_to(ROOT)
    assert SHIPPED_CHECKPOINT.name in info["label"]
    from skimage import data

    photo, mask = square_photo(data.chelsea(), 256), read_mask(SHIPPED_MASKS / MASK)
    filled = np.load(tmp_path / "filled.npy")
    # The same trained weights as the checkout's: the same pixels, known ones untouched.
    np.testing.assert_array_equal(filled, Inpainter.from_checkpoint(device="cpu").inpaint(photo, mask))
    np.testing.assert_array_equal(filled[mask == 0], photo[mask == 0])
    assert (filled[mask == 1] != photo[mask == 1]).any()


def test_bare_install_command_needs_no_checkpoint_argument(bare, tmp_path):
    _, python = bare
    from PIL import Image
    from skimage import data

    Image.fromarray(square_photo(data.astronaut(), 128)).save(tmp_path / "photo.png")
    hole = np.zeros((128, 128), np.uint8)
    hole[40:80, 50:90] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    result = subprocess.run([str(python.parent / "bidsnet"), "inpaint", "photo.png", "mask.png", "-o", "filled.png"],
                            cwd=tmp_path, env=bare_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / "filled.png") as filled:
        assert filled.size == (128, 128)


def test_bare_install_reaches_the_dev_packages_not_the_editable_install(bare):
    _, python = bare
    probe = "import importlib.util, sys; print(importlib.util.find_spec('torch').origin); print(sys.prefix)"
    result = subprocess.run([str(python), "-c", probe], env=bare_env(), capture_output=True, text=True,
                            check=True, cwd=python.parent)
    torch_origin, prefix = result.stdout.split()
    assert Path(prefix) != Path(sys.prefix) and Path(torch_origin).is_relative_to(sys.prefix)


def test_bare_install_has_every_module_and_name_the_notebooks_import(bare, tmp_path):
    """`make test`'s site renders the checkout's nbval run (notebooks/conftest.py), so this is what
    keeps a notebook on Colab from meeting a module or name the wheel lacks (`make site` alone
    still runs them all there)."""
    import nbformat

    imports = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(notebook, 4).cells:
            if cell.cell_type == "code":
                source = "\n".join(line for line in cell.source.splitlines() if not line.startswith(("%", "!")))
                for node in ast.walk(ast.parse(source)):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bidsnet_lib"):
                        imports |= {(node.module, alias.name) for alias in node.names}
                    elif isinstance(node, ast.Import):
                        imports |= {(alias.name, None) for alias in node.names if alias.name.startswith("bidsnet_lib")}
    assert len(imports) > 40
    # What `from M import N` does: N is an attribute of M, or its submodule M.N.
    probe = "import importlib\n" + "".join(
        f"m = importlib.import_module({module!r})\n"
        + (f"hasattr(m, {name!r}) or importlib.import_module({module + '.' + (name or '')!r})\n" if name else "")
        for module, name in sorted(imports, key=str))
    _, python = bare
    result = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=bare_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
