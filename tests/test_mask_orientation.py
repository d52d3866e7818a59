"""A mask saved by a phone (stored turned, with an EXIF orientation tag) has the same holes wherever
it enters: ``bidsnet inpaint``, ``bidsnet evaluate``'s mask groups, ``MaskFolder`` and training.

Issue 24: ``bidsnet inpaint`` followed the tag (PIL) while the others read the stored pixels
(OpenCV), so one file meant two different masks.
"""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib.commands.inpaint import main as inpaint_main
from bidsnet_lib.data import InpaintingDataset, fixed_validation_set
from bidsnet_lib.evaluate import load_mask_groups
from bidsnet_lib.inference import Inpainter
from bidsnet_lib.masks import MaskFolder

HEIGHT, WIDTH = 40, 64  # as shown; stored 64 tall and 40 wide
SIZE = 32  # training's square


def shown_holes() -> np.ndarray:
    """The holes as a viewer shows the file: a block at the top left (15 %), no symmetry."""
    holes = np.zeros((HEIGHT, WIDTH), np.uint8)
    holes[:16, :24] = 1
    return holes


@pytest.fixture(params=[".png", ".jpg"])
def phone_mask(request, tmp_path):
    """(folder holding only the mask, the mask file): stored turned 90°, EXIF Orientation = 6."""
    folder = tmp_path / "masks"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns the stored pixels 90° clockwise
    stored = np.ascontiguousarray(np.rot90(shown_holes() * 255, 1))  # (WIDTH, HEIGHT)
    path = folder / f"photo{request.param}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 100} if request.param == ".jpg" else {}))
    return folder, path


def test_the_holes_of_a_rotated_mask_are_the_same_everywhere(phone_mask, tmp_path, monkeypatch):
    folder, path = phone_mask
    expected = shown_holes()

    # bidsnet inpaint: a model that paints black on a white photo shows which pixels were holes.
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 255, np.uint8)).save(photos / "photo.png")
    black = Inpainter(lambda image, mask: torch.zeros_like(image), work_size=SIZE)
    monkeypatch.setattr(Inpainter, "from_checkpoint", classmethod(lambda cls, *args, **kwargs: black))
    assert inpaint_main([str(photos / "photo.png"), str(path), "-o", str(tmp_path / "out.png")]) == 0
    with Image.open(tmp_path / "out.png") as out:
        inpainted = (np.asarray(out.convert("L")) == 0).astype(np.uint8)
    np.testing.assert_array_equal(inpainted, expected)

    # bidsnet evaluate: the mask groups of a folder of masks.
    groups = load_mask_groups(folder)
    assert [len(g.masks) for g in groups] == [1]
    np.testing.assert_array_equal(groups[0].masks[0], expected)

    # MaskFolder, at the file's size and resized.
    np.testing.assert_array_equal(MaskFolder(folder)[0], expected)
    square = cv2.resize(expected, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(MaskFolder(folder, size=SIZE)[0], square)

    # Training: the dataset's external mask folder, and fixed masks in validation.
    train = InpaintingDataset(photos, size=SIZE, mask_mix={"folder": 1}, mask_folder=folder)
    np.testing.assert_array_equal(train.mask_folder.load(0), square)
    fixed = tmp_path / "fixed" / "set1" / "10-20"
    fixed.mkdir(parents=True)
    path.rename(fixed / path.name)
    val = fixed_validation_set(photos, masks_dir=tmp_path / "fixed", size=SIZE)
    np.testing.assert_array_equal(val[0]["mask"][0].numpy(), square)
