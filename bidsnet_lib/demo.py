"""`make demo` (``bidsnet demo``): the course's main job on shipped data, pictures written to an output folder.

Mask galleries of Set I and Set II over the shipped test photos (notebook 01), then the shipped
checkpoint inpainting those photos under shipped fixed masks, beside OpenCV's Telea (notebook 08).
"""

import textwrap
from pathlib import Path

import numpy as np

from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.inference import Inpainter
from bidsnet_lib.masks import (
    SHIPPED_MASKS,
    mask_gallery,
    overlay_mask,
    square_photo,
)
from bidsnet_lib.plumbing import (
    DATA_DIR,
    DEFAULT_WORK_SIZE,
    atomic_write,
    image_files,
    read_mask,
    read_photo,
)

DATA = DATA_DIR
# One mask per row, from the middle and the top of the range the paper evaluates.
DEMO_MASKS = ("set1/30-40/000.png", "set1/50-60/001.png", "set2/thick/002.png", "set2/medium/003.png")


def shipped_photos(split: str = "test") -> list[Path]:
    """The shipped photos of one split, sorted; a clear error when the folder is missing or empty."""
    folder = DATA / "images" / split
    photos = image_files(folder) if folder.is_dir() else []
    if not photos:
        raise FileNotFoundError(f"no photos in {folder}: rebuild them with tools/make_photos.py")
    return photos


def shipped_inpainter() -> Inpainter:
    """The shipped checkpoint the demo fills with (its label names what it is)."""
    return Inpainter.from_checkpoint()


def demo_fills(photos: list[Path], size: int = DEFAULT_WORK_SIZE, inpainter: Inpainter | None = None):
    """The demo's (photo, mask) rows and their fills by BIDS-Net (default: the shipped checkpoint)
    and by Telea."""
    inpainter = inpainter or shipped_inpainter()
    telea = Inpainter(make_baseline("telea"), work_size=size)
    images = [square_photo(read_photo(p).rgb, size) for p in photos]
    masks = [read_mask(SHIPPED_MASKS / name) for name in DEMO_MASKS]
    rows = [(image, masks[i % len(masks)]) for i, image in enumerate(images)]
    ours = inpainter.inpaint_many([r[0] for r in rows], [r[1] for r in rows])
    theirs = telea.inpaint_many([r[0] for r in rows], [r[1] for r in rows])
    return rows, ours, theirs


def inpainting_grid(photos: list[Path], out_path: Path, size: int = DEFAULT_WORK_SIZE) -> Path:
    """Write a before/after grid: input with holes, Telea, BIDS-Net (shipped checkpoint), original."""
    from matplotlib.figure import Figure

    inpainter = shipped_inpainter()
    rows, ours, theirs = demo_fills(photos, size, inpainter)
    # The model's own label ("BIDS-Net (Telea fill + residual head, bidsnet_small.pt)"), wrapped to the column.
    titles = ("input", "OpenCV Telea", textwrap.fill(inpainter.label, 24), "original")
    fig = Figure(figsize=(2.4 * len(titles), 2.5 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for row, ((image, mask), fill_ours, fill_telea) in enumerate(zip(rows, ours, theirs, strict=True)):
        for col, picture in enumerate((overlay_mask(image, mask), fill_telea, fill_ours, image)):
            axes[row, col].imshow(picture)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(titles[col], fontsize=10)
    return atomic_write(out_path, lambda stream: fig.savefig(stream, format="png", dpi=100))


def run_demo(out: Path = Path("outputs"), seed: int = 0) -> list[Path]:
    """Mask galleries and the inpainting grid of the shipped photos in folder ``out``; the files written."""
    photos = shipped_photos()
    # One photo per demo mask, spread over the test set (a grid of all 37 would be unreadable).
    photos = photos[:: max(1, len(photos) // len(DEMO_MASKS))][: len(DEMO_MASKS)]
    out = Path(out)
    written = mask_gallery(photos, out, np.random.default_rng(seed))
    written.append(inpainting_grid(photos, out / "inpainting.png"))
    return written
