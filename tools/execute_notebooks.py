"""Run notebooks top to bottom in small mode, each from its own empty working folder, and keep
the executed copies (outputs included) for the rendered course.

    BARE_PYTHON tools/execute_notebooks.py --out DIR [--files DIR] notebooks/*.ipynb

Run it with the python of a bare install (``tools/bare_install.py``): the kernel is that same
interpreter, so the notebooks see what a learner on Colab sees, the wheel and no checkout. A
notebook fails as under ``pytest --nbval-lax``: any error outside cells tagged
``raises-exception``. Every notebook is run even after a failure; the exit status is 1 when any
failed, and the last lines of each failure are printed. ``--files`` is a folder copied into each
working folder first: what a notebook would have downloaded on Colab, where this machine is offline.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_kernel() -> None:
    """The kernel must be this interpreter, not a ``python`` found on PATH or a user kernelspec."""
    argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    if Path(argv[0]) != Path(sys.executable):
        raise RuntimeError(f"kernel {KERNEL!r}: got argv {argv}, expected {sys.executable} (this "
                           "interpreter); a kernelspec of that name elsewhere hides ipykernel's own")


def execute(path: Path, out: Path, timeout: int, files: Path | None) -> tuple[float, str | None]:
    """Execute one notebook in a fresh temporary folder; writes ``out/<name>``. Returns (seconds,
    the failure's last lines or None)."""
    nb = nbformat.read(path, as_version=4)
    start, error = time.perf_counter(), None
    with tempfile.TemporaryDirectory(prefix=f"course_{path.stem}_") as work:
        if files is not None:
            shutil.copytree(files, work, dirs_exist_ok=True)
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL,
                                resources={"metadata": {"path": work}})
        # Its own temporary folder too: `make test` runs the checkout's copies at the same time,
        # and a notebook that clears a fixed folder under /tmp (06's runs) must not clear theirs.
        (Path(work) / "tmp").mkdir()
        try:
            client.execute(env={**os.environ, "TMPDIR": str(Path(work) / "tmp")})
        except CellExecutionError as exc:
            error = "\n".join(ANSI.sub("", str(exc)).strip().splitlines()[-12:])
    nbformat.write(nb, out / path.name)
    return time.perf_counter() - start, error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the executed copies")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--files", type=Path, help="a folder copied into each working folder first")
    args = parser.parse_args(argv)
    # The learner's view: small mode, one thread, and nothing of a checkout on the path.
    os.environ.update(BIDSNET_SMALL="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    os.environ.pop("PYTHONPATH", None)
    check_kernel()
    if args.files is not None and not args.files.is_dir():
        raise SystemExit(f"--files: no such folder {str(args.files)!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in args.notebooks:
        if not path.is_file():
            raise SystemExit(f"notebooks: no such file {str(path)!r}")
        seconds, error = execute(path.resolve(), args.out, args.timeout, args.files)
        print(f"{path.name}: {seconds:.0f} s, {'FAILED' if error else 'ok'}", flush=True)
        if error:
            failed.append(path.name)
            print("    " + error.replace("\n", "\n    "), flush=True)
    if failed:
        print(f"{len(failed)} of {len(args.notebooks)} notebooks failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
