"""A training run's config: :class:`TrainConfig` and its presets, and the config read back from
a run folder or checkpoint (what ``--resume`` and ``--init`` compare with).

Used by :mod:`bidsnet_lib.train` (the loop) and ``bidsnet train``; taught in
``notebooks/06_training.ipynb``.
"""

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bidsnet_lib.checkpoint import (
    INFERENCE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    load_checkpoint,
)
from bidsnet_lib.data import DEFAULT_MASK_MIX
from bidsnet_lib.losses import LossConfig
from bidsnet_lib.model import (
    BIDSNetConfig,
    check_config_keys,
)
from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    check_choice,
    check_fraction,
    check_int,
    check_multiple,
    got_expected,
)

LR_SCHEDULES = ("constant", "cosine")

# Fields a resumed run may change; any other difference would make it a different experiment.
RESUME_OVERRIDABLE = ("steps", "log_every", "sample_every", "validate_every", "checkpoint_every",
                      "keep_every", "num_workers")


@dataclass
class TrainConfig:
    """Everything that shapes a training run; the defaults are the ``paper()`` preset.

    ``processes``: how many local processes ``bidsnet train`` starts for the run (gloo on a CPU,
    one or more cores each); they split ``batch_size`` between them, so the run trains what one
    process would (GroupNorm normalises each sample on its own), only faster. Under ``torchrun``
    by hand ``processes`` stays 1 and ``batch_size`` is per process. Intervals are in steps; 0 turns sampling, validation or
    milestones off (``latest.pt`` is still written every ``checkpoint_every`` steps and at the
    end). ``val_data`` empty: validate on centre crops of ``data`` (this measures fitting;
    give held-out photos for generalisation). ``amp``: float16 autocast + GradScaler on CUDA;
    ``cpu_bf16``: bfloat16 autocast on CPU; ``channels_last``: NHWC tensors for the convolutions;
    ``compile``: ``torch.compile`` the generator (``bench/trainer.py`` measures all three). ``deterministic`` asks PyTorch for deterministic
    kernels (process-wide) and is what makes a resumed run bit-identical on CUDA. ``init``: a
    checkpoint (inference or training) whose generator weights (and critic, when it has one) a new
    run starts from, with fresh optimisers; ``model`` must equal the checkpoint's model config.
    A field with a ``help`` in its metadata is a flag of ``bidsnet train`` (``--batch-size``).
    """

    model: BIDSNetConfig = field(default_factory=BIDSNetConfig.paper)
    loss: LossConfig = field(default_factory=LossConfig.paper)
    data: tuple[str, ...] = field(default=(), metadata={
        "help": "folders of training photos (recursive)", "metavar": "DIR"})
    val_data: tuple[str, ...] = field(default=(), metadata={
        "help": "held-out photos (default: --data)", "metavar": "DIR"})
    mask_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MASK_MIX), metadata={
        "help": "mask sources and their weights, e.g. set1=0.5,set2/train=0.5", "metavar": "SRC=W,..."})
    mask_folder: str | None = field(default=None, metadata={
        "help": "external masks (use with --mask-mix folder=W)", "metavar": "DIR"})
    size: int = field(default=DEFAULT_WORK_SIZE, metadata={"help": "side of the training crops in pixels"})
    batch_size: int = field(default=8, metadata={"help": "images per step, split between the processes"})
    processes: int = field(default=1, metadata={"help": (
        "local training processes that split each batch (DistributedDataParallel, gloo); auto: on a "
        "CPU, the most that divide the batch, up to one a core (the fastest setting measured, "
        "docs/benchmarks.md), 1 on a GPU (use torchrun for several); a resumed run keeps its own")})
    steps: int = field(default=100_000, metadata={"help": "training steps (a resumed run may raise them)"})
    lr_g: float = field(default=2e-4, metadata={"help": "the generator's Adam learning rate"})
    lr_d: float = field(default=2e-5, metadata={"help": "the critic's Adam learning rate"})
    lr_schedule: str = field(default="constant", metadata={
        "help": "constant, or cosine: both rates decay to 0 over --steps on a half cosine, after the warm-up",
        "choices": LR_SCHEDULES})
    warmup_steps: int = field(default=0, metadata={"help": "steps over which both rates rise linearly from 0"})
    stages: tuple[tuple[int, float], ...] = field(default=(), metadata={
        "help": "progressive resizing: SIZE:SHARE stages trained before --size, e.g. 64:0.6,128:0.3 "
                "(the first 60% of the steps at 64 px, the next 30% at 128, the rest at --size); '' for none",
        "metavar": "SIZE:SHARE,..."})
    betas: tuple[float, float] = (0.5, 0.999)
    grad_clip: float = field(default=1.0, metadata={"help": "largest gradient norm of each network (0: no clip)"})
    ema_decay: float = field(default=0.999, metadata={"help": "decay of the generator's weight average (EMA)"})
    d_channels: int = 64
    d_layers: int = 3
    amp: bool = field(default=True, metadata={"help": "float16 autocast and a GradScaler on CUDA"})
    cpu_bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast on a CPU"})
    channels_last: bool = field(default=False, metadata={"help": "NHWC tensors for the convolutions"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the generator"})
    seed: int = field(default=0, metadata={"help": "seeds the weights, the crops and masks, and the data order"})
    deterministic: bool = field(default=False, metadata={
        "help": "deterministic kernels (a bit-identical resume on CUDA)"})
    log_every: int = field(default=50, metadata={"help": "steps between logged rows"})
    sample_every: int = field(default=1000, metadata={"help": "steps between sample grids (0: none)"})
    validate_every: int = field(default=2000, metadata={"help": "steps between validations (0: none)"})
    checkpoint_every: int = field(default=1000, metadata={"help": "steps between writes of latest.pt"})
    keep_every: int = field(default=10_000, metadata={"help": "steps between kept milestones step_N.pt (0: none)"})
    val_size: int = field(default=64, metadata={"help": "validation items (photos with fixed masks)"})
    num_workers: int = field(default=2, metadata={"help": "DataLoader worker processes"})
    init: str | None = field(default=None, metadata={
        "help": "start a new run from this checkpoint's weights (inference or training; fine-tune on "
                "your own --data); the model config comes from it", "metavar": "CHECKPOINT"})

    def __post_init__(self):
        if not isinstance(self.model, BIDSNetConfig):
            raise TypeError(f"model: got {type(self.model).__name__}, expected a BIDSNetConfig")
        if not isinstance(self.loss, LossConfig):
            raise TypeError(f"loss: got {type(self.loss).__name__}, expected a LossConfig")
        for name in ("data", "val_data"):
            value = getattr(self, name)
            if isinstance(value, str | os.PathLike):
                value = (value,)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str | os.PathLike) for v in value):
                raise TypeError(f"{name}: got {value!r}, expected a list of folder paths")
            setattr(self, name, tuple(os.fspath(v) for v in value))  # plain data in checkpoints
        if not isinstance(self.mask_mix, dict):
            raise TypeError(f"mask_mix: got {self.mask_mix!r}, expected a dict {{source: weight}}")
        if self.mask_folder is not None:
            self.mask_folder = os.fspath(self.mask_folder)
        if self.init is not None:
            if not isinstance(self.init, str | os.PathLike):
                raise TypeError(f"init: got {self.init!r}, expected a checkpoint path or None")
            self.init = os.fspath(self.init)
        minimums = {"size": 32, "batch_size": 1, "processes": 1, "steps": 1, "d_channels": 1, "d_layers": 1,
                    "log_every": 1, "checkpoint_every": 1, "val_size": 1, "sample_every": 0,
                    "validate_every": 0, "keep_every": 0, "num_workers": 0, "seed": 0}
        for name, low in minimums.items():
            check_int(name, getattr(self, name), low)
        # A model exported from the run works at this size: the Inpainter's rule, checked now.
        check_multiple("size", self.size, self.model.stride, f"the model's stride {self.model.stride}")
        if self.batch_size % self.processes:
            raise ValueError(f"processes: got {self.processes}, expected a divisor of batch_size {self.batch_size} "
                             "(the processes split the batch)")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(got_expected(name, value, "a number > 0"))
        for name, high in (("grad_clip", math.inf), ("ema_decay", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < high:
                raise ValueError(got_expected(name, value, f"a number >= 0 and < {high}"))
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_int("warmup_steps", self.warmup_steps, 0)
        self.stages = self._checked_stages()
        if (not isinstance(self.betas, list | tuple) or len(self.betas) != 2
                or not all(isinstance(b, int | float) and 0 <= b < 1 for b in self.betas)):
            raise ValueError(got_expected("betas", self.betas, "two numbers in [0, 1)"))
        self.betas = tuple(float(b) for b in self.betas)
        for name in ("amp", "cpu_bf16", "channels_last", "compile", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(got_expected(name, getattr(self, name), "True or False"))

    def _checked_stages(self) -> tuple[tuple[int, float], ...]:
        expected = "(size, share) pairs, sizes multiples of the model's stride below size, shares summing to < 1"
        if not isinstance(self.stages, list | tuple) or not all(
                isinstance(s, list | tuple) and len(s) == 2 for s in self.stages):
            raise TypeError(got_expected("stages", self.stages, expected))
        stride = self.model.stride
        for size, share in self.stages:
            check_int("stages size", size, 32)
            check_fraction("stages share", share, high_open=True)
            if size % stride or size >= self.size:
                raise ValueError(got_expected("stages", self.stages, expected + f" (stride {stride}, size {self.size}); "
                                                 "stages=() trains every step at size"))
        if sum(share for _, share in self.stages) >= 1:
            raise ValueError(got_expected("stages", self.stages, expected))
        return tuple((int(size), float(share)) for size, share in self.stages)

    def size_at(self, step: int) -> int:
        """The crop side of training step ``step`` (counted from 0): the stage it falls in, else ``size``.
        Stages are shares of ``steps``, so a resumed run that raises ``steps`` stretches them."""
        end = 0.0
        for size, share in self.stages:
            end += share * self.steps
            if step < end:
                return size
        return self.size

    def lr_factor(self, step: int) -> float:
        """The multiple of ``lr_g`` and ``lr_d`` at step ``step`` (counted from 0): a function of
        the step alone, so a resumed run continues the schedule where it stood."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return 1.0
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    @classmethod
    def paper(cls) -> "TrainConfig":
        """Colab GPU: paper model at 256 px, batch 8, ImageNet VGG-19 losses, float16 autocast.

        Not retuned by the time-to-quality benchmark, which has not been run at this width."""
        return cls()

    @classmethod
    def small(cls) -> "TrainConfig":
        """CPU (``bidsnet train``'s default): the "today" recipe of ``bench/time_to_quality.py``.

        - Start: ``BIDSNetConfig.small()`` on a Telea fill with a residual head, the shipped
          model's (``bidsnet_lib/checkpoints/MODEL_CARD.md``): started the paper's way (zero-filled
          holes, an image head) the model stayed 3-4 dB behind Telea at CPU budgets.
        - Losses: hole/valid L1 + 2 x (1 - SSIM), the shipped model's last run; no critic (its x0.1
          traded PSNR for sharpness), no VGG-19: through the output, forward and backward, it more
          than doubles a CPU step (batch 4, 64 px, one thread: 0.29 s -> 0.66 s), and a random VGG,
          the only one offline, measures nothing perceptual (``loss=`` or ``--adversarial 0.1
          --perceptual 0.1 --style 250`` turn them on).
        - Schedule, chosen by the time-to-quality benchmark (docs/benchmarks.md, "Time to quality"):
          Adam 2e-4, constant, every step at 128 px, 2,200 steps (its 45 CPU-minute budget on 2
          cores). From scratch it reached +0.72 dB PSNR over the best classical baseline on val
          (Set I 30-60 %) in 39 CPU-minutes, ahead at every milestone of the "fast" levers (a
          cosine from a peak of 8e-4 and 70 % of the steps at 64 px: +0.57 dB in 43); the shipped
          model, about 300 CPU-minutes, +1.09: matching it at that budget is not reached. The
          levers stay flags (``--lr-schedule cosine --warmup-steps 100 --stages 64:0.7``).
        """
        return cls(model=dataclasses.replace(BIDSNetConfig.small(), input_fill="telea", output="residual"),
                   loss=LossConfig(adversarial=0.0, perceptual=0.0, style=0.0, ssim=2.0),
                   size=128, batch_size=4, steps=2200, lr_g=2e-4, lr_d=5e-5, d_channels=32, amp=False,
                   log_every=10, sample_every=100, validate_every=500, checkpoint_every=100, keep_every=0,
                   val_size=32, num_workers=0)

    def to_dict(self) -> dict:
        """Plain data (ints, floats, strings, lists, dicts) for checkpoints and JSON."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(model=self.model.to_dict(), loss=dataclasses.asdict(self.loss), data=list(self.data),
                    val_data=list(self.val_data), betas=list(self.betas), mask_mix=dict(self.mask_mix),
                    stages=[list(stage) for stage in self.stages])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The config ``to_dict`` wrote; unknown keys are an error."""
        check_config_keys(cls, data)
        data = dict(data)
        if "model" in data:
            data["model"] = BIDSNetConfig.from_dict(data["model"])
        if "loss" in data:
            data["loss"] = LossConfig(**data["loss"])
        return cls(**data)


PRESETS = {"small": TrainConfig.small, "paper": TrainConfig.paper}


def model_config_differences(saved: BIDSNetConfig, given: BIDSNetConfig) -> list[str]:
    """One ``field: saved X, given Y`` line per BIDSNetConfig field where the two differ."""
    return [f"{f.name}: saved {getattr(saved, f.name)!r}, given {getattr(given, f.name)!r}"
            for f in dataclasses.fields(BIDSNetConfig) if getattr(saved, f.name) != getattr(given, f.name)]


def checkpoint_model_config(path: str | os.PathLike) -> BIDSNetConfig:
    """The model config stored in an inference or training checkpoint (weights memory-mapped)."""
    data = load_checkpoint(path, (INFERENCE_FORMAT, TRAIN_FORMAT), mmap=True)
    return BIDSNetConfig.from_dict(data["config"]["model"] if data["format"] == TRAIN_FORMAT else data["config"])


def newest_checkpoint(out_dir: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """The newest checkpoint of the run in ``out_dir`` that loads: ``latest.pt``, else the
    milestones ``step_N.pt`` newest first (None when none does), and why each newer one was skipped
    (empty, truncated, not a checkpoint). Only the file's structure is read (memory-mapped)."""
    out_dir = Path(out_dir)
    skipped = []
    for path in [out_dir / "latest.pt", *sorted(out_dir.glob("step_*.pt"), reverse=True)]:
        if not path.is_file():
            continue
        try:
            load_checkpoint(path, TRAIN_FORMAT, mmap=True)
            return path, skipped
        except CheckpointError as error:
            skipped.append(str(error))
    return None, skipped


def read_run_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The config saved in the run's newest checkpoint that loads, ``latest.pt`` unless it is
    damaged (:func:`newest_checkpoint`; memory-mapped: the weights are not read)."""
    found, _ = newest_checkpoint(out_dir)
    return TrainConfig.from_dict(load_checkpoint(found or Path(out_dir) / "latest.pt", TRAIN_FORMAT, mmap=True)["config"])
