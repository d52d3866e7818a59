"""Saving and loading checkpoints safely: atomic writes, tagged formats, foreign files refused.

Taught in ``notebooks/06_training.ipynb``. Every file written here is a dict with a ``format``
tag and a ``version``:

- ``"bidsnet-train"`` (written by ``bidsnet_lib.train`` every few steps): ``step``, ``model``,
  ``ema``, ``discriminator``, ``opt_g``, ``opt_d``, ``scaler``, ``config`` (plain data),
  ``rng`` (one entry per process), ``redraw_calls`` (the attention layers' counters) and
  ``meta``.
- ``"bidsnet-inference"`` (written by :func:`export_inference`): ``model`` (the EMA weights,
  float16 by default), ``config`` (the model config as plain data) and ``meta`` (VGG weights
  source, training steps, data folders, versions).

Writes go through :func:`bidsnet_lib.plumbing.atomic_save` (a unique temporary file beside the
target, fsynced, renamed over it): a crash mid-write leaves the previous checkpoint whole. Reads use
``torch.load(..., weights_only=True)``, which unpickles tensors and plain containers only, so a
checkpoint cannot run code. Anything that is not ours (a truncated file, a text file, a plain
torchvision state dict, a pickle of arbitrary objects) raises :class:`CheckpointError`, a
``ValueError`` with one line naming the file and what was expected.

``bidsnet export CKPT OUT`` (``bidsnet_lib.commands.export``) exports an inference file.
"""

import os
import re
import time
import warnings
from pathlib import Path

import torch

import bidsnet_lib
from bidsnet_lib.model import BIDSNetConfig, InpaintingNet, build_model
from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    atomic_save,
    check_int,
    check_multiple,
    describe_path,
    got_expected,
)

TRAIN_FORMAT = "bidsnet-train"
INFERENCE_FORMAT = "bidsnet-inference"
FORMAT_VERSION = 1
REQUIRED_KEYS = {
    TRAIN_FORMAT: ("step", "model", "ema", "discriminator", "opt_g", "opt_d", "scaler", "config",
                   "rng", "redraw_calls", "meta"),
    INFERENCE_FORMAT: ("model", "config", "meta"),
}
ZIP_MAGIC = b"PK\x03\x04"  # torch.save has written zip archives since PyTorch 1.6
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class CheckpointError(ValueError):
    """A file that is not a readable bidsnet checkpoint of the expected format."""


def save_checkpoint(payload: dict, path: str | os.PathLike, format: str) -> Path:
    """Tag ``payload`` with ``format`` and the version, check its keys, write it atomically."""
    if format not in REQUIRED_KEYS:
        raise ValueError(got_expected("format", format, f"one of {sorted(REQUIRED_KEYS)}"))
    if not isinstance(payload, dict):
        raise TypeError(f"payload: got {type(payload).__name__}, expected a dict")
    missing = [k for k in REQUIRED_KEYS[format] if k not in payload]
    if missing:
        raise ValueError(f"payload for a {format} checkpoint misses keys {missing}")
    return atomic_save({"format": format, "version": FORMAT_VERSION, **payload}, path)


def _unreadable_reason(error: Exception) -> str:
    """One line for why torch.load failed on a zip file; torch's own messages run to a dozen lines."""
    text = str(error)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"a {found.group(1)} object" if found else "pickled Python objects"
        return (f"it holds {what}, not only tensors and plain data, and unpickling it could run "
                f"code (refused by torch.load(weights_only=True))")
    # Damage shows up as miniz errors, unpickling errors, decoding errors... whatever byte it hit.
    detail = text.splitlines()[0].split(". ")[0][:120] if text else "no detail"
    return f"the file is truncated or corrupt ({type(error).__name__}: {detail})"


def load_checkpoint(path: str | os.PathLike, format: str | tuple[str, ...] = TRAIN_FORMAT,
                    map_location="cpu", mmap: bool = False) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse anything else clearly.

    ``format`` is the expected tag (or a tuple of accepted tags); ``mmap`` maps tensors from the
    file instead of reading them (cheap when only the config is wanted). Raises
    FileNotFoundError for a missing file and :class:`CheckpointError` for a file not ours.
    """
    accepted = (format,) if isinstance(format, str) else tuple(format)
    unknown = [f for f in accepted if f not in REQUIRED_KEYS]
    if not accepted or unknown:
        raise ValueError(got_expected("format", format, f"one or more of {sorted(REQUIRED_KEYS)}"))
    expected = " or ".join(f"a {f} checkpoint" for f in accepted)
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            latest = " (a run folder: pass its latest.pt)" if (path / "latest.pt").is_file() else ""
            raise CheckpointError(got_expected("checkpoint", str(path), f"{expected} file, not a folder{latest}"))
        raise FileNotFoundError(got_expected("checkpoint", str(path), f"{expected} file; there is {describe_path(path)}"))
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC:
        kind = "is empty" if not head else f"is not a PyTorch checkpoint (starts with {head!r})"
        raise CheckpointError(f"{path}: got a file that {kind}, expected {expected}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError...
        raise CheckpointError(f"{path}: got a file that cannot be loaded ({_unreadable_reason(error)}), "
                              f"expected {expected}") from None
    tag = data.get("format") if isinstance(data, dict) else None
    if not isinstance(tag, str):
        kind = type(data).__name__
        what = f"{'an' if kind[0] in 'AEIOUaeiou' else 'a'} {kind} without a 'format' tag (a plain state dict?)"
        raise CheckpointError(f"{path}: got {what}, not a bidsnet checkpoint, expected {expected}")
    if tag not in accepted:
        hint = "; make one with `bidsnet export`" if tag == TRAIN_FORMAT else ""
        raise CheckpointError(f"{path}: got a {tag} checkpoint, expected {expected}{hint}")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: {tag} version {version!r} was written by a newer bidsnet_lib; this one reads "
            f"versions up to {FORMAT_VERSION} (upgrade the package)"
        )
    missing = [k for k in REQUIRED_KEYS[tag] if k not in data]
    if missing:
        raise CheckpointError(f"{path}: {tag} checkpoint misses keys {missing}; the file is damaged")
    return data


def check_finite(weights: dict, path: Path, what: str = "weights") -> None:
    """Refuse a state dict holding NaN or infinite values, naming the first such tensor."""
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad_count = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: {what} tensor {name!r} holds {bad_count} NaN or infinite "
                                  "value(s); expected finite weights (the run diverged, or the file is damaged)")


def _inference_payload(train: dict, source: Path, dtype: torch.dtype) -> dict:
    """The inference checkpoint's contents made from a training checkpoint's dict."""
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in train["ema"].items()}
    meta = dict(train["meta"])
    meta.update(step=train["step"], source_checkpoint=str(source), dtype=str(dtype).removeprefix("torch."),
                exported=time.strftime("%Y-%m-%dT%H:%M:%S%z"), bidsnet_lib_version=bidsnet_lib.__version__)
    return {"model": weights, "config": train["config"]["model"], "meta": meta}


def _check_export_target(source: Path, out: Path) -> None:
    """Never overwrite a source of the export, nor any training checkpoint, nor a folder."""
    if out.is_dir():
        raise ValueError(got_expected("out", str(out), "an inference checkpoint file to write, not a folder"))
    if out.exists() and (out.resolve() == source.resolve() or os.path.samefile(out, source)):
        raise ValueError(got_expected("out", str(out), "a new file; it is the checkpoint being exported"))
    if out.is_file():
        with open(out, "rb") as f:
            zipped = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
        try:
            tag = load_checkpoint(out, (TRAIN_FORMAT, INFERENCE_FORMAT), mmap=True)["format"] if zipped else None
        except CheckpointError:
            tag = None
        if tag == TRAIN_FORMAT:
            raise ValueError(got_expected("out", str(out), "a new file or an inference checkpoint; it is a training "
                                 "checkpoint, which an export would make impossible to resume"))


MAX_WORK_SIZE = 2048  # the largest working size a checkpoint may claim (the paper's is DEFAULT_WORK_SIZE)


def work_size(meta) -> int:
    """The side of the square the ``Inpainter`` feeds this checkpoint's model: ``meta["work_size"]``
    when export set one, else the training size ``meta["image_size"]`` (``DEFAULT_WORK_SIZE`` when
    neither)."""
    meta = meta if isinstance(meta, dict) else {}
    # A crafted meta (10**6) would pad every crop to a terapixel square.
    return check_int("meta work_size", meta.get("work_size", meta.get("image_size", DEFAULT_WORK_SIZE)),
                     1, MAX_WORK_SIZE)


def export_inference(train_checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                     dtype: torch.dtype = torch.float16, work_size: int | None = None) -> Path:
    """Write the EMA generator of a training checkpoint, its config and metadata, for inference.

    ``train_checkpoint_path`` may be a run directory (its ``latest.pt`` is used). Float16 halves
    the file; inference casts back to float32, which loses nothing the eye can see (tested).
    ``out_path`` may be neither the source nor any training checkpoint (refused before reading).
    ``work_size``: the side the ``Inpainter`` works at (default: the training size); a fully
    convolutional model trained on crops may do better at the size it is judged at.
    """
    if dtype not in DTYPES.values():
        raise ValueError(got_expected("dtype", dtype, f"one of {sorted(DTYPES)}"))
    if work_size is not None:
        check_int("work_size", work_size, 32, MAX_WORK_SIZE)
    source = Path(train_checkpoint_path)
    if source.is_dir():
        source = source / "latest.pt"
    _check_export_target(source, Path(out_path))
    train = load_checkpoint(source, TRAIN_FORMAT)
    check_finite(train["ema"], source, "EMA weights")
    if work_size is not None:  # what the Inpainter would refuse is refused now
        stride = BIDSNetConfig.from_dict(train["config"]["model"]).stride
        check_multiple("work_size", work_size, stride, f"the model's stride {stride}")
    payload = _inference_payload(train, source, dtype)
    if work_size is not None:
        payload["meta"]["work_size"] = work_size
    return save_checkpoint(payload, out_path, INFERENCE_FORMAT)


def within_presets(config: BIDSNetConfig) -> bool:
    """Every size of ``config`` at most the largest preset's: a model known to fit in memory."""
    presets = [BIDSNetConfig.paper().to_dict(), BIDSNetConfig.small().to_dict()]
    for key, value in config.to_dict().items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            known = [p[key] if isinstance(p[key], list) else [p[key]] for p in presets]
            if len(values) > max(map(len, known)) or max(values, default=0) > max(max(k) for k in known):
                return False
    return True


def check_shapes(config: BIDSNetConfig, weights: dict, path: Path) -> None:
    """Compare the shapes ``config`` builds with the stored ones on the meta device (no memory):
    a crafted config (a width of 10**6) is refused before anything is allocated."""
    with torch.device("meta"):
        probe = build_model(config)
    wanted = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    differ = [k for k in wanted if stored.get(k) != wanted[k]]
    if differ or set(stored) - set(wanted):
        first = differ[0] if differ else sorted(set(stored) - set(wanted))[0]
        raise CheckpointError(
            f"{path}: its model config does not fit its weights ({len(differ)} tensor(s) differ, the first "
            f"{first!r}: config {wanted.get(first)}, weights {stored.get(first)}); refused before building it")


def check_weights(config: BIDSNetConfig, weights, path: Path, what: str = "weights") -> None:
    """Refuse ``weights`` for a model of ``config`` before it is built: not a state dict, NaN or
    infinite values, or (for a config larger than the presets, which could ask for terabytes)
    shapes that do not fit."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: got {what} of type {type(weights).__name__}, expected a state dict")
    check_finite(weights, path, what)
    if not within_presets(config):  # the meta check costs seconds: only for sizes beyond the presets
        check_shapes(config, weights, path)


def load_weights(model: torch.nn.Module, weights: dict, path: Path) -> None:
    """``model.load_state_dict(weights)``, a mismatch said in one line naming ``path``."""
    try:  # copies into the float32 parameters, casting float16 weights back
        model.load_state_dict(weights)
    except RuntimeError as error:  # missing/unexpected keys, shape mismatches: one per line
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        first = problems[0][:150] if problems else str(error)[:150]
        raise CheckpointError(f"{path}: weights do not fit the config stored with them "
                              f"({len(problems)} problem(s), the first: {first})") from None


def load_inference_model(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[InpaintingNet, dict]:
    """``(model in eval mode on device, meta)`` from an inference checkpoint (or a training one,
    whose EMA weights are used). ``device`` defaults to ``bidsnet_lib.default_device()``.

    Refused before the model is built: weights with NaN or infinities (the tensor is named) and
    a config whose shapes do not match the stored weights."""
    path = Path(path)
    data = load_checkpoint(path, (INFERENCE_FORMAT, TRAIN_FORMAT))
    if data["format"] == TRAIN_FORMAT:
        data = _inference_payload(data, path, torch.float32)
    try:
        config = BIDSNetConfig.from_dict(data["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from None
    check_weights(config, data["model"], path)
    model = build_model(config)
    load_weights(model, data["model"], path)
    device = bidsnet_lib.default_device() if device is None else torch.device(device)
    return model.to(device).eval(), data["meta"]
