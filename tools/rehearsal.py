"""Full-mode rehearsal of the course (`make rehearsal`): every notebook top to bottom in FULL mode
(``BIDSNET_SMALL`` unset), in a bare install of the wheel (what Colab gets), each from an empty
folder, with ``BIDSNET_REHEARSAL=1``: the one switch (``bidsnet_lib.rehearsal()``) under which the
notebooks keep full mode's sizes, presets, batches and configs but cut every training and
evaluation loop to a few iterations, and take the explicit random backbones where full mode
downloads pretrained ones.

    python tools/rehearsal.py [--out build/rehearsal] [--limit-gb 12] [notebooks/NN_name.ipynb ...]

Downloads that cannot happen here are laid into each working folder beforehand, in the formats
the real ones have, and read through the same code (``bidsnet_lib.data.download_set`` finds the
archive where it keeps one and unpacks it): a Places-style ``val_256.tar`` (256 x 256 JPEGs in
``val_256/``, cut from the course photos) for notebook 06, a partial-convolution-style
``test_mask.zip`` for notebook 01, and the published ablation tables for notebook 09.

It records each notebook's wall time and peak memory (the resident set of the kernel's process
tree, polled every 0.05 s, and never below any of its processes' own high-water mark), prints a
table, writes it to ``OUT/rehearsal.md``, and exits with status 1 when a notebook fails (an error
outside cells tagged ``raises-exception``) or its peak exceeds ``--limit-gb`` (Colab's free
runtime has about 12.7 GB of RAM). On a GPU machine the same run rehearses the GPU path
(``make gpu-check`` runs it there). The executed copies stay in ``OUT/executed``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_install import ROOT, bare_install  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
LIMIT_GB = 12.0
PLACES_PHOTOS = 520  # > 500: notebook 06 holds 500 out for validation, as on Colab
PCONV_MASKS = 60  # notebook 01 samples every (count // 48)-th mask
POLL = 0.05  # s between memory samples
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
WORKERS = 2  # notebooks at a time, each kernel on one torch thread: CI's 2 cores, as `make test`


def places_archive(path, count: int = PLACES_PHOTOS, seed: int = 0) -> Path:
    """A small stand-in for Places365's ``val_256.tar``: ``count`` 256 x 256 JPEGs named like
    Places' (``val_256/Places365_val_00000001.jpg``), random crops of the course photos."""
    import numpy as np
    from PIL import Image

    from bidsnet_lib.data import course_photos

    photos = course_photos(None, limit=40)
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for i in range(1, count + 1):
            photo = photos[rng.integers(len(photos))]
            side = int(rng.uniform(0.5, 1.0) * min(photo.shape[:2]))
            top, left = (int(rng.integers(photo.shape[k] - side + 1)) for k in (0, 1))
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((256, 256), Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            buffer = io.BytesIO()
            crop.save(buffer, "JPEG", quality=90)
            info = tarfile.TarInfo(f"val_256/Places365_val_{i:08d}.jpg")
            info.size, info.mtime = buffer.tell(), 0
            buffer.seek(0)
            tar.addfile(info, buffer)
    return path


def pconv_archive(path, count: int = PCONV_MASKS, seed: int = 0) -> Path:
    """A small stand-in for the partial-convolution test masks' ``test_mask.zip``: ``count`` 512 x
    512 PNGs in ``mask/testing_mask_dataset/``, white = hole as in the real set, hole ratios in its
    six bins (0-60 %)."""
    import cv2
    import numpy as np

    from bidsnet_lib import masks

    rng = np.random.default_rng(seed)
    bins = [(0.01, 0.1), *masks.RATIO_BINS]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            mask = masks.irregular_mask(512, 512, bins[i % len(bins)], rng)
            ok, png = cv2.imencode(".png", mask * 255)
            archive.writestr(f"mask/testing_mask_dataset/{i:05d}.png", png.tobytes())
    return path


def lay_downloads(folder) -> Path:
    """What the notebooks download on Colab, where each one keeps it, under ``folder``."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    published = folder / "runs" / "09_published"
    published.mkdir(parents=True)
    for table in sorted((ROOT / "docs" / "ablations").glob("*.json")):
        shutil.copy2(table, published / table.name)
    (folder / "runs" / "published").mkdir()  # notebook 07's realism trade-off (evaluate.load_tradeoff)
    shutil.copy2(ROOT / "docs" / "realism" / "tradeoff.json", folder / "runs" / "published" / "tradeoff.json")
    places_archive(folder / "datasets" / "val_256.tar")
    pconv_archive(folder / "runs" / "mask_sets" / "test_mask.zip")
    return folder


def _rss_and_peak(pid: int) -> tuple[int, int]:
    """(resident bytes now, the process's own high-water mark) from /proc; (0, 0) once gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return 0, 0
    kib = [int(fields.get(key, "0 kB").split()[0]) for key in ("VmRSS", "VmHWM")]
    return kib[0] * 1024, kib[1] * 1024


class TreePeak:
    """Peak resident memory of this process's descendants (the kernel and what it starts) while
    the ``with`` block runs: the largest sum over the tree seen at any poll, and never less than
    any descendant's own high-water mark (a spike between two polls)."""

    def __init__(self, interval: float = POLL):
        self.interval, self.peak = interval, 0
        self._cpu: dict[int, float] = {}  # pid -> its CPU seconds when last seen
        self._stop = threading.Event()

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) the tree used, as last seen of each process: unlike the wall
        time, it hardly depends on what else the machine runs."""
        return sum(self._cpu.values())

    def sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        now = 0
        for child in children:
            rss, hwm = _rss_and_peak(child.pid)
            now += rss
            self.peak = max(self.peak, hwm)
            try:
                times = child.cpu_times()
                self._cpu[child.pid] = times.user + times.system
            except psutil.Error:
                pass
        self.peak = max(self.peak, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreePeak:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    notebook: str
    seconds: float
    peak_bytes: int
    error: str | None
    slowest: str = ""
    cpu_seconds: float = 0.0

    def failed(self, limit_gb: float) -> str | None:
        """Why this notebook fails the rehearsal, or None."""
        if self.error:
            return "error"
        if self.peak_bytes > limit_gb * 1e9:
            return f"peak {self.peak_bytes / 1e9:.1f} GB > {limit_gb:g} GB"
        return None


def slowest_cells(executed: Path, count: int = 2) -> str:
    """The slowest cells of an executed copy, from nbclient's timing metadata: 'cell 18 41 s, ...'."""
    from datetime import datetime

    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    times = []
    for index, cell in enumerate(cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            seconds = (datetime.fromisoformat(end.replace("Z", "+00:00"))
                       - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
            times.append((seconds, index))
    return ", ".join(f"cell {i} {s:.0f} s" for s, i in sorted(times, reverse=True)[:count])


def table(results: list[Result], limit_gb: float, device: str, load: str = "") -> str:
    """The rehearsal's report: one row per notebook and their sum, in Markdown (``load``: a note
    on the run, its elapsed time among it)."""
    rows = ["| notebook | wall time (s) | CPU time (s) | peak memory (GB) | status | slowest cells (wall) |",
            "| --- | ---: | ---: | ---: | --- | --- |"]
    for r in results:
        rows.append(f"| {r.notebook} | {r.seconds:.0f} | {r.cpu_seconds:.0f} | {r.peak_bytes / 1e9:.2f} | "
                    f"{r.failed(limit_gb) or 'ok'} | {r.slowest} |")
    total, cpu = sum(r.seconds for r in results), sum(r.cpu_seconds for r in results)
    peak = max((r.peak_bytes for r in results), default=0)
    rows.append(f"| **sum** | **{total:.0f}** | **{cpu:.0f}** | **{peak / 1e9:.2f}** (max) | "
                f"{sum(r.failed(limit_gb) is not None for r in results)} failed | |")
    return (f"Full-mode rehearsal (BIDSNET_REHEARSAL=1, BIDSNET_SMALL unset) on {device}, a bare install "
            f"of the wheel; peak = resident memory of the kernel's process tree (limit {limit_gb:g} GB); "
            f"CPU time = user + system seconds of that tree.{load}\n\n" + "\n".join(rows) + "\n")


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return f"the CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def claim(claims: Path | None, notebook: Path) -> bool:
    """True when this worker takes ``notebook``: the first to create its file in ``claims`` (the
    workers' one shared queue); always True without ``claims`` (one worker)."""
    if claims is None:
        return True
    try:
        os.close(os.open(claims / notebook.name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def write_report(out: Path, limit_gb: float, note: str = "") -> list[Result]:
    """Every worker's results so far (``out/worker*/results.json``), in notebook order, written
    to ``out/rehearsal.md`` and ``out/rehearsal.json``; returns them."""
    from bidsnet_lib.plumbing import atomic_write

    results = sorted((Result(**r) for f in out.glob("worker*/results.json") for r in json.loads(f.read_text())),
                     key=lambda r: r.notebook)
    atomic_write(out / "rehearsal.md", table(results, limit_gb, device_name(), note))
    atomic_write(out / "rehearsal.json", json.dumps([r.__dict__ for r in results], indent=1))
    return results


def run_notebooks(notebooks: list[Path], out: Path, files: Path, timeout: int, limit_gb: float,
                  worker: str = "worker0", claims: Path | None = None) -> int:
    """Inside the bare install: execute each notebook (those this worker claims) in full mode with
    the rehearsal switch on; after each one, its row in ``out/<worker>/results.json`` and the
    table of every worker's rows so far (a run stopped from outside keeps them). Returns 1 when
    one of its notebooks failed."""
    from execute_notebooks import check_kernel, execute

    from bidsnet_lib.plumbing import atomic_write

    os.environ.pop("BIDSNET_SMALL", None)  # (main leaves PYTHONPATH out: no checkout on the path)
    os.environ["BIDSNET_REHEARSAL"] = "1"
    # Offline, on every machine: a proxy that refuses every connection, so what a notebook would
    # download fails at once and its offline path runs (07's LPIPS and FID backbones), as here.
    os.environ.update({name: DEAD_PROXY for name in PROXY_VARIABLES})
    for name in ("no_proxy", "NO_PROXY"):
        os.environ.pop(name, None)
    check_kernel()
    executed = out / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    (out / worker).mkdir(exist_ok=True)
    results = []
    for path in notebooks:
        if not claim(claims, path):
            continue
        with TreePeak() as peak:  # this worker's descendants: its one kernel at a time
            seconds, error = execute(path.resolve(), executed, timeout, files)
        result = Result(path.stem, seconds, peak.peak, error, slowest_cells(executed / path.name), peak.cpu_seconds)
        results.append(result)
        print(f"{path.name}: {seconds:.0f} s ({peak.cpu_seconds:.0f} s CPU), peak {peak.peak / 1e9:.2f} GB, "
              f"{result.failed(limit_gb) or 'ok'}", flush=True)
        if error:
            print("    " + error.replace("\n", "\n    "), flush=True)
        atomic_write(out / worker / "results.json", json.dumps([r.__dict__ for r in results], indent=1))
        write_report(out, limit_gb)
    return 1 if any(r.failed(limit_gb) for r in results) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "rehearsal", help="default build/rehearsal")
    parser.add_argument("--limit-gb", type=float, default=LIMIT_GB, help=f"peak memory allowed (default {LIMIT_GB:g})")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"notebooks at a time (default {WORKERS})")
    parser.add_argument("--inside", metavar="WORKER", help=argparse.SUPPRESS)  # run by the bare python
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in notebooks:
        if not path.is_file():
            raise SystemExit(f"notebooks: no such file {str(path)!r}")
    if args.workers < 1:
        raise SystemExit(f"--workers: got {args.workers}, expected an int >= 1")
    out = args.out.resolve()
    if args.inside:
        return run_notebooks(notebooks, out, out / "downloads", args.timeout, args.limit_gb, args.inside, out / "claims")
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    python = bare_install(out / "bare")
    lay_downloads(out / "downloads")
    for stale in [out / "claims", *out.glob("worker*"), out / "executed"]:
        shutil.rmtree(stale, ignore_errors=True)
    (out / "claims").mkdir()
    print(f"bare install and downloads ready ({time.perf_counter() - start:.0f} s)", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout on the path
    command = [str(python), __file__, "--out", str(out), "--limit-gb", str(args.limit_gb), "--timeout",
               str(args.timeout), *map(str, (p.resolve() for p in notebooks))]
    workers = [subprocess.Popen([*command, "--inside", f"worker{i}"], cwd=out, env=env) for i in range(args.workers)]
    for worker in workers:
        worker.wait()
    elapsed = time.perf_counter() - start
    note = (f" {args.workers} notebooks at a time (one kernel each); {elapsed:.0f} s in all, the bare install "
            f"and the laid downloads included. Load average (1 min) {load_before:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores: above the core count, wall times "
            "stretch with it.")
    results = write_report(out, args.limit_gb, note)
    print("\n" + (out / "rehearsal.md").read_text())
    missing = sorted({p.stem for p in notebooks} - {r.notebook for r in results})
    failed = [r.notebook for r in results if r.failed(args.limit_gb)] + [f"{name} (no result)" for name in missing]
    if failed:
        print(f"rehearsal FAILED: {', '.join(failed)}")
    print(f"rehearsal: {elapsed:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
