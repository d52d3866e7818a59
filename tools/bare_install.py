"""A bare install of the course package, as Colab gets it: the built wheel in a fresh virtual
environment outside the repository, so nothing of the checkout (``data/``, ``notebooks/``) is
reachable and only the package data travels.

    python tools/bare_install.py DIR                # builds the wheel, creates DIR/venv, prints its python
    python tools/bare_install.py --wheel-only DIR   # only the wheel, into DIR (`make wheel`: dist/)

The fresh venv gets the wheel with ``pip install --no-deps --no-index`` (nothing is downloaded);
its dependencies are the dev set's: a ``.pth`` file in its site-packages adds the running
interpreter's site-packages to ``sys.path``. A path listed in a ``.pth`` file is appended as is,
and the ``.pth`` files *inside* it are not run (``site`` runs those of site directories only), so
the dev environment's editable install of ``bidsnet_lib`` (an ``__editable__*.pth`` finder
pointing at a checkout) stays inert: ``import bidsnet_lib`` finds the wheel's copy. The ``.pth``
file is written after the install, so pip sees an environment without bidsnet-course and never
touches the dev environment.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bidsnet_lib"


def build_wheel(out) -> Path:
    """Build the course's wheel into ``out`` from a copy of the sources pip packages (pyproject,
    README, the package): setuptools' ``build/`` then never lands in the checkout, and files it
    left there from an earlier build cannot slip into the wheel."""
    out = Path(out)
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / PACKAGE, src / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(out), str(src)], check=True, cwd=out)
    wheels = sorted(out.glob("bidsnet_course-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"wheel build: got {[w.name for w in wheels]} in {out}, expected one wheel")
    return wheels[0]


def make_venv(folder, wheel) -> Path:
    """A fresh venv in ``folder`` with ``wheel`` installed and the dev set's packages reachable;
    returns its python."""
    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    dev = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "_course_dev_packages.pth").write_text("".join(f"{p}\n" for p in dev))
    return python


def bare_install(folder) -> Path:
    """Build the wheel and install it into ``folder/venv``; returns that venv's python."""
    folder = Path(folder)
    return make_venv(folder / "venv", build_wheel(folder / "wheel"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where to put the wheel (wheel/) and the venv (venv/)")
    parser.add_argument("--wheel-only", action="store_true", help="only build the wheel, into FOLDER")
    args = parser.parse_args(argv)
    if not args.wheel_only:
        print(bare_install(args.folder))
        return
    import tempfile

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = build_wheel(scratch)
        target = folder / wheel.name
        shutil.copy2(wheel, target)
    print(target)


if __name__ == "__main__":
    main()
