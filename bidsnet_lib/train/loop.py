"""Training BIDS-Net: the GAN loop, its config, logs, checkpoints that resume exactly, torchrun.

Taught in ``notebooks/06_training.ipynb``. One step (:meth:`Trainer.train_step`):

1. the generator G predicts the holes: ``pred = G(image, mask)``; ``comp`` keeps known pixels;
2. the critic D (a spectral-norm PatchGAN) learns real patches from generated ones
   (``losses.discriminator_loss``, in float32);
3. G minimises ``losses.GeneratorLoss`` (hole/valid L1, adversarial, optionally perceptual,
   style, SSIM and feature matching on the critic's features), with gradient clipping and, on
   CUDA, float16 autocast with a GradScaler;
4. an exponential moving average (EMA) of G's weights is updated; it is what validation, sample
   grids and ``bidsnet export`` use, since averaging smooths the step-to-step jitter of a GAN.

Exact resume: each item's crop, flip and mask depend only on (seed, epoch, index) (see
``bidsnet_lib.data``), the order of items on (seed, epoch, rank) through ``DistributedSampler``,
and the position in that stream on the step; a checkpoint holds the weights, both optimisers,
the scaler, every process's RNG states and the attention redraw counters. So K steps, a kill,
and a resume for K more give the very weights of 2K steps in one go (tested on CPU).

Several processes: ``bidsnet train`` starts ``processes`` of them on the CPU (they split the
batch), or ``torchrun --nproc_per_node=N -m bidsnet_lib.commands.train --data DIR --out runs/x``
(GPUs; ``batch_size`` is then per process, so the global batch is N times larger); both run
DistributedDataParallel (NCCL on GPUs, gloo on CPU). Only rank 0 logs, draws the bar and writes files.

Run directory: ``latest.pt`` (+ ``step_NNNNNNN.pt`` milestones), ``metrics.jsonl`` (one JSON
object a line), ``samples/step_NNNNNNN.png`` (rows: input, mask, output, target), ``config.json``.

The config lives in :mod:`.config`, the EMA, RNG states, sample grids and the metrics log in
:mod:`.utils`, the run folder's rules in :mod:`.runs`, the checks before a run and its processes
in :mod:`.launch`.
"""

import contextlib
import copy
import itertools
import json
import math
import os
import random
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision.utils import save_image
from tqdm.auto import tqdm

import bidsnet_lib
from bidsnet_lib.attention import FastAttention
from bidsnet_lib.checkpoint import (
    INFERENCE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    check_finite,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from bidsnet_lib.data import InpaintingDataset, fixed_validation_set
from bidsnet_lib.losses import PatchDiscriminator, discriminator_loss
from bidsnet_lib.metrics import psnr, ssim
from bidsnet_lib.model import (
    build_model,
    composite,
)
from bidsnet_lib.plumbing import atomic_write, check_int, got_expected, resolve_device
from bidsnet_lib.train.config import (
    TrainConfig,
)
from bidsnet_lib.train.launch import Preflight, preflight
from bidsnet_lib.train.runs import (
    RunLock,
    StopRequest,
    ignore_stop_signals,
    resolve_paths,
)
from bidsnet_lib.train.utils import (
    ema_decay,
    read_metrics,
    redraw_counters,
    rng_state,
    sample_grid,
    set_rng_state,
    spread_items,
    update_ema,
    weights_digest,
)

# ----------------------------------------------------------------------------------------------
# Data order: an endless, resumable stream of (epoch, index) keys


class EpochSampler(Sampler):
    """Endless ``(epoch, index)`` keys for one process, from its sample number ``start`` on.

    Epoch e is ``DistributedSampler``'s shuffled shard of this rank (seeded by ``seed`` and e),
    so where the stream stands is a function of one number: resuming at step s starts at sample
    ``s * batch_size``. The epoch travels with the index because DataLoader workers hold copies
    of the dataset, which an epoch set on the main process's copy would not reach.
    """

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0):
        check_int("n", n, 1)  # the dataset length
        check_int("start", start, 0)
        self.shard = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.start = start

    def __iter__(self):
        epoch, skip = divmod(self.start, len(self.shard))
        while True:
            self.shard.set_epoch(epoch)
            for index in itertools.islice(iter(self.shard), skip, None):
                yield epoch, index
            epoch, skip = epoch + 1, 0


class StagedSampler(Sampler):
    """``EpochSampler``'s keys with the crop side of their step: ``(epoch, index, size)``.

    Sample n belongs to step ``n // batch``; ``size_at(step)`` (``TrainConfig.size_at``, the
    progressive-resizing stages) gives its side, the same for all of one batch. Still a function
    of the sample number alone, so a resumed run draws what the uninterrupted one would have.
    """

    def __init__(self, keys: EpochSampler, batch: int, size_at):
        self.keys, self.batch, self.size_at = keys, check_int("batch", batch, 1), size_at

    def __iter__(self):
        for sample, (epoch, index) in enumerate(self.keys, start=self.keys.start):
            yield epoch, index, self.size_at(sample // self.batch)


class EpochItems(Dataset):
    """``dataset[(epoch, index)]``: the item ``index`` of ``epoch`` as {"image", "mask"} only;
    a key ``(epoch, index, size)`` asks for that crop side instead of the dataset's own."""

    def __init__(self, dataset: InpaintingDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | tuple[int, int, int]) -> dict:
        epoch, index, size = key if len(key) == 3 else (*key, None)
        self.dataset.set_epoch(epoch)
        item = self.dataset.item(index, size)
        return {"image": item["image"], "mask": item["mask"]}


# ----------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """A training run in ``out_dir``: build with a config, then ``train()``; see the module docstring.

    ``resume=True`` continues the run in ``out_dir`` from ``latest.pt``; ``config`` must equal the
    saved one except for :data:`RESUME_OVERRIDABLE` fields (e.g. a larger ``steps``), and its
    ``data`` must hold the photos the run trained on. Without ``resume`` an ``out_dir`` that holds
    anything is refused rather than overwritten or mixed into, unless ``overwrite=True`` (which
    replaces the run files there). Folders are stored resolved (absolute). These checks are
    :func:`~bidsnet_lib.train.preflight`'s; ``checked`` is its result for these arguments when the
    caller ran it already (``bidsnet train`` does, before it starts its other processes).
    """

    def __init__(self, config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                 device: str | torch.device | None = None, progress: bool = True, overwrite: bool = False,
                 checked: Preflight | None = None):
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.is_main = self.rank == 0
        self.device = resolve_device(device, "device") if device is not None else _process_device()
        if self.device.type == "cuda" and self.device.index is None:  # DDP needs the index
            self.device = torch.device("cuda", torch.cuda.current_device())
        if checked is None:
            checked = preflight(config, out_dir, resume=resume, overwrite=overwrite, clear=self.is_main)
        elif (checked.config, checked.out_dir, checked.resume) != (resolve_paths(config), Path(out_dir), resume):
            raise ValueError(got_expected("checked", "the preflight of another run", "preflight() of this one"))
        config, checkpoint, self.photos = checked.config, checked.checkpoint, checked.photos
        # The folder's lock lives as long as this Trainer (close() or the end of the process ends it).
        self._release = weakref.finalize(self, RunLock.release, checked.lock) if checked.lock else lambda: None
        self.config, self.out_dir, self.progress = config, checked.out_dir, progress
        if config.processes > 1 and self.world_size != config.processes:
            raise ValueError(f"processes: got {config.processes} in the config, expected the {self.world_size} "
                             "process(es) running it; `bidsnet train` starts them")
        self.batch = config.batch_size // config.processes  # this process's share of each step
        self.stopped_by: int | None = None  # the signal that ended train() early, if any
        self.loss_fn = checked.loss_fn.to(self.device)
        _seed_everything(config.seed)
        if config.deterministic:
            # Process-wide; CUDA also needs CUBLAS_WORKSPACE_CONFIG set before its first matmul.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = not config.deterministic  # fixed input size: tune once

        self.generator = build_model(config.model).to(self.device)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.discriminator = self.opt_d = None
        if config.loss.adversarial > 0:  # feature matching uses it too; LossConfig allows it only then
            self.discriminator = PatchDiscriminator(channels=config.d_channels, n_layers=config.d_layers).to(self.device)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self.fp16 = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.fp16)
        self.step = 0
        if checkpoint is not None:
            self._load_state(checkpoint)
        elif config.init is not None:
            self._warm_start(Path(config.init))

        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        for module in (self.generator, self.ema, self.discriminator):
            if module is not None:
                module.to(memory_format=self.memory_format)
        self.g_train, self.d_train = self.generator, self.discriminator  # what forward/backward use
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DistributedDataParallel(self.generator, device_ids=ids)
            if self.discriminator is not None:
                self.d_train = DistributedDataParallel(self.discriminator, device_ids=ids)
        if config.compile:
            self.g_train = torch.compile(self.g_train)

        common = dict(size=config.size, seed=config.seed)
        self.train_set = InpaintingDataset(config.data, train=True, mask_mix=config.mask_mix,
                                           mask_folder=config.mask_folder, **common)
        # (V, 3, S, S) and (V, 1, S, S): loaded once, on rank 0 only (the others never validate).
        self.val_images, self.val_masks = self._validation_items() if self.is_main else (None, None)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out_dir / "config.json", json.dumps(config.to_dict(), indent=2))
            if checkpoint is not None:
                self._truncate_log(self.step)
        if checkpoint is not None:  # last, after everything that drew random numbers at set-up
            self._restore_rng(checkpoint["rng"])

    def close(self) -> None:
        """Let another process write the run folder (its lock released); the Trainer is done."""
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- set-up helpers ------------------------------------------------------------------------

    def _load_state(self, checkpoint: dict) -> None:
        self.generator.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.opt_g.load_state_dict(checkpoint["opt_g"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(checkpoint["discriminator"])
            self.opt_d.load_state_dict(checkpoint["opt_d"])
        if checkpoint["scaler"]:  # empty when written without float16 (e.g. on a CPU)
            self.scaler.load_state_dict(checkpoint["scaler"])
        for name, module in self.generator.named_modules():
            if isinstance(module, FastAttention):
                module.calls_since_redraw = checkpoint["redraw_calls"][name]
        self.step = checkpoint["step"]

    def _warm_start(self, path: Path) -> None:
        """Generator (and EMA) weights from ``path``, the critic's too when both have one."""
        data = load_checkpoint(path, (INFERENCE_FORMAT, TRAIN_FORMAT))  # checked by preflight's check_init
        is_train = data["format"] == TRAIN_FORMAT
        weights = data["ema"] if is_train else data["model"]  # the EMA is what was validated
        load_weights(self.generator, weights, path)
        load_weights(self.ema, weights, path)
        if is_train and self.discriminator is not None and data.get("discriminator"):
            try:
                self.discriminator.load_state_dict(data["discriminator"])
            except RuntimeError:
                raise ValueError(f"init: the critic in {path} does not fit d_channels={self.config.d_channels}, "
                                 f"d_layers={self.config.d_layers}; pass the values of its run") from None

    def _restore_rng(self, states: list[dict]) -> None:
        if len(states) == self.world_size:
            set_rng_state(states[self.rank], self.device)
        else:
            warnings.warn(f"the checkpoint was written by {len(states)} processes, this run has "
                          f"{self.world_size}: the run continues, but not bit-identically", stacklevel=3)
            _seed_everything(self.config.seed + self.step + self.rank)

    def _validation_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``val_size`` fixed items: the photos in turn, each with a mask from across the set."""
        cfg = self.config
        full = fixed_validation_set(cfg.val_data or cfg.data, size=cfg.size, seed=cfg.seed)
        items = [full[k] for k in spread_items(len(full), len(full.paths), cfg.val_size)]
        return torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])

    def autocast(self):
        """float16 autocast on CUDA (``amp``), bfloat16 on CPU (``cpu_bf16``), else nothing."""
        if self.fp16:
            return torch.autocast("cuda", dtype=torch.float16)
        if self.device.type == "cpu" and self.config.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- one step --------------------------------------------------------------------------------

    def set_learning_rates(self) -> None:
        """Both optimisers at ``TrainConfig.lr_factor(step)`` times their peak rate."""
        factor = self.config.lr_factor(self.step)
        for optimiser, peak in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in optimiser.param_groups if optimiser is not None else ():
                group["lr"] = peak * factor

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One critic update, then one generator update and the EMA; returns detached 0-dim logs."""
        cfg = self.config
        image = batch["image"].to(self.device, non_blocking=True, memory_format=self.memory_format)  # (B, 3, S, S)
        mask = batch["mask"].to(self.device, non_blocking=True, memory_format=self.memory_format)  # (B, 1, S, S), 1 = hole
        clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        self.set_learning_rates()  # the schedule's rates at this step (warm-up, cosine decay)
        with self.autocast():
            pred = self.g_train(image, mask)  # (B, 3, S, S)
        comp = composite(pred, image, mask)  # float32, known pixels exact: what the critic judges
        logs = {}
        if self.discriminator is not None:
            # float32 on purpose: R1 differentiates through D twice, where float16 overflows.
            self.discriminator.requires_grad_(True)
            d_loss, d_logs = discriminator_loss(self.d_train, image, comp, mask, cfg.loss)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            logs["d_grad_norm"] = torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), clip)
            self.opt_d.step()
            # Frozen for G's step: G's loss reaches G through D's input, and D's weights keep
            # no stale gradients. G's step calls the bare module: D's DDP expects its own backward.
            self.discriminator.requires_grad_(False)
            logs.update(d_logs)
        with self.autocast():
            g_loss, g_logs = self.loss_fn(pred, comp, image, mask, self.discriminator)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(g_loss).backward()
        self.scaler.unscale_(self.opt_g)  # clip the true gradients, not the scaled ones
        logs["g_grad_norm"] = torch.nn.utils.clip_grad_norm_(self.generator.parameters(), clip)
        self.scaler.step(self.opt_g)  # skipped when the scaled gradients overflowed
        self.scaler.update()
        update_ema(self.ema, self.generator, ema_decay(self.step, cfg.ema_decay))
        logs.update({("g_total" if k == "total" else k): v for k, v in g_logs.items()})
        return {k: v.detach().float() for k, v in logs.items()}

    # -- the loop --------------------------------------------------------------------------------

    def loader(self) -> DataLoader:
        """Training batches from the current step on (each process its own shard)."""
        cfg = self.config
        keys = EpochSampler(len(self.train_set), seed=cfg.seed, rank=self.rank,
                            world_size=self.world_size, start=self.step * self.batch)
        sampler = StagedSampler(keys, self.batch, cfg.size_at)
        # Its own generator: creating an iterator then leaves the global RNG untouched.
        return DataLoader(EpochItems(self.train_set), batch_size=self.batch, sampler=sampler,
                          num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(cfg.seed),
                          worker_init_fn=ignore_stop_signals if cfg.num_workers else None)

    def train(self, until: int | None = None) -> dict:
        """Train up to step ``until`` (default ``config.steps``), then checkpoint; returns the last
        log row. Logs, samples, validation and checkpoints follow the config's intervals.

        SIGINT (Ctrl-C) or SIGTERM ends the loop at the next step boundary with a checkpoint of
        that step; ``stopped_by`` then names the signal."""
        cfg = self.config
        until = cfg.steps if until is None else until
        if check_int("until", until) < self.step:
            raise ValueError(got_expected("until", until, f"an int >= the current step {self.step}"))
        bar = tqdm(total=until, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (self.is_main and self.progress))
        batches = iter(self.loader())
        self.generator.train()
        if self.is_main and cfg.validate_every and self.step == 0:  # the untrained baseline
            self._write_row({"step": 0, **self.validate()})
        sums, count, tick, row = {}, 0, time.perf_counter(), {}
        with StopRequest() as stop:
            row = self._loop(until, batches, bar, stop, sums, count, tick, row)
        bar.close()
        del batches  # stops DataLoader workers
        self._check_ranks_agree()
        return row

    def _stop_now(self, stop: StopRequest) -> bool:
        """Whether any process was asked to stop (all of them then stop at the same step)."""
        flag = stop.signal is not None
        if self.world_size > 1:
            t = torch.tensor([float(stop.signal or 0)], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag, stop.signal = bool(t.item()), int(t.item()) or None
        return flag

    def _loop(self, until, batches, bar, stop, sums, count, tick, row) -> dict:
        cfg = self.config
        while self.step < until:
            if self._stop_now(stop):
                self.stopped_by = stop.signal
                if not (self.step % cfg.checkpoint_every == 0 and (self.out_dir / "latest.pt").exists()):
                    self.save_checkpoint()
                break
            try:
                batch = next(batches)
            except RuntimeError:  # a DataLoader worker hit by the signal before it could ignore it
                if stop.signal is None:
                    raise
                continue
            logs = self.train_step(batch)
            self.step += 1
            for k, v in logs.items():
                sums[k] = sums.get(k, 0) + v
            count += 1
            if self.step % cfg.log_every == 0 or self.step == until:
                now = time.perf_counter()
                row = self._log_row(sums, count, now - tick)
                sums, count, tick = {}, 0, now
                bar.set_postfix(g=f"{row['g_total']:.3f}", hole=f"{row['hole']:.3f}",
                                **({"d": f"{row['d_total']:.3f}"} if "d_total" in row else {}))
            if self.is_main and cfg.sample_every and (self.step % cfg.sample_every == 0 or self.step == until):
                self.write_samples()
            if self.is_main and cfg.validate_every and (self.step % cfg.validate_every == 0 or self.step == until):
                self._write_row({"step": self.step, **self.validate()})
            if self.step % cfg.checkpoint_every == 0 or self.step == until:
                self.save_checkpoint()
            bar.update(1)
        return row

    def _log_row(self, sums: dict, count: int, seconds: float) -> dict:
        names = sorted(sums)
        means = torch.stack([sums[k] for k in names]) / count
        if self.world_size > 1:
            dist.all_reduce(means)  # every rank's mean, averaged: the logged loss is the global one
            means /= self.world_size
        row = {"step": self.step, **dict(zip(names, means.tolist(), strict=True)),
               "steps_per_s": count / seconds, "lr_g": self.opt_g.param_groups[0]["lr"]}
        self._write_row(row)
        return row

    def _write_row(self, row: dict) -> None:
        if self.is_main:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Drop rows logged after ``step``: a resumed run re-logs those steps."""
        path = self.out_dir / "metrics.jsonl"
        if path.is_file():  # read_metrics leaves out a line torn by a crash
            rows = [row for row in read_metrics(self.out_dir, skip_damaged=True) if row["step"] <= step]
            atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR (dB) and SSIM of the EMA generator's composites on the fixed-mask validation
        items: {"val_psnr": ..., "val_ssim": ...}."""
        scores = {"val_psnr": [], "val_ssim": []}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for image, mask in zip(self.val_images.split(self.config.batch_size),
                                   self.val_masks.split(self.config.batch_size), strict=True):
                image, mask = image.to(self.device), mask.to(self.device)
                comp = composite(self.ema(image, mask), image, mask)
                scores["val_psnr"].append(psnr(comp, image))
                scores["val_ssim"].append(ssim(comp, image))
        return {name: torch.cat(values).mean().item() for name, values in scores.items()}

    def write_samples(self) -> Path:
        """Save the sample grid of the first 4 validation items (EMA weights) to ``samples/``."""
        image, mask = self.val_images[:4].to(self.device), self.val_masks[:4].to(self.device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            grid = sample_grid(self.ema, image, mask)
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        return atomic_write(path, lambda stream: save_image(grid, stream, format="png"))

    # -- checkpoints -----------------------------------------------------------------------------

    def state(self) -> dict:
        """The training checkpoint's payload (gathers every rank's RNG state: call on all ranks)."""
        states = [rng_state(self.device)]
        if self.world_size > 1:
            states = [None] * self.world_size
            dist.all_gather_object(states, rng_state(self.device))
        d = self.discriminator
        return {
            "step": self.step, "model": self.generator.state_dict(), "ema": self.ema.state_dict(),
            "discriminator": None if d is None else d.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": None if d is None else self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(), "config": self.config.to_dict(), "rng": states,
            "redraw_calls": redraw_counters(self.generator),
            "meta": {"vgg_weights": self.loss_fn.weights_source or "none (perceptual and style off)",
                     "data": list(self.config.data), "photos": self.photos, "image_size": self.config.size,
                     "world_size": self.world_size, "samples_per_rank": self.step * self.batch,
                     "torch": str(torch.__version__), "bidsnet_lib_version": bidsnet_lib.__version__},
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``latest.pt`` atomically (and a milestone every ``keep_every`` steps) on rank 0."""
        state = self.state()
        try:  # a diverged run must not replace its last good checkpoint with NaN weights
            check_finite(state["model"], self.out_dir / "latest.pt", f"step {self.step} model weights")
        except CheckpointError as error:
            raise FloatingPointError(f"training diverged: {error}; latest.pt was not overwritten "
                                     f"(lower --lr-g / --lr-d, or resume from it)") from None
        if not self.is_main:
            return None
        if self.config.keep_every and self.step % self.config.keep_every == 0:
            save_checkpoint(state, self.out_dir / f"step_{self.step:07d}.pt", TRAIN_FORMAT)
        return save_checkpoint(state, self.out_dir / "latest.pt", TRAIN_FORMAT)

    def _check_ranks_agree(self) -> None:
        """Log every rank's weight digest; DDP keeps them equal, unequal ones mean a broken run."""
        digest = weights_digest(*(m for m in (self.generator, self.discriminator) if m is not None))
        digests = [digest]
        if self.world_size > 1:
            digests = [None] * self.world_size
            dist.all_gather_object(digests, digest)
        self._write_row({"step": self.step, "weights_sha256": digests})
        if len(set(digests)) > 1:
            warnings.warn(f"processes hold different weights after step {self.step}: {digests}", stacklevel=2)


def _process_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK), else ``bidsnet_lib.default_device()``."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)
    random.seed(seed)
