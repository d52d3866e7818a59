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
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets import Type, default

KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
POLL_SLICE = 0.5  # s: the longest a missed wake-up can delay a message


class SlicedPollChannel(AsyncZMQSocketChannel):
    """A channel that waits in short slices instead of one long poll.

    nbclient waits for a cell's reply with one asyncio poll of up to the cell timeout. That poll
    wakes on the zmq socket's edge-triggered file descriptor; when the wake-up is missed (the
    message is in the socket but the loop never hears of it), both sides sit idle in ``select``
    until the timeout, where pyzmq's last ``poll(0)`` finds the message and the cell "succeeds"
    600 s late (seen in the site build: notebook 01's widget cell, then 600 s with no error).
    A poll that ends every half second takes that ``poll(0)`` each time."""

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            if await self.socket.poll(int(1000 * min(POLL_SLICE, left))):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class SlicedPollKernelClient(AsyncKernelClient):
    shell_channel_class = Type(SlicedPollChannel)
    iopub_channel_class = Type(SlicedPollChannel)
    stdin_channel_class = Type(SlicedPollChannel)
    control_channel_class = Type(SlicedPollChannel)


class SlicedPollKernelManager(AsyncKernelManager):
    @default("client_factory")
    def _client_factory_default(self) -> type:
        return SlicedPollKernelClient


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
                                kernel_manager_class=SlicedPollKernelManager,
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
