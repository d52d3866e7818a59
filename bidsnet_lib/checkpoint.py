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

Writes go to a temporary file in the target's directory, are flushed to disk, then renamed over
the target with ``os.replace``: a crash mid-write leaves the previous checkpoint whole. Reads use
``torch.load(..., weights_only=True)``, which unpickles tensors and plain containers only, so a
checkpoint cannot run code. Anything that is not ours (a truncated file, a text file, a plain
torchvision state dict, a pickle of arbitrary objects) raises :class:`CheckpointError`, a
``ValueError`` with one line naming the file and what was expected.

``python -m bidsnet_lib.checkpoint CKPT OUT`` (``bidsnet export``) exports an inference file.
"""

import argparse
import contextlib
import os
import re
import sys
import time
import uuid
import warnings
from pathlib import Path

import torch

import bidsnet_lib
from bidsnet_lib.model import BIDSNet, BIDSNetConfig

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


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` so that readers see the old file or the new one, never half.

    The temporary file lives in the same directory: ``os.replace`` is atomic only within one
    file system. fsync before the rename, or a power cut could leave a renamed but empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name (not mkstemp, whose files are private to the owner): usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable; directories cannot be opened on Windows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def save_checkpoint(payload: dict, path: str | os.PathLike, format: str) -> Path:
    """Tag ``payload`` with ``format`` and the version, check its keys, write it atomically."""
    if format not in REQUIRED_KEYS:
        raise ValueError(f"format must be one of {sorted(REQUIRED_KEYS)}, got {format!r}")
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
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
        raise ValueError(f"format must be among {sorted(REQUIRED_KEYS)}, got {format!r}")
    expected = " or ".join(f"a {f} checkpoint" for f in accepted)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file (expected {expected})")
    with open(path, "rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC:
        kind = "is empty" if not head else f"is not a PyTorch checkpoint (starts with {head!r})"
        raise CheckpointError(f"{path}: {kind}; expected {expected}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError...
        raise CheckpointError(f"{path}: cannot be loaded: {_unreadable_reason(error)}; expected {expected}") from None
    tag = data.get("format") if isinstance(data, dict) else None
    if not isinstance(tag, str):
        kind = type(data).__name__
        what = f"{'an' if kind[0] in 'AEIOUaeiou' else 'a'} {kind} without a 'format' tag (a plain state dict?)"
        raise CheckpointError(f"{path}: holds {what}, not a bidsnet checkpoint; expected {expected}")
    if tag not in accepted:
        hint = "; make one with `bidsnet export`" if tag == TRAIN_FORMAT else ""
        raise CheckpointError(f"{path}: is a {tag} checkpoint; expected {expected}{hint}")
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


def _inference_payload(train: dict, source: Path, dtype: torch.dtype) -> dict:
    """The inference checkpoint's contents made from a training checkpoint's dict."""
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in train["ema"].items()}
    meta = dict(train["meta"])
    meta.update(step=train["step"], source_checkpoint=str(source), dtype=str(dtype).removeprefix("torch."),
                exported=time.strftime("%Y-%m-%dT%H:%M:%S%z"), bidsnet_lib_version=bidsnet_lib.__version__)
    return {"model": weights, "config": train["config"]["model"], "meta": meta}


def export_inference(train_checkpoint_path: str | os.PathLike, out_path: str | os.PathLike,
                     dtype: torch.dtype = torch.float16) -> Path:
    """Write the EMA generator of a training checkpoint, its config and metadata, for inference.

    ``train_checkpoint_path`` may be a run directory (its ``latest.pt`` is used). Float16 halves
    the file; inference casts back to float32, which loses nothing the eye can see (tested).
    """
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    source = Path(train_checkpoint_path)
    if source.is_dir():
        source = source / "latest.pt"
    train = load_checkpoint(source, TRAIN_FORMAT)
    return save_checkpoint(_inference_payload(train, source, dtype), out_path, INFERENCE_FORMAT)


def load_inference_model(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[BIDSNet, dict]:
    """``(model in eval mode on device, meta)`` from an inference checkpoint (or a training one,
    whose EMA weights are used). ``device`` defaults to ``bidsnet_lib.default_device()``."""
    path = Path(path)
    data = load_checkpoint(path, (INFERENCE_FORMAT, TRAIN_FORMAT))
    if data["format"] == TRAIN_FORMAT:
        data = _inference_payload(data, path, torch.float32)
    try:
        model = BIDSNet(BIDSNetConfig.from_dict(data["config"]))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its model config is invalid: {error}") from None
    try:  # copies into the float32 parameters, casting float16 weights back
        model.load_state_dict(data["model"])
    except RuntimeError as error:  # missing/unexpected keys, shape mismatches: one per line
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        first = problems[0][:150] if problems else str(error)[:150]
        raise CheckpointError(f"{path}: weights do not fit the config stored with them "
                              f"({len(problems)} problem(s), the first: {first})") from None
    device = bidsnet_lib.default_device() if device is None else torch.device(device)
    return model.to(device).eval(), data["meta"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bidsnet export",
        description="Write a small inference checkpoint (EMA weights + config + metadata) from a "
                    "training checkpoint or run directory.",
    )
    parser.add_argument("checkpoint", help="training checkpoint (.pt) or run directory (uses latest.pt)")
    parser.add_argument("out", help="inference checkpoint to write (.pt)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16",
                        help="storage precision of the weights (default float16)")
    args = parser.parse_args(argv)
    try:
        out = export_inference(args.checkpoint, args.out, DTYPES[args.dtype])
    except (FileNotFoundError, CheckpointError) as error:
        print(f"bidsnet export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
