"""The ablation studies, as data: each a claim of the paper (or the course's own) and the model
variants that test it, one ``BIDSNetConfig`` field (or two) changed from :func:`reference_model`
(the default recipe's model, the shipped one's configuration), and the settings every run of an
invocation shares.

:mod:`bidsnet_lib.ablate` trains and evaluates them, :mod:`bidsnet_lib.ablate.tables` judges
and reads back their reports, ``bidsnet model --summary`` counts the parameters of every variant
(:func:`ablation_variants`); notebook 09 reads them. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bidsnet_lib.masks import SHIPPED_MASKS
from bidsnet_lib.plumbing import DATA_DIR, REPO_ROOT, SHIPPED_IMAGES, check_choice, check_int

if TYPE_CHECKING:
    from bidsnet_lib.model import BIDSNetConfig
    from bidsnet_lib.train import TrainConfig

TRAIN_IMAGES = DATA_DIR / "images" / "train"
# Every run trains TrainConfig.small()'s recipe for its own 2,200 steps (its 45 CPU-minute budget on
# 2 cores, where the reference model leads the best classical baseline on val by +0.72 dB: issue 26
# asks for at least +0.5). One thread, 128 px: about 0.85 CPU-s a step, so ~31 min a run plus its
# evaluation; `--dry-run` measures and prints the estimate at this machine's load.
DEFAULT_STEPS = 2200
# Scored as the model card scores the shipped model: at 256 px, through Inpainter.
DEFAULT_EVAL_SIZE = 256
LPIPS_MODES = ("off", "alex", "random")


@dataclass(frozen=True)
class Variant:
    """One model of a study: the reference (:func:`reference_model`) with the fields of ``changes`` set."""

    name: str  # "fusion=add"
    changes: tuple[tuple[str, object], ...]

    def config(self, base: BIDSNetConfig) -> BIDSNetConfig:
        return dataclasses.replace(base, **dict(self.changes))

    @property
    def label(self) -> str:
        """The changed value alone ("add"), for plot ticks."""
        return ", ".join(str(v) for _, v in self.changes)


@dataclass(frozen=True)
class Study:
    """A claim of the paper and the variants that test it; ``match``: rivals the paper's choice
    need only not lose to (a trade-off claim); it must beat every other rival."""

    name: str
    title: str
    claim: str
    variants: tuple[Variant, ...]
    winner: str
    match: tuple[str, ...] = ()

    def __post_init__(self):
        names = [v.name for v in self.variants]
        unknown = [n for n in (self.winner, *self.match) if n not in names]
        if unknown:
            raise ValueError(f"study {self.name!r}: {unknown} are not among its variants {names}")

    def rivals(self, present: Sequence[str]) -> tuple[list[str], list[str]]:
        """(must beat, must not lose to) among the variant names ``present``."""
        beat = [n for n in present if n != self.winner and n not in self.match]
        return beat, [n for n in present if n in self.match]


def reference_model() -> BIDSNetConfig:
    """The model every study varies, its runs (``reference``) shared by all: the default recipe's,
    ``TrainConfig.small().model`` (the small preset on a Telea fill with a residual head, the
    shipped model's configuration)."""
    # Not BIDSNetConfig.small(), the paper's zero-filled start: at a CPU budget that model stays
    # 3-4 dB behind Telea, and a choice's worth to a model that poor says little about the shipped one.
    from bidsnet_lib.train import TrainConfig  # imports torch: only when a config is built

    return TrainConfig.small().model


def _sweep(field: str, values: Sequence) -> tuple[Variant, ...]:
    return tuple(Variant(f"{field}={v}", ((field, v),)) for v in values)


# In the order the course runs them (issue 26): its own model's start first (its winner is the
# reference; its rivals, the paper's start and a Telea fill under an image head), then the premise
# that two streams beat one, then the paper's claims.
STUDIES = {
    "start": Study(
        "start", "Where the network starts: input fill and output form (course addition)",
        "a residual on a Telea fill (holes pre-filled by OpenCV's Telea, the head adding a "
        "zero-initialised correction) beats the paper's zero-filled input with a sigmoid image head, "
        "and a Telea-filled input alone",
        (Variant("input_fill=zeros, output=image", (("input_fill", "zeros"), ("output", "image"))),
         Variant("input_fill=telea, output=image", (("input_fill", "telea"), ("output", "image"))),
         Variant("input_fill=telea, output=residual", (("input_fill", "telea"), ("output", "residual")))),
        "input_fill=telea, output=residual"),
    "streams": Study(
        "streams", "Two streams against one (the method's premise)",
        "the dual-stream model beats the CNN stream alone and the Transformer stream alone, each sized "
        "to the same parameter count", _sweep("streams", ("dual", "cnn", "transformer")), "streams=dual"),
    "interaction": Study(
        "interaction", "Interaction between the streams",
        "bidirectional interaction beats one-way interaction (CNN → Transformer, Transformer → CNN), "
        "none, and the paper's unified path (one stream whose blocks hold both a convolution and an "
        "attention, at the same parameter count)",
        _sweep("interaction", ("bidirectional", "cnn_to_trans", "trans_to_cnn", "none", "unified")),
        "interaction=bidirectional"),
    "fusion": Study(
        "fusion", "Fusion inside BFI", "Selective Feature Fusion (SFF) beats element-wise addition "
        "and concatenation", _sweep("fusion", ("sff", "add", "concat")), "fusion=sff"),
    "channel_split": Study(
        "channel_split", "Channel split between the streams",
        "an equal split of the channels between the CNN and the Transformer stream (CNN share 0.5) "
        "is best, at equal total width", _sweep("cnn_share", (0.25, 0.5, 0.75)), "cnn_share=0.5"),
    "nb_features": Study(
        "nb_features", "Number of random features",
        "72 orthogonal random features are the best trade-off: better than fewer (16, 32), and no "
        "worse than more (128, 256) or than exact softmax attention",
        _sweep("nb_features", (16, 32, 72, 128, 256)) + (Variant("attention=softmax", (("attention", "softmax"),)),),
        "nb_features=72", match=("nb_features=128", "nb_features=256", "attention=softmax")),
    "features": Study(
        "features", "Kind of random features: FAVOR+ against FAVOR++ (course addition)",
        "the paper's FAVOR+ positive random features (m = 72) lose nothing against the lower-variance "
        "optimal positive random features of FAVOR++ (Likhosherstov et al., 2022) at the same m, nor "
        "against exact softmax attention", _sweep("attention", ("favor", "favor++", "softmax")),
        "attention=favor", match=("attention=favor++", "attention=softmax")),
}
STUDY_NAMES = (*STUDIES, "all")


def resolve_studies(name: str) -> list[Study]:
    """The studies run by ``--study name`` ("all": every one)."""
    if name == "all":
        return list(STUDIES.values())
    return [STUDIES[check_choice("study", name, STUDY_NAMES)]]


def study_variants(study: Study, quick: bool) -> list[Variant]:
    """Every variant, or in quick mode the paper's choice and the first rival."""
    if not quick:
        return list(study.variants)
    first_rival = next(v for v in study.variants if v.name != study.winner)
    return [v for v in study.variants if v.name in (study.winner, first_rival.name)]


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class AblationSettings:
    """What every run of an invocation shares; ``quick_preset()`` is the smoke test's."""

    steps: int = DEFAULT_STEPS
    seeds: int = 2
    batch_size: int = 4  # TrainConfig.small()'s, stated here so that a report is read without torch
    size: int = 128  # training crops
    eval_size: int = DEFAULT_EVAL_SIZE  # side of the test photos scored
    limit: int | None = None  # masks per group in the evaluation (None: all)
    lpips: str = "off"
    lpips_weights: str | None = None
    train_images: str = str(TRAIN_IMAGES)
    test_images: str = str(SHIPPED_IMAGES)
    masks: str = str(SHIPPED_MASKS)
    quick: bool = False

    def __post_init__(self):
        for name, low in (("steps", 1), ("seeds", 2), ("batch_size", 1), ("size", 32), ("eval_size", 32)):
            check_int(name, getattr(self, name), low)
        check_int("limit", self.limit, 1, optional=True)  # None: every mask
        check_choice("lpips", self.lpips, LPIPS_MODES)
        if self.lpips_weights is not None and self.lpips != "alex":
            raise ValueError(f"lpips_weights: got weights for lpips={self.lpips!r}, expected them only with lpips='alex'")
        for name in ("train_images", "test_images", "masks"):
            object.__setattr__(self, name, os.path.abspath(getattr(self, name)))

    @classmethod
    def quick_preset(cls, **changes) -> AblationSettings:
        """2 steps of batch 2 at 64 px, scored at 64 px, 1 mask per group, 2 seeds: shows the runner
        works, measures nothing (a batch of 4 would go through the same code at twice the cost)."""
        return cls(**{"steps": 2, "seeds": 2, "batch_size": 2, "size": 64, "eval_size": 64, "limit": 1,
                      "quick": True, **changes})

    @property
    def metrics(self) -> list[str]:
        return ["psnr", "ssim"] + ([] if self.lpips == "off" else ["lpips"])

    def train_config(self, model: BIDSNetConfig, seed: int) -> TrainConfig:
        """The small preset (the default recipe) with this model, seed, data, size, batch and steps;
        no validation or samples (the evaluation replaces them)."""
        from bidsnet_lib.train import TrainConfig

        preset = TrainConfig.small()
        return dataclasses.replace(preset, model=model, data=(self.train_images,), size=self.size,
                                   batch_size=self.batch_size, steps=self.steps, seed=seed, validate_every=0,
                                   sample_every=0)

    def eval_fingerprint(self) -> dict:
        return {"images": self.test_images, "masks": self.masks, "size": self.eval_size, "limit": self.limit,
                "lpips": self.lpips}

    def fingerprint(self, model: BIDSNetConfig, seed: int) -> dict:
        """Everything a run's numbers depend on, as JSON would read it back; folders inside the
        repository relative to it, so that a finished run committed from one checkout is reused
        by another (another machine, another clone)."""
        data = {"train": self.train_config(model, seed).to_dict(), "eval": self.eval_fingerprint()}
        return _portable(json.loads(json.dumps(data)))


def _portable(value):
    """``value`` (JSON data) with every absolute path inside the repository made relative to it."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(REPO_ROOT):
        return Path(value).relative_to(REPO_ROOT).as_posix()
    return value


def ablation_variants(base: BIDSNetConfig) -> dict[str, BIDSNetConfig]:
    """Every study's variants of ``base`` that differ from it, keyed by the variant's name."""
    variants = {}
    for study in STUDIES.values():
        for variant in study.variants:
            config = variant.config(base)
            if config != base:
                variants.setdefault(variant.name, config)
    return variants
