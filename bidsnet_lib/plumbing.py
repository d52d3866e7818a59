"""The ground floor every concept module stands on: paths, named constants, opening a photo and
opening a mask, the atomic writer, the downloader, devices, pretrained weight files and input
validators.

Nothing here imports from ``bidsnet_lib``, so any module may import this one; torch is imported
inside the functions that need it (``bidsnet masks`` runs without loading it).

Error messages across the library read ``name: got X, expected Y`` (:func:`got_expected`); the
validators (:func:`check_int`, :func:`check_positive_int`, :func:`check_finite_float`,
:func:`check_fraction`, :func:`check_choice`) write it.

- Photos: :func:`read_photo` is the one photo opener (EXIF rotation followed; grey, RGBA and 16-bit
  or float photos understood). Its one alpha rule: the colour a model sees is the photo
  composited on WHITE (transparent areas of web images and cut-outs are shown on white pages,
  and the colour stored under them is arbitrary); the alpha channel itself travels beside it, so
  an inpainted photo is written back with the transparency it came with.
- Masks: :func:`read_mask` is the one mask opener, on the same decoder (EXIF rotation followed:
  a mask painted over a phone photo follows the rotated view); 1 = hole, its alpha ignored.
- Writes: :func:`atomic_write` puts text, bytes or whatever a callable streams (``torch.save``)
  in a uniquely named temporary file beside the target, fsyncs it and renames it over the
  target (:func:`atomic_move`): readers see the old file or the new one, never half, and two
  writers never collide.
- Downloads: :func:`download` (weights, data archives, published tables) checks a checksum and
  fails offline naming the file to place and where.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import math
import numbers
import os
import re
import socket
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository's data/ (photos, masks, checkpoint) beside the package: a clone or editable install.
REPO_ROOT = PACKAGE_DIR.parent
DATA_DIR = REPO_ROOT / "data"
SHIPPED_IMAGES = DATA_DIR / "images" / "test"  # the course's test photos (absent from a pip install)

# The side of the square the model works on: its training size, the evaluation's crops, the
# fixed evaluation masks and an inference checkpoint's working size when it names none.
DEFAULT_WORK_SIZE = 256
MASK_THRESHOLD = 0.5  # a mask pixel is a hole when its value > this fraction of full scale

# The longest file name most file systems allow (ext4, APFS, NTFS: 255 bytes).
NAME_MAX = 255
# Photos every command reads and writes (PIL reads and writes them all).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
# Quality for lossy outputs: JPEG 95 keeps known pixels within a few levels (tested), WebP
# lossless keeps them exactly.
LOSSY_SAVE_OPTIONS = {".jpg": {"quality": 95, "subsampling": 0}, ".jpeg": {"quality": 95, "subsampling": 0},
                      ".webp": {"lossless": True}}


# ----------------------------------------------------------------------------- messages, checks
def got_expected(name: str, got, expected: str) -> str:
    """The library's one error phrasing: ``name: got X, expected Y`` (X as ``repr``)."""
    return f"{name}: got {got!r}, expected {expected}"


def _range(kind: str, low, high, low_open: bool = False, high_open: bool = False) -> str:
    """``kind`` with its bounds in words: "an int from 1 to 9", "a number in (0.0, 1.0]", ">= 0"."""
    if low is not None and high is not None:
        if kind == "an int":
            return f"an int from {low} to {high}"
        return f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


def check_int(name: str, value, low: int | None = None, high: int | None = None, *,
              optional: bool = False) -> int | None:
    """``value`` as an int within [low, high] (either bound optional; bools refused); with
    ``optional``, None passes too. TypeError for another type, ValueError out of range."""
    expected = ("None or " if optional else "") + _range("an int", low, high)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(got_expected(name, value, expected))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(got_expected(name, value, expected))
    return int(value)


def check_multiple(name: str, value, step: int, of: str) -> int:
    """``value`` as a positive int multiple of ``step`` (``of`` names it: "the model's stride 16")."""
    if check_int(name, value) < step or value % step:
        raise ValueError(got_expected(name, value, f"a positive multiple of {of}"))
    return int(value)


def check_positive_int(name: str, value) -> int:
    """``value`` as an int >= 1; anything else raises ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(got_expected(name, value, "a positive int"))
    return int(value)


def check_finite_float(name: str, value, low: float | None = None, high: float | None = None, *,
                       low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within its bounds (open or closed, either optional; bools,
    NaN and infinities refused). TypeError for another type, ValueError otherwise."""
    kind = "a number" if low is not None and high is not None else "a finite number"
    expected = _range(kind, low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(got_expected(name, value, expected))
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        raise ValueError(got_expected(name, value, expected))
    return float(value)


def check_fraction(name: str, value, *, low_open: bool = True, high_open: bool = False) -> float:
    """``value`` as a float in (0, 1] (each end closed or open as asked): a share, a ratio."""
    return check_finite_float(name, value, 0.0, 1.0, low_open=low_open, high_open=high_open)


def check_choice(name: str, value, choices):
    """``value`` when it is one of ``choices`` (named in their order in the message)."""
    try:
        known = value in choices
    except TypeError:  # an unhashable value is no key of a dict of choices
        known = False
    if not known:
        raise ValueError(got_expected(name, value, f"one of {list(choices)}"))
    return value


# ----------------------------------------------------------------------------- files and folders
def is_image_file(path: Path) -> bool:
    """A visible file with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (or under it), sorted."""
    found = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in found if is_image_file(p))


def describe_path(path: Path) -> str:
    """What lies at ``path``, for an error message: "a folder", "no file", "a file" ..."""
    if path.is_dir():
        return "a folder"
    if path.exists():
        return "a file" if path.is_file() else "not a regular file"
    return "no file (it does not exist)" if path.parent.is_dir() or str(path.parent) == "" else \
        f"no file (its folder {str(path.parent)!r} does not exist)"


def images_by_stem(folder, name: str) -> tuple[dict[str, Path], dict[str, str]]:
    """(stem -> image file in ``folder``, stem -> problem) where two files share a stem
    (``a.png`` and ``a.jpg``): whatever pairs or labels files by stem must not pick one silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(got_expected(name, str(folder), f"a folder; there is {describe_path(folder)}"))
    by_stem: dict[str, list[Path]] = {}
    for path in image_files(folder):
        by_stem.setdefault(path.stem, []).append(path)
    if not by_stem:
        raise ValueError(got_expected(name, str(folder), f"a folder holding {'/'.join(IMAGE_EXTENSIONS)} files; "
                                      "it holds none"))
    files = {stem: paths[0] for stem, paths in by_stem.items() if len(paths) == 1}
    shared = {stem: f"{' and '.join(p.name for p in paths)} in {folder} share the stem {stem!r}; files named "
              "by stem need one file per stem" for stem, paths in by_stem.items() if len(paths) > 1}
    return files, shared


def check_apart(out, inputs, name: str = "--out") -> None:
    """Refuse an output ``out`` (file or folder) that is one of the ``inputs`` ({flag: path or
    None}, or (flag, path) pairs) or lies inside an input folder: no command writes where it reads
    (an input overwritten, or its own output read back as input on the next run)."""
    out = Path(out).expanduser()
    resolved = out.resolve()
    for flag, source in (inputs.items() if isinstance(inputs, dict) else inputs):
        if source is None:
            continue
        source = Path(source).expanduser()
        same = resolved == source.resolve() or (out.exists() and source.exists() and os.path.samefile(out, source))
        if same or (source.is_dir() and resolved.is_relative_to(source.resolve())):
            kind = "folder" if source.is_dir() else "file"
            raise ValueError(got_expected(name, str(out), f"a place apart from the inputs; it {'is' if same else 'lies inside'} "
                                          f"the {flag} {kind} {str(source)!r}, and a command never writes where it "
                                          "reads its inputs"))


def check_writable_folder(folder, name: str = "--out", keep: bool = False) -> Path:
    """Prove a file can be made in ``folder`` before any work: a read-only or full disk, a file in
    the way or a name too long fail in one line naming the path and the cause, not after an hour
    of work. Folders it had to create are removed again unless ``keep``."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    blocker = folder.parents[len(missing) - 1] if missing else folder
    if blocker.exists() and not blocker.is_dir():
        raise NotADirectoryError(got_expected(name, str(folder), f"a folder; {str(blocker)!r} is a file"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_name(folder / "write-test")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as error:
        raise OSError(error.errno, f"{name}: cannot write in {str(folder)!r} ({os_error_reason(error)})") from None
    finally:
        for created in [] if keep else missing:  # deepest first
            with contextlib.suppress(OSError):
                created.rmdir()
    return folder


def os_error_reason(error: OSError) -> str:
    """The cause of an OSError in words ("no space left on the disk", "read-only file system")."""
    reasons = {errno.ENOSPC: "no space left on the disk", errno.EROFS: "a read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENAMETOOLONG: f"a name longer than the file system allows ({NAME_MAX} bytes a name)",
               errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EDQUOT: "disk quota exceeded",
               errno.EEXIST: "a file is in the way", errno.EISDIR: "it is a folder"}
    return reasons.get(error.errno, error.strerror or str(error))


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # the rename itself made durable; Windows cannot open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_TEMP_TAIL = 14  # the "." before the name and ".<8 hex>.tmp" after it


def _temp_head(name: str) -> str:
    """``name``, or a digest of it when the temporary name would pass :data:`NAME_MAX`: a file
    named near the limit is still written."""
    if len(os.fsencode(name)) <= NAME_MAX - _TEMP_TAIL:
        return name
    return "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def temp_name(path: Path) -> Path:
    """A unique hidden name beside ``path``: ``.NAME.<8 hex>.tmp``, NAME a digest when the file's
    own name is near :data:`NAME_MAX` (see :func:`stale_temps`)."""
    return path.with_name(f".{_temp_head(path.name)}.{uuid.uuid4().hex[:8]}.tmp")


def stale_temps(path: Path) -> list[Path]:
    """Temporary files of :func:`atomic_write` for ``path`` left by a killed writer."""
    return sorted(path.parent.glob(f".{glob.escape(_temp_head(path.name))}.{'[0-9a-f]' * 8}.tmp"))


def temp_files(folder: Path) -> list[Path]:
    """Temporary files of :func:`atomic_write` in ``folder``, whatever their target."""
    return sorted(p for p in Path(folder).glob(".*.tmp") if re.fullmatch(r"\..+\.[0-9a-f]{8}\.tmp", p.name))


def atomic_move(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename a finished file or folder onto ``target`` in one step, then make the rename durable.

    Readers see the old ``target`` or the new one, never half of it; ``source`` must be on the
    target's file system (a temporary name beside it). A folder replaces only a missing or empty one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _fsync_dir(target.parent)
    return target


def atomic_write(path: str | os.PathLike, content: str | bytes | Callable,
                 check: Callable[[Path], object] | None = None) -> Path:
    """Write ``content`` (text as UTF-8, bytes, or ``content(binary_stream)``) to ``path`` atomically.

    The temporary file lives in the target's folder (``os.replace`` is atomic only within one
    file system), is created with the permissions a plain ``open`` would give (umask applied; an
    existing target's mode kept), fsynced, and removed on any failure. ``check(temporary path)``,
    when given, may refuse the new content by raising before it replaces the target.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(got_expected("path", str(path), "a file to write, not a folder"))
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():  # mkdir would say only "File exists"
        raise NotADirectoryError(got_expected("path", str(path), f"a file in a folder; {str(blocker)!r} is a file"))
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as stream:
            if isinstance(content, str):
                stream.write(content.encode("utf-8"))
            elif isinstance(content, bytes | bytearray | memoryview):
                stream.write(content)
            elif callable(content):
                recorder = _WriteErrors(stream)
                try:
                    content(recorder)
                except Exception:
                    if recorder.error is not None:  # torch.save says "unexpected pos"; the cause was this
                        raise recorder.error from None
                    raise
            else:
                raise TypeError(got_expected("content", type(content).__name__, "str, bytes or a callable(stream)"))
            stream.flush()
            os.fsync(stream.fileno())
        if check is not None:
            check(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # a rewrite keeps the file's mode
        atomic_move(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno is not None:  # the target named, not the temporary file
            raise OSError(error.errno, f"cannot write {str(path)!r} ({os_error_reason(error)})") from None
        raise
    return path


class _WriteErrors:
    """A binary stream that keeps the OSError of a failed write (ENOSPC), which a writer such
    as torch.save replaces with its own vaguer error."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, data) -> int:
        try:
            return self.stream.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name):
        return getattr(self.stream, name)


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` through :func:`atomic_write`."""
    import torch

    return atomic_write(path, lambda stream: torch.save(obj, stream))


# ----------------------------------------------------------------------------- devices
def resolve_device(device, name: str = "--device"):
    """``device`` (None: the GPU when there is one) as a torch.device that exists on this machine.

    Raises ValueError in one line naming the devices available, instead of CUDA's traceback.
    """
    import torch

    available = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                           if torch.cuda.is_available() else [])
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        available.append("mps")
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(got_expected(name, device, f"a device name; available here: {', '.join(available)}")) from None
    ok = parsed.type == "cpu" or (
        parsed.type == "cuda" and torch.cuda.is_available()
        and (parsed.index is None or parsed.index < torch.cuda.device_count())
    ) or (parsed.type == "mps" and "mps" in available)
    if not ok:
        raise ValueError(got_expected(name, str(device), f"a device this machine has: {', '.join(available)}"))
    return parsed


# ----------------------------------------------------------------------------- photos
@dataclass
class Photo:
    """A photo as read: ``rgb`` (H, W, 3) uint8, what a model sees (alpha composited on white,
    grey replicated); ``pixels`` the values as stored ((H, W) grey, (H, W, 2) grey + alpha,
    (H, W, 3) colour or (H, W, 4) with alpha; uint8, or uint16 for 16-bit grey); ``full`` the
    value of full scale (255 or 65535); ``grey`` and ``alpha`` (the (H, W) channel, or None)."""

    rgb: np.ndarray
    pixels: np.ndarray
    full: float
    grey: bool
    alpha: np.ndarray | None

    def with_rgb(self, rgb: np.ndarray, where: np.ndarray) -> np.ndarray:
        """``pixels`` with the colour ``rgb`` (H, W, 3) uint8 at ``where`` (H, W) bool, in the
        photo's own channels and depth; everything else, the alpha channel included, as read."""
        out = self.pixels.copy()
        if not where.any():  # an all-known mask: the photo as it was
            return out
        new = rgb[where].astype(np.float64) * (self.full / 255)  # (N, 3) at the photo's scale
        if self.grey:
            new = new @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, PIL's RGB -> L: grey in, grey out
        new = np.clip(np.rint(new), 0, self.full).astype(out.dtype)
        if out.ndim == 2:
            out[where] = new
        else:  # the colour channels of RGB, RGBA or LA; a view, so the assignment lands in `out`
            out[..., : 1 if self.grey else 3][where] = new.reshape(len(new), 1 if self.grey else 3)
        return out


def _unreadable(name: str, path: Path | None, err: Exception) -> ValueError:
    """The one message for a file no decoder reads, naming its path once (None: bytes)."""
    what = "its bytes are " if path is None else "" if str(path) in name else f"{str(path)!r} is "
    return ValueError(f"{name}: {what}not an image this program can read ({err})")


def _open(source, name: str, draft: float | None = None):
    """The one decoder: a path or the bytes of a file -> a loaded PIL image turned by its EXIF
    orientation (phones store rotation there; a viewer, and a mask painted in one, follow it).
    ``draft`` lets a JPEG decode at 1/2, 1/4 or 1/8 scale while keeping that share of each side."""
    import io

    from PIL import Image, ImageOps

    path = None if isinstance(source, bytes | bytearray | memoryview) else Path(source)
    if path is not None and not path.is_file():
        if path.is_dir():
            raise ValueError(got_expected(name, str(path), "an image file, not a folder (a folder of photos "
                                          "goes to --images)"))
        raise ValueError(got_expected(name, str(path), f"an image file; there is {describe_path(path)}"))
    try:
        with Image.open(io.BytesIO(bytes(source)) if path is None else path) as pil:
            if draft is not None:
                pil.draft(pil.mode, (math.ceil(pil.size[0] * draft), math.ceil(pil.size[1] * draft)))
            pil.load()
            return ImageOps.exif_transpose(pil)
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise _unreadable(name, path, err) from err


def image_size(path, name: str = "image") -> tuple[int, int]:
    """(width, height) of an image file as shown (EXIF rotation applied), from its header alone."""
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path) as pil:
            width, height = pil.size
            turned = pil.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)  # by 90 degrees
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise _unreadable(name, path, err) from err
    return (height, width) if turned else (width, height)


def _pixels(pil, name: str) -> tuple[np.ndarray, float, bool, bool]:
    """(uint8 or uint16 pixels, full scale, grey, has alpha) of a PIL image in any photo mode.

    16-bit grey (``I;16*``, and ``I`` as PIL opens 16-bit PNGs) stays 16-bit; float (``F``)
    photos are read as [0, 1], [0, 255] or [0, 65535] by their largest value and stored so.
    """
    mode = pil.mode
    if mode.startswith("I;16"):
        return np.asarray(pil).astype(np.uint16), 65535.0, True, False
    if mode in ("I", "F"):
        values = np.asarray(pil).astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 65535:
            raise ValueError(got_expected(name, f"mode {mode} values {values.min()}..{values.max()}",
                                 "grey levels from 0 to 65535 (or 0 to 1 as floats)"))
        top = values.max()
        if mode == "F" and top <= 1:
            values = values * 255
        if top > 255:
            return np.rint(values).astype(np.uint16), 65535.0, True, False
        return np.rint(values).astype(np.uint8), 255.0, True, False
    if mode in ("1", "L"):
        return np.asarray(pil.convert("L")), 255.0, True, False
    if mode == "LA":
        return np.asarray(pil), 255.0, True, True
    if mode in ("RGBA", "PA", "La") or (mode == "P" and "transparency" in pil.info):
        return np.asarray(pil.convert("RGBA")), 255.0, False, True
    return np.asarray(pil.convert("RGB")), 255.0, False, False


def read_photo(source, name: str = "image", *, draft: float | None = None) -> Photo:
    """The one photo opener: a path, a file's bytes, a PIL image or a uint8 array ((H, W),
    (H, W, 1|3|4)) -> :class:`Photo`. ``draft`` (files only) lets a JPEG decode smaller, at
    1/2, 1/4 or 1/8 scale, while each side keeps at least that share (training's crops)."""
    from PIL import Image

    if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
        source = _open(source, name, draft)
    if isinstance(source, Image.Image):
        pixels, full, grey, has_alpha = _pixels(source, name)
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise TypeError(got_expected(f"{name} dtype", str(source.dtype), "uint8 (0..255); for floats in [0, 1] "
                                "pass (x * 255).round().astype(np.uint8)"))
        if source.ndim == 3 and source.shape[2] == 1:
            source = source[:, :, 0]
        if not (source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (3, 4))):
            raise ValueError(got_expected(f"{name} shape", source.shape, "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"))
        pixels, full, grey, has_alpha = source, 255.0, source.ndim == 2, source.ndim == 3 and source.shape[2] == 4
    else:
        raise TypeError(got_expected(name, type(source).__name__, "a uint8 numpy array, a PIL image or a path"))
    if min(pixels.shape[:2]) < 1:
        raise ValueError(got_expected(f"{name} shape", pixels.shape, "a non-empty image"))
    alpha = pixels[..., -1] if has_alpha else None
    colour = pixels[..., :-1] if has_alpha else pixels
    if grey:
        colour = np.repeat(colour.reshape(*colour.shape[:2], 1), 3, axis=2)  # (H, W, 3)
    if full == 255 and alpha is None:  # the common case, 8-bit without alpha: no arithmetic
        rgb = np.ascontiguousarray(colour)
    else:
        level = colour.astype(np.float32) * np.float32(255 / full)  # 16-bit scaled, never clipped
        if alpha is not None:
            a = alpha[..., None].astype(np.float32) / 255
            level = level * a + 255 * (1 - a)  # composited on white: the library's one alpha rule
        rgb = np.clip(np.rint(level), 0, 255).astype(np.uint8)  # (H, W, 3)
    return Photo(rgb, np.ascontiguousarray(pixels), full, grey, None if alpha is None else alpha.copy())


# ----------------------------------------------------------------------------- masks
def read_mask(source, name: str = "mask", *, threshold: float = MASK_THRESHOLD, invert: bool = False,
              channel_tolerance: float = 0.25) -> np.ndarray:
    """The one mask opener: a path, a file's bytes, a PIL image or an array -> (H, W) uint8 0/1,
    1 = hole.

    Files go through :func:`read_photo`'s decoder (EXIF rotation followed). Values are read as
    fractions of full scale: bool and integers that are only 0 and 1 as 0/1 (else 1 would read as
    1/255), uint8 of 255, uint16 of 65535, floats in [0, 1] (NaN, infinities and values outside
    refused). A pixel is a hole when its value > ``threshold`` (0.5: > 127 of 255, so anti-aliased
    edges split at half grey); ``invert=True`` is for sets where white = known. A colour mask must
    be grey: channels that differ by more than ``channel_tolerance`` of full scale (JPEG noise
    stays well below) raise ValueError. An alpha channel is ignored: the holes are the grey levels.
    """
    from PIL import Image

    threshold = check_fraction("threshold", threshold, high_open=True)
    channel_tolerance = check_fraction("channel_tolerance", channel_tolerance)
    if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
        source = _open(source, name)
    if isinstance(source, Image.Image):
        pixels, _, _, has_alpha = _pixels(source, name)  # 16-bit stays 16-bit, float photos scaled
        source = pixels[..., :-1] if has_alpha else pixels
    if not isinstance(source, np.ndarray):
        raise TypeError(got_expected(name, type(source).__name__, "a numpy array, a PIL image, bytes or a path"))
    image = source[:, :, 0] if source.ndim == 3 and source.shape[2] == 1 else source
    if image.dtype.kind in "ui" and image.size and image.min() >= 0 and image.max() <= 1:
        image = image.astype(bool)
    if image.dtype == bool:
        full = 1.0
    elif image.dtype in (np.uint8, np.uint16):
        full = float(np.iinfo(image.dtype).max)
    elif image.dtype.kind == "f":
        full = 1.0
        bad = np.count_nonzero(~np.isfinite(image))
        if bad:  # NaN compares False with everything: it would silently read as known
            raise ValueError(f"{name}: got {bad} NaN or infinite values, expected a float mask in [0, 1]")
        if image.size and (image.min() < 0 or image.max() > 1):
            raise ValueError(f"{name}: got values in [{image.min()}, {image.max()}], expected a float mask in [0, 1]")
    else:
        raise TypeError(f"{name}: got dtype {image.dtype}, expected a mask of bool, uint8, uint16 or float "
                        "(or integers 0 and 1)")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        colour = image[:, :, :3].astype(np.float32)
        spread = colour.max(axis=2) - colour.min(axis=2)
        disagree = int(np.count_nonzero(spread > channel_tolerance * full))
        if disagree:
            raise ValueError(f"{name}: got colour channels that disagree at {disagree} pixels, expected a grey "
                             f"mask (channel_tolerance={channel_tolerance})")
        image = colour.mean(axis=2)
    elif image.ndim != 2:
        raise ValueError(f"{name}: got shape {image.shape}, expected a mask of (H, W) or (H, W, 1|3|4)")
    holes = image.astype(np.float32) > threshold * full
    return (holes != bool(invert)).astype(np.uint8)


def save_image(pixels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image array atomically in the format its extension names; lossy formats at the
    quality of :data:`LOSSY_SAVE_OPTIONS`. uint16 grey goes to PNG/TIFF at 16 bits."""
    import io

    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or suffix not in IMAGE_EXTENSIONS:
        raise ValueError(got_expected("output", str(path), f"a file ending in one of {', '.join(IMAGE_EXTENSIONS)}"))
    if pixels.dtype == np.uint16 and suffix not in (".png", ".tif", ".tiff"):
        pixels = (pixels // 257).astype(np.uint8)  # the format has no 16-bit grey
    image = Image.fromarray(pixels)  # uint16 (H, W): I;16
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        raise ValueError(got_expected("output", str(path), "a format that keeps transparency (.png, .webp, .tif) "
                             "for a photo with an alpha channel"))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **LOSSY_SAVE_OPTIONS.get(suffix, {}))
    return atomic_write(path, buffer.getvalue())


# ----------------------------------------------------------------------------- downloads
class DownloadError(ConnectionError):
    """A file could not be fetched (offline, refused, or not the bytes expected); ``reason`` is
    the cause alone, the message also names the file to place where."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class _NotOnServer(Exception):
    """HTTP 404 where the caller accepts a missing file."""


def download_file(url: str, target, what: str, *, checksum: str | None = None, timeout: float = 30.0,
                  alternative: str = "", missing_ok: bool = False, check: Callable[[Path], object] | None = None,
                  progress: bool = True) -> Path | None:
    """The one downloader: stream ``url`` (http(s), or ``file://`` for a local copy) to ``target``
    through :func:`atomic_write`; returns ``target``.

    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"`` (a prefix will do: torch.hub's file
    names carry one); a mismatch, a failed connection or ``check(file)`` raising leaves nothing
    behind. Failures raise :class:`DownloadError` naming ``what``, the URL and where to place the
    file by hand (then ``alternative``). With ``missing_ok``, HTTP 404 returns None instead.
    """
    import hashlib
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    target = Path(target)
    place = f"download {url} on a machine with internet and place it as {target}{alternative}"
    algorithm, _, expected = (checksum or "sha256:").partition(":")

    def failed(reason: str) -> DownloadError:
        return DownloadError(f"{what}: could not download {url} ({reason}); {place}", reason)

    def fetch(stream) -> None:
        digest = hashlib.new(algorithm)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                    while chunk := response.read(1 << 20):
                        stream.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as error:
            if missing_ok and error.code == 404:
                raise _NotOnServer from None
            raise failed(str(error)) from None
        except OSError as error:  # URLError, time-outs and refused connections are OSErrors
            raise failed(f"{type(error).__name__}: {error}; offline?") from None
        if not digest.hexdigest().startswith(expected):
            raise failed(f"a file with {algorithm} {digest.hexdigest()}, expected {expected}: a partial or "
                         "changed download")

    try:
        return atomic_write(target, fetch, check)
    except _NotOnServer:
        return None


# ----------------------------------------------------------------------------- pretrained weights
def hub_checkpoint_dir() -> Path:
    """torch.hub's checkpoint cache, looked up on each call so TORCH_HOME changes take effect."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Can a connection to ``url``'s host open within seconds? A proxy decides for itself."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    try:  # seconds at most: an offline machine must fail fast, not wait for a download's time-out
        with socket.create_connection((urlparse(url).hostname, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_weight_file(path: Path):
    """``torch.load(path, weights_only=True)``, one ValueError line for a file torch cannot read."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot be read as a torch state dict "
                         f"({type(error).__name__}: {error})") from None


def fetch_weights(file_name: str, url: str, what: str, path=None, download: bool = True,
                  alternative: str = "") -> tuple[object, Path]:
    """(loaded file, its path) from ``path``, torch.hub's cache, or (if reachable) ``url``,
    checked against the SHA-256 prefix torch.hub's file names carry (``vgg19-dcbb9e9d.pth``).

    Fails with FileNotFoundError naming the file, the directory to put it in and the URL; never
    falls back to anything else.
    """
    from collections.abc import Mapping

    def state_dict(file: Path):
        state = load_weight_file(file)
        if not isinstance(state, Mapping):
            raise ValueError(got_expected(str(file), type(state).__name__, "a state dict (str -> tensor)"))
        return state

    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{what}: no file at {path} (expected {file_name}, from {url})")
        return state_dict(path), path
    cached = hub_checkpoint_dir() / file_name
    if cached.is_file():
        return state_dict(cached), cached
    reason = "downloading is switched off (download=False)"
    if download and reachable(url):
        prefix = re.search(r"-([a-f0-9]{6,})\.", file_name)  # torch.hub's naming convention
        try:
            download_file(url, cached, what, checksum=f"sha256:{prefix.group(1)}" if prefix else None)
            return state_dict(cached), cached
        except DownloadError as error:
            reason = f"the download failed ({error.reason})"
    elif download:
        reason = f"{urlparse(url).hostname} cannot be reached (offline?)"
    raise FileNotFoundError(
        f"{what} needs the weight file {file_name}, which is not in torch.hub's cache and "
        f"{reason}.\n"
        f"  Download {url} on a machine with internet and place it as {cached}\n"
        f"  (the directory is torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it),\n"
        f"  or pass its path explicitly{alternative}."
    ) from None
