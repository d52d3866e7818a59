"""Training and validation data: photos from image folders, each paired with an inpainting mask.

Used by ``bidsnet_lib.train`` (taught in ``notebooks/06_training.ipynb``, which also gives the
Colab recipe for Places2, CelebA-HQ and Paris StreetView from Google Drive or your own folder).

- :class:`InpaintingDataset` (``train=True``): random square crop (a random share of the short
  side, resized to ``size``), horizontal flips, and a mask drawn from a weighted mix of Mask Set
  I bins, Mask Set II presets and an optional external mask folder (:mod:`bidsnet_lib.masks`).
- :func:`fixed_validation_set` (``train=False``): centre crops paired with the shipped fixed
  masks in ``bidsnet_lib/eval_masks`` in a fixed order, so validation numbers compare across runs.

Every random choice of item ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])``: the
same item whichever DataLoader worker draws it, and again after a resume (call
:meth:`InpaintingDataset.set_epoch` before each epoch, as with ``DistributedSampler``).
Items are ``{"image": (3, size, size) float in [0, 1], "mask": (1, size, size) float 0/1 (1 =
hole), "mask_source": str, "index": int}``.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from bidsnet_lib import masks
from bidsnet_lib.plumbing import (
    DATA_DIR,
    DEFAULT_WORK_SIZE,
    IMAGE_EXTENSIONS,
    DownloadError,
    atomic_move,
    check_choice,
    check_finite_float,
    check_int,
    download_file,
    got_expected,
    image_size,
    is_image_file,
    read_photo,
)

# The repository's shipped photos (a clone or an editable install only) and the package's evaluation masks.
COURSE_IMAGES = DATA_DIR / "images"
DEFAULT_MASKS_DIR = masks.SHIPPED_MASKS
# Half Set I (bins 10-60 % equally, as PConv-style irregular holes) and half LaMa's training
# masks (Set II "train"): the paper evaluates on both kinds, so the model trains on both.
DEFAULT_MASK_MIX = {"set1": 0.5, "set2/train": 0.5}
CHECKS = ("header", "full", "none")
LARGE_PHOTO = "lomiri_life_by_aitzol_berasategi.jpg"  # large_photo's default


def mask_sources() -> list[str]:
    """Keys a mask mix may use: "set1" (any bin), "set1/<bin>", "set2/<preset>", "folder"."""
    bins = [f"set1/{masks.bin_name(b)}" for b in masks.RATIO_BINS]
    return ["set1", *bins, *(f"set2/{p}" for p in masks.LARGE_MASK_PRESETS), "folder"]


def course_photos(size: int | None, limit: int | None = None, first: str | None = None) -> list[np.ndarray]:
    """The shipped photos (``data/images``: test/, val/ then train/, by file name) as RGB uint8, the file
    named ``first`` moved to the front: (size, size, 3) centre crops, or each at its own size when
    ``size`` is None. On a bare pip install (Colab), which has no data/, five scikit-image photos
    instead (``first`` is then ignored; chelsea comes first)."""
    paths = [p for split in ("test", "val", "train") for p in sorted((COURSE_IMAGES / split).glob("*.jpg"))]
    if paths:
        if first is not None and first not in {p.name for p in paths}:
            raise ValueError(f"first: got {first!r}, expected one of the photos in {COURSE_IMAGES}: "
                             f"{sorted(p.name for p in paths)}")
        paths.sort(key=lambda p: p.name != first)  # a stable sort: only `first` moves
        photos = [read_photo(p, "photo").rgb for p in paths[:limit]]
    else:
        from skimage import data as skdata

        photos = [skdata.chelsea(), skdata.astronaut(), skdata.coffee(), skdata.rocket(),
                  skdata.stereo_motorcycle()[0]][:limit]
    return photos if size is None else [masks.square_photo(p, size) for p in photos]


def large_photo(name: str = LARGE_PHOTO, folder=None) -> tuple[np.ndarray, str]:
    """A photo of a few megapixels at its own size, RGB uint8 (H, W, 3), and a line naming it:
    ``name`` from ``folder``, by default the high-resolution test photos
    (:data:`bidsnet_lib.masks.HIRES_IMAGES`; the default photo, 2048x1364, a forest stream with fine
    detail everywhere). On a bare pip install (Colab), which has no data/, scikit-image's largest
    bundled photo instead (retina, 1411x1411)."""
    folder = masks.HIRES_IMAGES if folder is None else Path(folder)
    if (folder / name).is_file():
        return read_photo(folder / name, "photo").rgb, f"{name}, one of the high-resolution test photos"
    if folder.is_dir():  # a clone, where a wrong name is a mistake, not a bare install
        raise ValueError(got_expected("name", name, f"a photo in {folder}"))
    from skimage import data as skdata

    return skdata.retina(), f"scikit-image's retina photo ({folder} is absent: a bare install)"


# scikit-image's photos standing in for data/images where a bare pip install has none: the test
# ones are those bidsnet_lib.evaluate scores on, the training ones share none of them.
STANDIN_TRAIN_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "stereo_motorcycle")
STANDIN_TEST_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def course_photo_folders(scratch, held_out: str = "test") -> tuple[Path, Path]:
    """(train, held-out) photo folders that share no photo: the repository's ``data/images/train``
    and ``data/images/<held_out>`` ("val" to choose settings, "test" to score); on a bare pip
    install (Colab), scikit-image's ``STANDIN_TRAIN_PHOTOS`` and ``STANDIN_TEST_PHOTOS`` written as
    PNGs to ``scratch/train`` and ``scratch/test``."""
    if held_out not in ("val", "test"):
        raise ValueError(f"held_out: got {held_out!r}, expected 'val' or 'test'")
    folders = COURSE_IMAGES / "train", COURSE_IMAGES / held_out
    if all(f.is_dir() and any(f.glob("*.jpg")) for f in folders):
        return folders
    from skimage import data as skdata

    folders = Path(scratch) / "train", Path(scratch) / "test"
    for folder, names in zip(folders, (STANDIN_TRAIN_PHOTOS, STANDIN_TEST_PHOTOS), strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            photo = getattr(skdata, name)()
            Image.fromarray(photo[0] if isinstance(photo, tuple) else photo).save(folder / f"{name}.png")
    return folders


def find_images(
    roots, check: str = "header", on_error: str = "skip"
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files under ``roots`` (recursive, sorted; ``plumbing.IMAGE_EXTENSIONS``), checked.

    ``check``: "header" opens each file (cheap: reads the header only), "full" decodes it
    (catches truncated files, slow on big sets), "none" trusts the names. Unreadable files are
    dropped with one warning naming the count and the first ones (``on_error="skip"``) or raise
    ValueError listing them (``"raise"``). Returns (good paths, [(bad path, reason)]).
    """
    check_choice("check", check, CHECKS)
    check_choice("on_error", on_error, ("skip", "raise"))
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    if not isinstance(roots, Sequence) or not roots:
        raise TypeError(f"roots: got {roots!r}, expected a folder path or a non-empty list of them")
    paths = []
    for root in roots:
        if not isinstance(root, str | os.PathLike):
            raise TypeError(f"roots: got an entry {root!r}, expected folder paths")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ValueError(f"roots: {str(root)!r} is not a folder (absolute: {root.resolve()})")
        found = sorted(p for p in root.rglob("*") if is_image_file(p))
        if not found:
            raise ValueError(got_expected("roots", str(root), f"a folder holding {'/'.join(IMAGE_EXTENSIONS)} "
                                          "files (searched recursively); it holds none"))
        paths += found
    good, bad = [], []
    for path in paths:
        reason = None if check == "none" else _unreadable(path, full=check == "full")
        if reason is None:
            good.append(path)
        else:
            bad.append((path, reason))
    if bad:
        listing = "\n".join(f"  {r}" for _, r in bad[:10]) + (  # each reason names its file
            "\n  ..." if len(bad) > 10 else ""
        )
        if on_error == "raise" or not good:
            raise ValueError(f"{len(bad)} of {len(paths)} image files cannot be read:\n{listing}")
        warnings.warn(
            f"skipping {len(bad)} of {len(paths)} image files that cannot be read:\n{listing}",
            stacklevel=2,
        )
    return good, bad


def _unreadable(path: Path, full: bool) -> str | None:
    """Why ``path`` is not a readable image (naming it), or None."""
    try:
        if full:
            read_photo(path, str(path))
        else:
            image_size(path, str(path))
    except ValueError as error:  # the one opener turns every decoder failure into a ValueError
        return str(error)
    return None


class InpaintingDataset(torch.utils.data.Dataset):
    """Photos from one or more folders, each with a mask; see the module docstring.

    Training (``train=True``): a square crop whose side is a random share ``crop_scale`` of the
    short side (never under ``size`` source pixels; photos smaller than ``size`` are first
    upscaled, aspect kept), resized to ``size``, flipped left-right with probability 0.5 when
    ``flip``; the mask comes from ``mask_mix`` ({source: weight}, sources in
    :func:`mask_sources`; "folder" needs ``mask_folder``). Validation (``train=False``): short
    side resized to ``size``, centre crop, no flip, item ``k`` = image ``k % n_images`` with
    fixed mask ``k % n_masks`` from ``masks_dir`` (groups ``set1/<bin>``, ``set2/<preset>``,
    optionally only ``mask_groups``); ``len`` = the larger count, so every mask is used.
    """

    def __init__(
        self,
        roots,
        size: int = DEFAULT_WORK_SIZE,
        *,
        train: bool = True,
        mask_mix: Mapping[str, float] | None = None,
        mask_folder=None,
        masks_dir=None,
        mask_groups: Sequence[str] | None = None,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: bool = True,
        seed: int = 0,
        check: str = "header",
        on_error: str = "skip",
    ):
        check_int("size", size, masks.MIN_SIZE)
        check_int("seed", seed, 0)
        low, high = _check_crop_scale(crop_scale)
        self.paths, self.skipped = find_images(roots, check=check, on_error=on_error)
        self.size, self.train, self.flip, self.seed = int(size), bool(train), bool(flip), int(seed)
        self.crop_scale = (low, high)
        self.epoch = 0
        self.load_failures = 0  # files that passed the check but failed to decode (per process)
        if self.train:
            self.mask_mix = _check_mask_mix(
                DEFAULT_MASK_MIX if mask_mix is None else mask_mix, mask_folder
            )
            self.mask_folder = (
                None if mask_folder is None else masks.MaskFolder(mask_folder, size=self.size)
            )
            self.fixed_masks = []
        else:
            if mask_mix is not None or mask_folder is not None:
                raise ValueError(
                    "mask_mix / mask_folder: only for train=True; validation uses the fixed masks in masks_dir"
                )
            self.fixed_masks = _fixed_masks(
                DEFAULT_MASKS_DIR if masks_dir is None else Path(masks_dir), mask_groups, self.size
            )

    def __len__(self) -> int:
        return len(self.paths) if self.train else max(len(self.paths), len(self.fixed_masks))

    def set_epoch(self, epoch: int) -> None:
        """Draw new crops, flips and masks for ``epoch``: call it before creating the epoch's
        DataLoader iterator (workers copy the dataset then; with ``persistent_workers=True``
        they would keep the old epoch)."""
        self.epoch = check_int("epoch", epoch, 0)

    def __getitem__(self, index: int) -> dict:
        return self.item(index)

    def item(self, index: int, size: int | None = None) -> dict:
        """Item ``index`` with a crop side of ``size`` (training only; None: the dataset's own),
        drawn from the same numbers: the progressive-resizing stages of training ask for it."""
        check_int("index", index)
        if not 0 <= index < len(self):
            raise IndexError(f"index: got {index}, expected 0 <= index < {len(self)}")
        size = self.size if size is None else check_int("size", size, masks.MIN_SIZE)
        if size != self.size and not self.train:
            raise ValueError(got_expected("size", size, f"{self.size}: the validation set's masks are fixed"))
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = self._image(index, rng, size)  # (size, size, 3) uint8
        if self.train:
            mask, source = self._draw_mask(rng, size)
        else:
            source, folder, mask_index = self.fixed_masks[index % len(self.fixed_masks)]
            mask = folder.load(mask_index)
        return {
            "image": torch.from_numpy(
                np.divide(image.transpose(2, 0, 1), np.float32(255), order="C")
            ),  # (3, size, size)
            "mask": torch.from_numpy(mask.astype(np.float32))[None],  # (1, size, size)
            "mask_source": source,
            "index": int(index),
        }

    def _image(self, index: int, rng: np.random.Generator, size: int) -> np.ndarray:
        """The crop of image ``index``; a file that fails to decode is skipped with a warning."""
        n = len(self.paths)
        for attempt in range(min(n, 10)):
            path = self.paths[(index + attempt) % n]
            try:
                return self._crop(path, rng, size)
            except Exception as error:  # truncated data found only now: never kill the worker
                self.load_failures += 1
                warnings.warn(
                    f"skipping unreadable image {path} ({type(error).__name__}: {error}); "
                    f"{self.load_failures} such files so far in this process",
                    stacklevel=2,
                )
        raise RuntimeError(f"{min(n, 10)} image files in a row failed to decode, the last {path}")

    def _crop(self, path: Path, rng: np.random.Generator, size: int) -> np.ndarray:
        width, height = image_size(path)  # as shown, after EXIF
        short = min(width, height)
        if self.train:
            # Crop side in source pixels: a share of the short side, at least `size` (no
            # upsampling) unless the photo is smaller than `size` (then all of the short side).
            low = max(self.crop_scale[0], min(1.0, size / short))
            high = max(low, self.crop_scale[1])
            side = short * rng.uniform(low, high)
            left, top = rng.uniform(0, width - side), rng.uniform(0, height - side)
            flip = self.flip and rng.random() < 0.5
        else:
            side, flip = short, False
            left, top = (width - side) / 2, (height - side) / 2
        # JPEG: decode at 1/2, 1/4 or 1/8 scale when the crop stays at least `size` wide.
        image = Image.fromarray(read_photo(path, draft=size / side).rgb)
        # The draft's reduction, per axis: JPEG rounds each axis on its own (767x512 at 1/4 is
        # 192x128), and one factor for both could push the box past the image's edge.
        fx, fy = image.size[0] / width, image.size[1] / height
        box = (left * fx, top * fy, min((left + side) * fx, image.size[0]), min((top + side) * fy, image.size[1]))
        crop = image.resize((size, size), Image.Resampling.BICUBIC, box=box)
        if flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.array(crop, dtype=np.uint8)  # a writable copy for torch

    def _draw_mask(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
        names = list(self.mask_mix)
        source = names[rng.choice(len(names), p=list(self.mask_mix.values()))]
        if source == "folder":
            mask = self.mask_folder.load(int(rng.integers(len(self.mask_folder))))
            if size != self.size:  # nearest: a resized mask stays 0/1
                mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
            return masks.rotate_flip(mask, rng), source
        kind, _, name = source.partition("/")
        if kind == "set2":
            return masks.large_mask(size, size, name, rng), source
        if not name:  # "set1": any bin, equally often
            name = masks.bin_name(masks.RATIO_BINS[rng.integers(len(masks.RATIO_BINS))])
        ratio_bin = next(b for b in masks.RATIO_BINS if masks.bin_name(b) == name)
        return masks.irregular_mask(size, size, ratio_bin, rng), f"set1/{name}"


def fixed_validation_set(
    roots, masks_dir=None, size: int = DEFAULT_WORK_SIZE, mask_groups=None, **kwargs
) -> InpaintingDataset:
    """Centre crops of the photos in ``roots`` paired in a fixed order with the shipped masks.

    ``masks_dir`` defaults to the shipped ``bidsnet_lib/eval_masks``; ``mask_groups`` picks groups such
    as ``["set1/40-50", "set2/thick"]`` (default: all). Same items on every call and machine.
    """
    return InpaintingDataset(
        roots, size, train=False, masks_dir=masks_dir, mask_groups=mask_groups, **kwargs
    )


def _check_crop_scale(crop_scale) -> tuple[float, float]:
    ok = isinstance(crop_scale, Sequence) and len(crop_scale) == 2
    ok = ok and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in crop_scale)
    if not ok or not 0 < crop_scale[0] <= crop_scale[1] <= 1:
        raise ValueError(
            f"crop_scale: got {crop_scale!r}, expected (low, high) with 0 < low <= high <= 1"
        )
    return float(crop_scale[0]), float(crop_scale[1])


def _check_mask_mix(mix, mask_folder) -> dict[str, float]:
    """{source: weight} -> {source: probability}, sources checked against :func:`mask_sources`."""
    if not isinstance(mix, Mapping) or not mix:
        raise TypeError(
            f"mask_mix: got {mix!r}, expected a non-empty dict {{source: weight}}, e.g. {DEFAULT_MASK_MIX}"
        )
    valid = mask_sources()
    for key, weight in mix.items():
        if key not in valid:
            raise ValueError(f"mask_mix: unknown source {key!r}, expected keys from {valid}")
        check_finite_float(f"mask_mix[{key!r}]", weight, 0)
    total = sum(mix.values())
    if total <= 0:
        raise ValueError(f"mask_mix: weights sum to {total}, expected > 0")
    if mix.get("folder", 0) > 0 and mask_folder is None:
        raise ValueError(
            "mask_mix: 'folder' has weight > 0 but mask_folder is None; pass the folder of mask images"
        )
    return {key: weight / total for key, weight in mix.items() if weight > 0}


def _fixed_masks(
    masks_dir: Path, mask_groups, size: int
) -> list[tuple[str, masks.MaskFolder, int]]:
    """[(group, folder, index)] over ``masks_dir/set{1,2}/<group>/*.png``, in a fixed order."""
    hint = f"write them with: bidsnet masks write --out {masks_dir}"
    if not masks_dir.is_dir():
        raise ValueError(f"masks_dir: {str(masks_dir)!r} is not a folder of fixed masks; {hint}")
    found = {
        f"{d.parent.name}/{d.name}": d for d in sorted(masks_dir.glob("set[12]/*")) if d.is_dir()
    }
    if mask_groups is None:
        groups = list(found)
    else:
        if isinstance(mask_groups, str) or not isinstance(mask_groups, Sequence):
            raise TypeError(
                f"mask_groups: got {mask_groups!r}, expected a list such as ['set1/10-20']"
            )
        groups = list(mask_groups)
        missing = [g for g in groups if g not in found]
        if missing:
            raise ValueError(
                f"mask_groups: {missing} not found in {masks_dir}; it holds {list(found)}"
            )
    if not groups:
        raise ValueError(
            f"masks_dir: {str(masks_dir)!r} holds no set1/<bin> or set2/<preset> folders; {hint}"
        )
    items = []
    for group in groups:
        folder = masks.MaskFolder(found[group], size=size)
        items += [(group, folder, i) for i in range(len(folder))]
    return items


# ------------------------------------------------------------------ downloadable sets (Colab)
@dataclasses.dataclass(frozen=True)
class RemoteSet:
    """An archive on the web whose ``folder`` holds ``files`` images or masks."""

    url: str
    archive: str  # the file name it is saved under
    md5: str | None  # None: the publisher gives none
    folder: str  # the folder inside the archive that holds the files
    files: int
    what: str


REMOTE_SETS = {
    # Fits free Colab (a few minutes to fetch, ~500 MB on disk); the 256 px training set is ~24 GB.
    "places365_val_256": RemoteSet(
        "http://data.csail.mit.edu/places/places365/val_256.tar", "val_256.tar",
        "e27b17d8d44f4af9a78502beb927f808", "val_256", 36_500,
        "Places365-Standard's validation photos at 256x256 (places2.csail.mit.edu), ~500 MB"),
    # The irregular-mask test set of Liu et al. 2018 (partial convolutions), NVIDIA, CC BY-NC-SA 4.0.
    "pconv_test_masks": RemoteSet(
        "https://www.dropbox.com/s/01dfayns9s0kevy/test_mask.zip?dl=1", "test_mask.zip", None,
        "mask/testing_mask_dataset", 12_000,
        "the partial-convolution irregular-mask test set (Liu et al. 2018), 12,000 PNGs in 6 hole-ratio bins"),
}


def download_set(name: str, root, *, archive_dir=None, url: str | None = None, timeout: float = 20.0) -> Path:
    """Fetch and unpack ``REMOTE_SETS[name]`` once; returns ``root/name``, the folder of its files.

    The archive is kept in ``archive_dir`` (default ``root``; on Colab a Drive folder, so the next
    session unpacks without downloading again) and unpacked to ``root`` (the machine's own disk:
    reading many small files from Drive is slow). ``url`` overrides the set's address (a mirror,
    or ``file://`` for a local copy). Offline it raises :class:`bidsnet_lib.plumbing.DownloadError`
    naming the file to place where; nothing half-written is left behind.
    """
    remote = REMOTE_SETS[check_choice("name", name, sorted(REMOTE_SETS))]
    root = Path(root).expanduser()
    target = root / name
    if target.is_dir() and any(target.iterdir()):
        return target
    archive = Path(archive_dir or root).expanduser() / remote.archive
    if not archive.is_file():
        download_file(url or remote.url, archive, f"{name} ({remote.what})",
                      checksum=remote.md5 and f"md5:{remote.md5}", timeout=timeout,
                      alternative=", or pass url= (a mirror, or file:// for a local copy)")
    _unpack(archive, root, remote.folder, target)
    count = sum(1 for p in target.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if count != remote.files:
        warnings.warn(f"{name}: {target} holds {count} image files, expected {remote.files}", stacklevel=2)
    return target


def _unpack(archive: Path, root: Path, folder: str, target: Path) -> None:
    """Unpack ``archive`` in a temporary folder under ``root``, then move its ``folder`` to ``target``."""
    import shutil
    import tarfile
    import tempfile
    import zipfile

    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:  # zipfile drops ".." and absolute names itself
                z.extractall(scratch)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                # The "data" filter refuses links and paths outside the folder (Python >= 3.10.12).
                t.extractall(scratch, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive; delete it and download again")
        inner = scratch / folder
        if not inner.is_dir():
            found = sorted(p.relative_to(scratch).as_posix() for p in scratch.glob("*/*") if p.is_dir())[:5]
            raise DownloadError(f"{archive}: holds no folder {folder!r} (found {found or 'none'}); "
                                "is it the right archive?")
        shutil.rmtree(target, ignore_errors=True)  # an empty leftover
        atomic_move(inner, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def hold_out(folder, count: int) -> tuple[Path, Path]:
    """Move every k-th photo of ``folder`` (sorted by name, ``count`` in all) to the sibling
    ``<folder>_test``: (train folder, test folder), never sharing a photo. Done once: a second
    call finds the test folder and moves nothing."""
    folder = Path(folder)
    test = folder.with_name(folder.name + "_test")
    if test.is_dir() and any(test.iterdir()):
        return folder, test
    paths, _ = find_images(folder, check="none")
    check_int("count", count, 1, len(paths) - 1)  # at least one photo on each side
    test.mkdir()
    step = len(paths) / count
    for k in range(count):
        path = paths[int(k * step)]
        atomic_move(path, test / path.name)
    return folder, test
