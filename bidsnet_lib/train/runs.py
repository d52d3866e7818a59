"""The run directory of ``bidsnet train``: what a new run may write into, what may resume, and
stopping on a signal without losing the steps done.

Used by :mod:`bidsnet_lib.train` (taught in ``notebooks/06_training.ipynb``). A new run refuses a
folder holding anything (``overwrite`` says otherwise); a resumed run must agree with the saved
config field by field (folders compared resolved, the photos by count and names); SIGINT and
SIGTERM end the loop at a step boundary, after a checkpoint of that step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bidsnet_lib.checkpoint import (
    CheckpointError,
    check_weights,
)
from bidsnet_lib.data import find_images
from bidsnet_lib.plumbing import got_expected, temp_files
from bidsnet_lib.train.config import newest_checkpoint
from bidsnet_lib.train.utils import read_metrics

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

if TYPE_CHECKING:
    from bidsnet_lib.train.config import TrainConfig

# Folder fields, compared as resolved paths (``photos/`` and ``./photos`` are one folder); the
# training photos are compared by what they hold (count and names), see :func:`photo_identity`.
PATH_FIELDS = ("data", "val_data", "mask_folder")
# What a run directory holds; anything else in a folder given as a new run's out_dir is refused.
RUN_FILES = ("latest.pt", "config.json", "metrics.jsonl", "samples")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def resolve_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its folders absolute: a run resumed from another directory finds them."""
    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    return dataclasses.replace(
        config, data=tuple(map(absolute, config.data)), val_data=tuple(map(absolute, config.val_data)),
        mask_folder=None if config.mask_folder is None else absolute(config.mask_folder))


def photo_identity(folders) -> dict:
    """Count and SHA-256 of the relative names of the photos under ``folders`` (names only: cheap)."""
    paths, _ = find_images(list(folders), check="none")
    names = sorted(str(p.relative_to(root)) for root in map(Path, folders)
                   for p in paths if p.is_relative_to(root))
    return {"count": len(paths), "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()}


def config_differences(saved: TrainConfig, given: TrainConfig, skip=()) -> list[tuple[str, object, object]]:
    """``(field, saved value, given value)`` for every field that differs (nested configs by their
    fields, e.g. ``loss.perceptual``; folders as resolved paths), except the ``skip`` names."""
    out = []
    for f in dataclasses.fields(saved):
        if f.name in skip:
            continue
        a, b = getattr(saved, f.name), getattr(given, f.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out += [(f"{f.name}.{name}", x, y) for name, x, y in config_differences(a, b)]
        elif f.name in PATH_FIELDS:
            resolved = [None if v is None else
                        tuple(str(Path(p).expanduser().resolve()) for p in ((v,) if isinstance(v, str) else v))
                        for v in (a, b)]
            if resolved[0] != resolved[1]:
                out.append((f.name, a, b))
        elif a != b:
            out.append((f.name, a, b))
    return out


LOCK_FILE = ".lock"  # held by the one process writing a run folder (see RunLock)
_HELD: dict[str, list] = {}  # folders this process holds: resolved path -> [fd, holders]


class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``out_dir/.lock``, which names the
    holder (process id, host, command) for the message of whoever comes second. The kernel drops
    it when the holder exits, however it ends (a killed run leaves no stale lock); a second
    Trainer in the same process shares it (a notebook resuming its own run). Where ``fcntl`` is
    missing (Windows) there is no lock."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.key = str(self.out_dir.resolve())
        self.held = self.created = False

    def acquire(self) -> RunLock:
        if self.held or fcntl is None:
            return self
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            self.held = True
            return self
        path = self.out_dir / LOCK_FILE
        self.created = not self.out_dir.exists()  # then removed with the lock when the run wrote nothing
        self.out_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode("utf-8", "replace")
                os.close(fd)
                raise RunLocked(f"out_dir: {self.out_dir} is being written by another run ({_describe(holder)}); "
                                "a run folder has one writer at a time: wait for that run to end (or stop it), "
                                "or choose another out_dir") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else its holder removed the file between our open and flock: open it anew
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        _HELD[self.key] = [fd, 1]
        self.held = True
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self.key]
            with contextlib.suppress(OSError):  # removed while held: nobody can take the old file
                (self.out_dir / LOCK_FILE).unlink()
            os.close(entry[0])
            if self.created:
                with contextlib.suppress(OSError):  # only when empty
                    self.out_dir.rmdir()


class RunLocked(OSError):
    """A run folder another process is writing."""


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"process {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


class StopRequest:
    """SIGINT/SIGTERM set a flag instead of killing the process mid-step; the loop then saves a
    checkpoint at a step boundary and returns. A second signal acts as usual (stops at once)."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers only there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum
        for sig, handler in self._previous.items():  # the next Ctrl-C is not caught
            signal.signal(sig, handler)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def ignore_stop_signals(_worker_id: int) -> None:
    # DataLoader workers share the terminal's process group: Ctrl-C reaches them too, and a
    # worker killed by it would end the main process's orderly stop with an error.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def check_fresh_dir(out_dir: Path, overwrite: bool, clear: bool = True) -> None:
    """Refuse a new run's ``out_dir`` that holds a run or anything else, unless ``overwrite``
    (then, when ``clear``, the old log and samples are removed: nothing old mixes in)."""
    latest = out_dir / "latest.pt"
    if latest.exists():
        raise ValueError(f"out_dir: {out_dir} already holds a run ({latest}); pass resume=True "
                         f"(--resume) to continue it, or choose another out_dir")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(got_expected("out_dir", str(out_dir), "a folder for the run; it is a file"))
    held = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_FILE) if out_dir.is_dir() else []
    if held and not overwrite:
        leftovers = set(RUN_FILES) | {p.name for p in temp_files(out_dir)}  # a killed write's temporary files too
        what = ("the files of a run stopped before its first checkpoint" if set(held) <= leftovers
                else "files that are not a run's")
        raise ValueError(got_expected("out_dir", str(out_dir), "a new or empty folder") +
                         f"; it holds {', '.join(held[:5])}{' ...' if len(held) > 5 else ''} ({what}): "
                         "choose another out_dir, or pass overwrite=True (--overwrite) to start a new run "
                         "there, replacing config.json, metrics.jsonl and samples/")
    if held and clear:
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
        for old in [*(out_dir / "samples").glob("step_*.png"), *temp_files(out_dir), *temp_files(out_dir / "samples")]:
            old.unlink()


def require_checkpoint(out_dir: Path) -> Path:
    """The newest checkpoint of the run in ``out_dir`` that loads (:func:`newest_checkpoint`; a
    warning names each newer one skipped), after removing the temporary files killed writes left
    (call it holding the folder's :class:`RunLock`). A missing one is explained (no folder, no run,
    damaged files only, or a run stopped before its first checkpoint at step N)."""
    if not out_dir.is_dir():
        raise FileNotFoundError(got_expected("out_dir", str(out_dir), "the folder of a run to resume; "
                                             "there is no such folder (drop --resume to start one)"))
    for stale in temp_files(out_dir) + temp_files(out_dir / "samples"):
        stale.unlink(missing_ok=True)
    found, skipped = newest_checkpoint(out_dir)
    if found is not None:
        for reason in skipped:
            warnings.warn(f"skipped {reason}; resuming from {found.name}", stacklevel=2)
        if found.name != "latest.pt" and not skipped:
            warnings.warn(f"{out_dir} holds no latest.pt; resuming from {found.name}", stacklevel=2)
        return found
    if skipped:
        raise CheckpointError(f"out_dir: {out_dir} holds no checkpoint that loads ({'; '.join(skipped)}); "
                              "nothing can be resumed: start the run again with --overwrite (or another --out)")
    if not (out_dir / "config.json").is_file():
        raise FileNotFoundError(got_expected("out_dir", str(out_dir), "the folder of a run to resume; "
                                             "it holds no run (no latest.pt, no config.json): drop "
                                             "--resume to start one there"))
    try:
        logged = [row["step"] for row in read_metrics(out_dir)]
    except (OSError, ValueError):
        logged = []
    try:
        first = f" at step {json.loads((out_dir / 'config.json').read_text())['checkpoint_every']}"
    except (OSError, ValueError, KeyError, TypeError):
        first = ""
    raise FileNotFoundError(
        f"out_dir: {out_dir} holds no latest.pt: the run there was stopped before its first "
        f"checkpoint{first}" + (f" (it had logged up to step {max(logged)})" if logged else "") +
        "; nothing can be resumed: start it again without --resume and with --overwrite "
        "(or another --out)")


def check_resumable(checkpoint: dict, latest: Path, saved: TrainConfig, given: TrainConfig,
                    overridable: tuple[str, ...]) -> None:
    """Refuse to resume ``checkpoint`` with ``given``: one line per field that differs from the
    ``saved`` config (except ``overridable`` ones), other photos, fewer steps, non-finite
    weights, or a config whose shapes do not fit the weights."""
    identity = checkpoint["meta"].get("photos")
    skip = overridable + (("data",) if identity else ())
    changed = config_differences(saved, given, skip)
    if changed:
        lines = "".join(f"\n  {name}: saved {a!r}, given {b!r}" for name, a, b in changed)
        raise ValueError(f"config: differs from the run in {latest} in {len(changed)} field(s) a resumed run "
                         f"may not change (only {', '.join(overridable)} may; start a new run for "
                         f"other changes):{lines}")
    if identity and photo_identity(given.data) != identity:
        now = photo_identity(given.data)
        raise ValueError(f"data: the folders do not hold the photos the run trained on ({identity['count']} "
                         f"then, {now['count']} now{'' if now['count'] != identity['count'] else ', other names'})"
                         f"; saved {list(saved.data)}, given {list(given.data)}")
    if given.steps < checkpoint["step"]:
        raise ValueError(got_expected("steps", given.steps, f"at least the run's step {checkpoint['step']} "
                                      "(a larger --steps extends the run)"))
    for key in ("model", "ema"):  # a crafted config (width 10**6): shapes before memory
        check_weights(given.model, checkpoint[key], latest, f"{key} weights")
