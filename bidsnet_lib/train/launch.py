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
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from bidsnet_lib.checkpoint import TRAIN_FORMAT, load_checkpoint
from bidsnet_lib.losses import GeneratorLoss
from bidsnet_lib.train.config import RESUME_OVERRIDABLE, TrainConfig
from bidsnet_lib.train.runs import (
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
    names) and the generator's loss with its VGG-19 loaded."""

    config: TrainConfig
    out_dir: Path
    resume: bool
    checkpoint: dict | None
    photos: dict
    loss_fn: GeneratorLoss


def preflight(config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
              overwrite: bool = False, clear: bool = True) -> Preflight:
    """Everything a run refuses before it trains, cheapest first: a config without photos, a new
    run's ``out_dir`` that holds files (``overwrite``: replace them; with ``clear`` the old log and
    samples go now, as only the process that writes the folder should do), a resume whose folder,
    config, photos or weights do not fit, missing photo folders, missing VGG-19 weights."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: got {type(config).__name__}, expected a TrainConfig")
    if not config.data:
        raise ValueError("config.data: got no folders, expected at least one folder of training photos")
    config, out_dir = resolve_paths(config), Path(out_dir)
    checkpoint = None
    if resume:
        latest = require_checkpoint(out_dir)
        checkpoint = load_checkpoint(latest, TRAIN_FORMAT)
        check_resumable(checkpoint, latest, TrainConfig.from_dict(checkpoint["config"]), config, RESUME_OVERRIDABLE)
    else:
        check_fresh_dir(out_dir, overwrite, clear=clear)
    photos = photo_identity(config.data) if checkpoint is None else checkpoint["meta"].get("photos")
    return Preflight(config, out_dir, resume, checkpoint, photos, GeneratorLoss(config.loss))


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
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


# Set in the ranks LocalRanks starts: rank 0's process id.
RANK_0_PID = "BIDSNET_TRAIN_RANK_0_PID"


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
    ``python -m MODULE ARGS``, the cores shared out among them. Rank 0 does all the talking
    (errors, progress, files); a signal reaches it alone (the others run in their own session)
    and it tells them, so all stop at the same step, as under torchrun. ``stop`` ends them."""

    def __init__(self, module: str, args: list[str], processes: int):
        self.threads = torch.get_num_threads()
        threads = max(1, usable_cores() // processes)
        port = _free_port()
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(processes),
               "LOCAL_WORLD_SIZE": str(processes), "OMP_NUM_THREADS": str(threads), RANK_0_PID: str(os.getpid())}
        self.ranks = [subprocess.Popen([sys.executable, "-m", module, *args], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                                       start_new_session=True)
                      for r in range(1, processes)]
        torch.set_num_threads(threads)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=processes,
                                timeout=datetime.timedelta(minutes=10))

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
        torch.set_num_threads(self.threads)
