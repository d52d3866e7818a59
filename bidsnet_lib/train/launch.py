"""Starting a training run: the checks before it, and its processes.

:func:`preflight` is what a run refuses before it trains (the config, the run folder, the photos,
VGG-19's weights); the :class:`~bidsnet_lib.train.Trainer` runs it, and ``bidsnet train`` runs it
first when it starts several processes, so that a mistake is one line from one process, and hands
the result to its Trainer. On a CPU ``bidsnet train`` starts ``processes`` local processes
(:func:`auto_processes` picks how many) that split each batch: this process becomes rank 0 of a
gloo group and starts ranks 1.. as the same command (:class:`LocalRanks`). On GPUs torchrun
starts the processes and :func:`init_distributed` joins its group.

Taught in ``notebooks/06_training.ipynb``.
"""

import dataclasses
import datetime
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from bidsnet_lib.checkpoint import (
    INFERENCE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    check_weights,
    load_checkpoint,
)
from bidsnet_lib.losses import GeneratorLoss
from bidsnet_lib.model import BIDSNetConfig
from bidsnet_lib.plumbing import check_apart, check_writable_folder
from bidsnet_lib.train.config import RESUME_OVERRIDABLE, TrainConfig, model_config_differences
from bidsnet_lib.train.runs import (
    RunLock,
    check_fresh_dir,
    check_resumable,
    photo_identity,
    require_checkpoint,
    resolve_paths,
)


@dataclasses.dataclass
class Preflight:
    """What :func:`preflight` found, what the Trainer builds on: the config with its folders
    resolved, the checkpoint to resume (None for a new run), the photos' identity (count and
    names), the generator's loss with its VGG-19 loaded, and the run folder's lock."""

    config: TrainConfig
    out_dir: Path
    resume: bool
    checkpoint: dict | None
    photos: dict
    loss_fn: GeneratorLoss
    lock: RunLock | None = None  # held by the process that writes the folder (``clear``)


def preflight(config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
              overwrite: bool = False, clear: bool = True) -> Preflight:
    """Everything a run refuses before it trains, cheapest first: a config without photos, a new
    run's ``out_dir`` that holds files (``overwrite``: replace them; with ``clear`` the old log and
    samples go now, as only the process that writes the folder should do), a resume whose folder,
    config, photos or weights do not fit, missing photo folders, missing VGG-19 weights. With
    ``clear`` it first takes the folder's :class:`RunLock` (refused while another run writes there)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: got {type(config).__name__}, expected a TrainConfig")
    if not config.data:
        raise ValueError("config.data: got no folders, expected at least one folder of training photos")
    config, out_dir = resolve_paths(config), Path(out_dir)
    # Photos are found recursively: samples/ inside --data would join the training photos.
    check_apart(out_dir, [*(("data", d) for d in config.data), *(("val_data", d) for d in config.val_data),
                          ("mask_folder", config.mask_folder)], "out_dir")
    checkpoint, lock = None, RunLock(out_dir) if clear else None
    try:
        if lock is not None and (out_dir.is_dir() or not (resume or out_dir.exists())):
            check_writable_folder(out_dir, "out_dir")  # read-only, a file in the path, a name too long: one line
            lock.acquire()  # before anything in the folder is read or removed
        if resume:
            latest = require_checkpoint(out_dir)
            checkpoint = load_checkpoint(latest, TRAIN_FORMAT)
            check_resumable(checkpoint, latest, TrainConfig.from_dict(checkpoint["config"]), config, RESUME_OVERRIDABLE)
        else:
            check_fresh_dir(out_dir, overwrite, clear=clear)
        if checkpoint is None and config.init is not None:
            check_init(config)
        photos = photo_identity(config.data) if checkpoint is None else checkpoint["meta"].get("photos")
        return Preflight(config, out_dir, resume, checkpoint, photos, GeneratorLoss(config.loss), lock)
    except BaseException:
        if lock is not None:  # a folder it made for the lock goes with it
            lock.release()
        raise


def check_init(config: TrainConfig) -> None:
    """Refuse ``config.init`` weights that a new run could not start from, before its model is
    built: another model config, NaN or infinite values, shapes that do not fit (the checks of
    ``bidsnet inpaint``'s loader)."""
    path = Path(config.init)
    data = load_checkpoint(path, (INFERENCE_FORMAT, TRAIN_FORMAT))
    is_train = data["format"] == TRAIN_FORMAT
    try:
        source = BIDSNetConfig.from_dict(data["config"]["model"] if is_train else data["config"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from None
    differ = model_config_differences(source, config.model)
    if differ:
        raise ValueError(f"init: {path} holds a different model; " + "; ".join(differ)
                         + " (with --init the model config comes from the checkpoint)")
    check_weights(source, data["ema"] if is_train else data["model"], path, "init weights")


# ----------------------------------------------------------------------------------------------
# How many processes


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_processes(batch_size: int, cores: int) -> int:
    """The most processes, up to one a core, that split ``batch_size`` evenly."""
    return max(n for n in range(1, min(cores, batch_size) + 1) if batch_size % n == 0)


def settle_processes(config: TrainConfig, device: torch.device, *, auto: bool, resume: bool = False) -> TrainConfig:
    """``config`` with ``processes`` for ``device``: with ``auto`` a new run gets
    :func:`auto_processes` of the usable cores on a CPU, 1 on a GPU (a resumed run keeps its own);
    several local processes only on a CPU."""
    on_cpu = device.type == "cpu"
    if auto and not resume:
        config = dataclasses.replace(config, processes=auto_processes(config.batch_size, usable_cores())
                                     if on_cpu else 1)
    if config.processes > 1 and not on_cpu:
        raise ValueError(f"--processes: got {config.processes}, expected 1 on a GPU (several GPUs: "
                         "torchrun --nproc_per_node=N -m bidsnet_lib.commands.train ...)")
    return config


# ----------------------------------------------------------------------------------------------
# The process group


def init_distributed() -> bool:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPU), or the one of the process that
    started this one as a :class:`LocalRanks` rank; False when run alone."""
    if RANK_0_PID in os.environ:
        _end_with(int(os.environ[RANK_0_PID]))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    if READY_FD in os.environ:  # tell rank 0 this process got this far: it now joins the group
        fd = int(os.environ.pop(READY_FD))
        os.write(fd, b"1")
        os.close(fd)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


# Set in the ranks LocalRanks starts: rank 0's process id, and the pipe on which a rank says it is
# about to join the group (one that closes it unsaid died before).
RANK_0_PID = "BIDSNET_TRAIN_RANK_0_PID"
READY_FD = "BIDSNET_TRAIN_READY_FD"
# `python -m` puts the working directory first on sys.path, where a torch.py of the user's would
# shadow torch in the other ranks alone: they start with it removed, then run the module as -m
# does (runpy's own entry for -m; `python -P` does the same from 3.11 on). An empty entry of
# PYTHONPATH ("dir:") means the working directory too: LocalRanks drops those from the ranks' env.
_RUN_MODULE = "import sys; del sys.path[0]; import runpy; runpy._run_module_as_main(sys.argv.pop(1))"
JOIN_TIMEOUT = 60.0  # seconds a rank may take from its start to joining the group


class RankFailed(ChildProcessError):
    """A rank started by :class:`LocalRanks` ended before the group formed (its last words said)."""


def _end_with(pid: int) -> None:
    """Exit when process ``pid`` (rank 0) is gone, killed before it could stop this rank, instead
    of waiting in a collective until the timeout."""
    def watch():
        while os.getppid() == pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRanks:
    """This process as rank 0 of a local gloo group of ``processes``, ranks 1.. started as
    ``python -m MODULE ARGS`` (without the working directory on ``sys.path``), the cores shared
    out among them. Rank 0 does all the talking (errors, progress, files): the others' stderr goes
    to a file whose last line rank 0 quotes when one of them fails. A signal reaches rank 0 alone
    (the others run in their own session) and it tells them, so all stop at the same step, as
    under torchrun. A rank that dies before the group forms ends this one within seconds
    (:class:`RankFailed`), and Ctrl-C works while they start. ``stop`` ends them."""

    def __init__(self, module: str, args: list[str], processes: int):
        self.threads = torch.get_num_threads()
        threads = max(1, usable_cores() // processes)
        port = _free_port()
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(processes),
               "LOCAL_WORLD_SIZE": str(processes), "OMP_NUM_THREADS": str(threads), RANK_0_PID: str(os.getpid())}
        if "PYTHONPATH" in env:
            env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep) if p)
        self.ranks, self.logs, ready = [], [], []
        try:
            for r in range(1, processes):
                read, write = os.pipe()
                log = tempfile.TemporaryFile()
                self.logs.append(log)
                self.ranks.append(subprocess.Popen(
                    [sys.executable, "-c", _RUN_MODULE, module, *args], stderr=log, pass_fds=(write,),
                    env={**env, "RANK": str(r), "LOCAL_RANK": str(r), READY_FD: str(write)}, start_new_session=True))
                os.close(write)
                ready.append(read)
            self._wait_ready(ready)
            torch.set_num_threads(threads)
            watch = threading.Event()  # the window between "ready" and joined: a rank dying there ends this one
            threading.Thread(target=self._watch, args=(watch,), daemon=True).start()
            try:
                dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=processes,
                                        timeout=datetime.timedelta(minutes=10))
            finally:
                watch.set()
        except BaseException:  # Ctrl-C or a failed rank: none is left behind
            self.kill()
            raise
        finally:
            for fd in ready:
                os.close(fd)

    def _wait_ready(self, pipes: list[int]) -> None:
        """Until every rank said it joins; a rank that closed its pipe unsaid raises RankFailed."""
        waiting, deadline = dict(zip(pipes, range(1, len(pipes) + 1), strict=True)), time.monotonic() + JOIN_TIMEOUT
        while waiting:
            if time.monotonic() > deadline:
                raise RankFailed(f"processes: rank(s) {sorted(waiting.values())} did not start within "
                                 f"{JOIN_TIMEOUT:.0f} s{self._last_words(min(waiting.values()))}")
            readable, _, _ = select.select(list(waiting), [], [], 0.5)  # Ctrl-C is felt between waits
            for fd in readable:
                rank = waiting.pop(fd)
                if os.read(fd, 1) != b"1":
                    self.ranks[rank - 1].wait()
                    raise RankFailed(self.failure(rank))

    def _watch(self, joined: threading.Event) -> None:
        while not joined.wait(0.5):
            rank = self.failed()
            if rank is not None:
                print(f"bidsnet train: error: {self.failure(rank)}", file=sys.stderr, flush=True)
                self.kill()
                os._exit(2)  # this process waits in C++ for the group, where no exception reaches

    def failed(self) -> int | None:
        """The first rank (1..) that has ended, or None."""
        return next((r for r, process in enumerate(self.ranks, 1) if process.poll() is not None), None)

    def failure(self, rank: int, when: str = "before joining the group") -> str:
        """One line: which rank ended, when, its exit code and its last words."""
        code = self.ranks[rank - 1].returncode
        return f"processes: rank {rank} of {len(self.ranks) + 1} ended {when} (exit code {code}){self._last_words(rank)}"

    def _last_words(self, rank: int) -> str:
        """The last line the rank wrote to stderr (a traceback's: the error itself)."""
        log = self.logs[rank - 1]
        log.seek(0)
        lines = [line for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f": {lines[-1].strip()[:300]}" if lines else ""

    def kill(self) -> None:
        """End the other ranks now (this one failed or was interrupted: nothing of theirs to wait for)."""
        for rank in self.ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
        torch.set_num_threads(self.threads)

    def stop(self, grace: float) -> None:
        """Wait ``grace`` seconds for the other ranks to end (they finish with rank 0), then kill
        them; this process gets its threads back."""
        deadline = time.monotonic() + grace
        for rank in self.ranks:
            try:
                rank.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                rank.kill()
                rank.wait()
        for log in self.logs:
            log.close()
        torch.set_num_threads(self.threads)
