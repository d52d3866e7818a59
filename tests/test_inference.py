"""bidsnet_lib.inference: input forms, crops of large images, batching, checkpoints, the CLI."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib import inference
from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.checkpoint import INFERENCE_FORMAT, save_checkpoint
from bidsnet_lib.commands.inpaint import main
from bidsnet_lib.inference import (
    TILE_OVERLAP_DIVISOR,
    Inpainter,
    blend_ramp,
    level_scales,
    plan_crops,
    tile_starts,
)
from bidsnet_lib.model import BIDSNet, BIDSNetConfig
from bidsnet_lib.plumbing import read_mask, read_photo

WORK = 64  # working size of the tiny test model


def tiny_config() -> BIDSNetConfig:
    return BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,),
                         cnn_bottleneck_depth=1, trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)


@pytest.fixture(scope="module")
def tiny_model() -> BIDSNet:
    torch.manual_seed(0)
    return BIDSNet(tiny_config()).eval()


@pytest.fixture(scope="module")
def inpainter(tiny_model) -> Inpainter:
    return Inpainter(tiny_model, work_size=WORK, device="cpu")


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"model": tiny_model.state_dict(), "config": tiny_config().to_dict(),
                     "meta": {"image_size": WORK}}, path, INFERENCE_FORMAT)
    return path


def photo(height=48, width=40, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def box_mask(height=48, width=40, box=(10, 8, 30, 24)) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[box[0] : box[2], box[1] : box[3]] = 1
    return mask


class Oracle(torch.nn.Module):
    """Returns its input image unchanged: checks where crops come from and go to, pixel for pixel."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, image, mask):
        self.shapes.append(tuple(image.shape))
        return image


# ----------------------------------------------------------------------------- input forms
@pytest.mark.parametrize("form", ["rgb", "rgba", "grey", "pil", "path"])
def test_inpaint_keeps_known_pixels_for_every_image_form(inpainter, tmp_path, form):
    rgb, holes = photo(), box_mask()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgb).save(tmp_path / "p.png")
    source = {"rgb": rgb, "rgba": rgba, "grey": rgb[:, :, 1], "pil": Image.fromarray(rgb),
              "path": tmp_path / "p.png"}[form]
    expected = {"grey": np.dstack([rgb[:, :, 1]] * 3),
                "rgba": np.rint(rgb * (200 / 255) + 255 * (55 / 255)).astype(np.uint8)}.get(form, rgb)
    out = inpainter.inpaint(source, holes * 255)
    assert out.dtype == np.uint8 and out.shape == (48, 40, 3)
    known = holes == 0
    np.testing.assert_array_equal(out[known], expected[known])
    assert (out[~known] != expected[~known]).any(), "the hole was not filled"


def test_mask_size_must_match(inpainter):
    with pytest.raises(ValueError, match=r"mask: got 20x40, expected the size of image, 48x40 \(height x width\)"):
        inpainter.inpaint(photo(), np.zeros((20, 40), np.uint8))


def test_empty_mask_returns_input_and_full_mask_an_image(inpainter):
    rgb = photo()
    np.testing.assert_array_equal(inpainter.inpaint(rgb, np.zeros((48, 40), bool)), rgb)
    full = inpainter.inpaint(rgb, np.ones((48, 40), bool))
    assert full.shape == (48, 40, 3) and full.dtype == np.uint8


@pytest.mark.parametrize("size", [(5, 7), (37, 53), (64, 64), (130, 70)])
def test_any_size_is_padded_or_cropped(inpainter, size):
    rgb = photo(*size)
    holes = np.zeros(size, np.uint8)
    holes[size[0] // 3 : size[0] // 3 + 3, 1:4] = 1
    out = inpainter.inpaint(rgb, holes)
    assert out.shape == (*size, 3)
    np.testing.assert_array_equal(out[holes == 0], rgb[holes == 0])


# ----------------------------------------------------------------------------- crops
def test_plan_crops_small_hole_gets_a_native_resolution_crop():
    holes = np.zeros((1500, 2000), np.uint8)
    holes[700:730, 1000:1050] = 1
    (crop,) = plan_crops(holes, 256)
    assert (crop.height, crop.width) == (256, 256)  # grown to the working size: no downscaling
    assert crop.top <= 700 and crop.top + 256 >= 730 and crop.left <= 1000 and crop.left + 256 >= 1050
    assert crop.own.sum() == holes.sum()


def test_plan_crops_groups_near_holes_and_splits_far_ones():
    holes = np.zeros((1000, 1000), np.uint8)
    holes[100:120, 100:120] = 1
    holes[100:120, 130:150] = 1  # 10 px away: shares the first crop
    holes[800:810, 850:900] = 1  # far away: a crop of its own
    holes[0:5, 990:1000] = 1  # at the corner: the crop slides inside the image
    crops = plan_crops(holes, 64, margin=0.5, min_margin=16)
    assert len(crops) == 3
    owned = np.zeros_like(holes)
    for crop in crops:
        assert 0 <= crop.top and crop.top + crop.height <= 1000 and 0 <= crop.left and crop.left + crop.width <= 1000
        owned[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] += crop.own
    np.testing.assert_array_equal(owned, holes)  # every hole pixel pasted exactly once
    assert plan_crops(np.zeros((10, 10), np.uint8), 64) == []


def test_many_specks_become_one_union_crop():
    holes = np.zeros((400, 400), np.uint8)
    holes[::20, ::20] = 1  # 400 separate one-pixel holes
    (crop,) = plan_crops(holes, 64, min_margin=0)
    assert crop.own.sum() == holes.sum()


def test_large_image_model_sees_only_working_size_crops():
    oracle = Oracle()
    rgb = photo(1500, 2000)
    holes = np.zeros((1500, 2000), np.uint8)
    holes[700:730, 1000:1050] = 1
    holes[100:110, 1800:1900] = 1
    out = Inpainter(oracle, work_size=256).inpaint(rgb, holes)
    assert oracle.shapes == [(2, 3, 256, 256)]  # two crops in one batch, never the whole photo
    # Native-resolution crops: the oracle's copy comes back to the exact pixels it came from.
    np.testing.assert_array_equal(out, rgb)


def test_large_hole_is_downscaled_and_pasted_back_in_place():
    oracle = Oracle()
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.dstack([xx * 255 // 400, yy * 255 // 300, (xx + yy) * 255 // 700]).astype(np.uint8)
    holes = np.zeros((300, 400), np.uint8)
    holes[50:250, 60:340] = 1
    out = Inpainter(oracle, work_size=WORK).inpaint(smooth, holes)
    assert oracle.shapes == [(1, 3, WORK, WORK)]
    np.testing.assert_array_equal(out[holes == 0], smooth[holes == 0])
    # Down to 64 px and back up blurs a little but keeps the picture where it was.
    assert np.abs(out.astype(int) - smooth).max() <= 8


def test_inpaint_many_batches_and_matches_one_by_one(tiny_model):
    inp = Inpainter(tiny_model, work_size=WORK, batch_size=8)
    images = [photo(48, 40, 1), photo(70, 90, 2), photo(30, 30, 3)]
    masks = [box_mask(48, 40), box_mask(70, 90, (5, 5, 60, 80)), box_mask(30, 30, (0, 0, 10, 30))]
    together = inp.inpaint_many(images, masks)
    assert inp.inpaint(images, masks)[1].shape == (70, 90, 3)  # a list goes to inpaint_many
    for image, mask, out in zip(images, masks, together, strict=True):
        np.testing.assert_allclose(out.astype(int), inp.inpaint(image, mask).astype(int), atol=1)
    with pytest.raises(ValueError, match="images, masks: got 3 images and 2 masks, expected equally long lists"):
        inp.inpaint_many(images, masks[:2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1.5, -0.1])
def test_inpaint_refuses_float_masks_that_are_not_finite_or_outside_0_1(inpainter, bad):
    """A NaN pixel was silently treated as known: every mask goes through plumbing.read_mask."""
    holes = box_mask().astype(np.float32)
    holes[0, 0] = bad
    with pytest.raises(ValueError, match=r"^mask: got .*, expected a float mask in \[0, 1\]$"):
        inpainter.inpaint(photo(), holes)
    with pytest.raises(ValueError, match=r"^mask\[1\]: got .*, expected a float mask in \[0, 1\]$"):
        inpainter.inpaint_many([photo(), photo()], [box_mask(), holes])


def test_inpainter_arguments_are_checked(tiny_model):
    with pytest.raises(ValueError, match="work_size: got 30, expected a positive multiple of the model's stride 4"):
        Inpainter(tiny_model, work_size=30)
    with pytest.raises(ValueError, match="batch_size: got 0, expected an int >= 1"):
        Inpainter(tiny_model, batch_size=0)
    with pytest.raises(TypeError, match="model: got .*, expected a BIDSNet or a callable"):
        Inpainter("telea")


class ColumnRamp(torch.nn.Module):
    """Fills each pixel with its column's position, 0 at the left to 1 at the right: a fill that a
    mirror image turns around, so the mirrored average is 0.5 everywhere."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, image, mask):
        self.batches.append(image.shape[0])
        return torch.linspace(0, 1, image.shape[-1]).expand_as(image).clone()


def test_mirror_averages_the_fill_of_the_mirrored_crop_in_one_call():
    rgb, holes = photo(), box_mask()
    ramp = ColumnRamp()
    out = Inpainter(ramp, work_size=WORK, mirror=True).inpaint(rgb, holes)
    assert ramp.batches == [2]  # the crop and its mirror image in one batch
    assert (out[holes == 1] == 128).all()  # (x + (1 - x)) / 2 = 0.5
    assert len(np.unique(Inpainter(ColumnRamp(), work_size=WORK).inpaint(rgb, holes)[holes == 1])) > 10
    # Mirrored back before averaging: a model that returns its input gives the photo itself.
    np.testing.assert_array_equal(Inpainter(Oracle(), work_size=WORK, mirror=True).inpaint(rgb, holes), rgb)
    with pytest.raises(TypeError, match="mirror: got 'yes', expected True or False"):
        Inpainter(ramp, mirror="yes")


# ----------------------------------------------------------------------------- coarse to fine
class Residual(torch.nn.Module):
    """A stand-in with a residual head: returns ``answer(image, mask, fill)`` and records each call's
    shape and whether it was given a fill (a level above the first)."""

    config = type("Config", (), {"output": "residual", "stride": 1})()

    def __init__(self, answer=lambda image, mask, fill: image):
        super().__init__()
        self.answer, self.calls = answer, []

    def forward(self, image, mask, fill=None):
        self.calls.append((tuple(image.shape), fill is not None))
        return self.answer(image, mask, fill)


def test_level_scales_follow_the_thickest_hole():
    thick = np.zeros((800, 800), np.uint8)
    thick[50:750, 50:750] = 1  # 700 px thick: never coarser than the whole crop in one square, 64 / 800
    assert level_scales(thick, WORK) == pytest.approx([0.08, 0.16, 0.32, 0.64, 1.0])
    band = np.zeros((800, 800), np.uint8)
    band[390:410, :] = 1  # 20 px thick: at 64 / 40 it would be upscaled, so it starts at full resolution
    assert level_scales(band, WORK) == [1.0]
    band[350:450, 300:500] = 1  # 100 px thick: spans half the square at 64 / 200 (distances approximate)
    first, second, last = level_scales(band, WORK)
    assert first == pytest.approx(0.32, rel=0.06) and second == 2 * first and last == 1
    with pytest.raises(ValueError, match="work_size: got 0"):
        level_scales(band, 0)


def test_tiles_cover_the_length_and_their_ramps_never_vanish():
    for length in (64, 65, 200, 1000):
        starts = tile_starts(length, WORK, WORK // TILE_OVERLAP_DIVISOR)
        assert starts[0] == 0 and starts[-1] + WORK == max(length, WORK)
        assert all(b - a <= WORK - WORK // TILE_OVERLAP_DIVISOR for a, b in zip(starts, starts[1:], strict=False))
    ramp = blend_ramp(WORK, 8, before=True, after=False)
    np.testing.assert_allclose(ramp[:9], np.arange(1, 10) / 9)  # rises over the shared 8 pixels ...
    assert (ramp[8:] == 1).all() and (blend_ramp(WORK, 8, False, False) == 1).all()  # ... and only there


def test_coarse_to_fine_returns_the_photo_bit_for_bit_through_every_level_and_tile():
    yy, xx = np.mgrid[0:700, 0:900]
    smooth = np.dstack([xx * 255 // 900, yy * 255 // 700, (xx + yy) * 255 // 1600]).astype(np.uint8)
    holes = np.zeros((700, 900), np.uint8)
    holes[100:600, 150:800] = 1  # thick: starts from a thumbnail of the whole crop
    model = Residual()
    out = Inpainter(model, work_size=WORK, batch_size=3, coarse_to_fine=True).inpaint(smooth, holes)
    np.testing.assert_array_equal(out, smooth)  # tiles blended, levels stacked, nothing moved
    # Memory follows the tile: never more than batch_size working squares in one call.
    assert {shape[1:] for shape, _ in model.calls} == {(3, WORK, WORK)}
    assert max(shape[0] for shape, _ in model.calls) <= 3
    assert not model.calls[0][1] and all(given for _, given in model.calls[1:])  # fills from the level below
    assert len(model.calls) > 20  # the full-resolution level runs in tiles


def test_coarse_to_fine_blends_tiles_that_disagree_without_seams():
    def column_ramp(image, mask, fill):  # each tile paints 0 at its left edge to 1 at its right
        return torch.linspace(0, 1, image.shape[-1]).expand_as(image).clone()

    rgb = photo(64, 400)
    thin = np.zeros((64, 400), np.uint8)
    thin[30:32, 5:395] = 1  # a 2-px line: filled at full resolution directly, in overlapping tiles
    model = Residual(column_ramp)
    out = Inpainter(model, work_size=WORK, coarse_to_fine=True).inpaint(rgb, thin)
    assert not any(given for _, given in model.calls)  # one level, the model's own input fill
    assert sum(shape[0] for shape, _ in model.calls) >= 7  # 400 px in 64-px tiles overlapping by 8
    steps = np.diff(out[30, 5:395, 0].astype(int))
    assert steps.min() < 0 < steps.max()  # each tile its own rising ramp: they disagree ...
    # ... yet cross-fade over the 8-px overlaps, at most 255/9 + the ramp's own slope a pixel: no 255-to-0 seam
    assert np.abs(steps).max() <= 255 / 9 + 5
    np.testing.assert_array_equal(out[thin == 0], rgb[thin == 0])


def test_coarse_to_fine_mirrors_a_coarse_first_level_only():
    # The mirror average (each crop beside its mirror image in one call) is kept where a level
    # starts from a thumbnail; not at a first level at the crop's own resolution (thin holes), whose
    # tiles cover the whole photo, nor at the levels above the first.
    def mirrored(image):
        n = image.shape[0]
        return n % 2 == 0 and torch.equal(image[n // 2 :], image[: n // 2].flip(-1))

    thick = np.zeros((300, 300), np.uint8)
    thick[40:260, 40:260] = 1
    thin = np.zeros((64, 400), np.uint8)
    thin[30:32, 5:395] = 1
    for holes, levels in ((thick, {False: True, True: False}), (thin, {False: False})):
        seen = []
        model = Residual(lambda image, mask, fill, seen=seen: seen.append((fill is not None, mirrored(image))) or image)
        Inpainter(model, work_size=WORK, batch_size=4, mirror=True, coarse_to_fine=True).inpaint(
            photo(*holes.shape), holes)
        assert dict(seen) == levels and len(set(seen)) == len(levels)  # each kind of level alike


def test_coarse_to_fine_needs_a_residual_head_and_a_bool(tiny_model):
    assert tiny_model.config.output != "residual"
    with pytest.raises(ValueError, match="coarse_to_fine: got True, expected a model with a residual head"):
        Inpainter(tiny_model, work_size=WORK, coarse_to_fine=True)
    with pytest.raises(TypeError, match="coarse_to_fine: got 'yes', expected True or False"):
        Inpainter(Residual(), coarse_to_fine="yes")
    assert not Inpainter(Residual()).coarse_to_fine  # the plain constructor: off unless asked for


def test_one_call_can_choose_the_thumbnail_path():
    holes = np.zeros((300, 300), np.uint8)
    holes[40:260, 40:260] = 1  # a crop larger than the working square
    model = Residual()
    inpainter = Inpainter(model, work_size=WORK, coarse_to_fine=True)
    inpainter.inpaint(photo(300, 300), holes, coarse_to_fine=False)
    assert model.calls == [((1, 3, WORK, WORK), False)]  # one thumbnail, no levels
    assert inpainter.coarse_to_fine  # the inpainter's own choice is unchanged
    inpainter.inpaint([photo(300, 300)], [holes])
    assert len(model.calls) > 2 and model.calls[-1][1]  # levels, the last given the fill below
    with pytest.raises(TypeError, match="coarse_to_fine: got 1, expected True or False"):
        inpainter.inpaint(photo(300, 300), holes, coarse_to_fine=1)
    with pytest.raises(ValueError, match="coarse_to_fine: got True, expected a model with a residual head"):
        Inpainter(Oracle(), work_size=WORK).inpaint(photo(), box_mask(), coarse_to_fine=True)


def test_photos_that_fit_the_working_square_are_filled_alike_either_way():
    # bidsnet evaluate at 256 px with the shipped model (working size 256, coarse to fine on by
    # default): every crop fits the square, so the model card's 256-px results cannot change.
    from bidsnet_lib.masks import SHIPPED_MASKS

    shipped = Inpainter.from_checkpoint(device="cpu")
    assert shipped.coarse_to_fine and shipped.work_size == 256
    masks = [read_mask(SHIPPED_MASKS / name) for name in ("set1/50-60/000.png", "set2/thick/000.png")]
    assert all(m.shape == (256, 256) and m.mean() > 0.1 for m in masks)  # holes whose crops span the photo
    photos = [photo(256, 256, seed=1), np.full((256, 256, 3), 90, np.uint8)]
    by_levels = shipped.inpaint(photos, masks)
    for filled, expected in zip(by_levels, shipped.inpaint(photos, masks, coarse_to_fine=False), strict=True):
        np.testing.assert_array_equal(filled, expected)


def test_a_baseline_works_as_the_model():
    rgb, holes = photo(), box_mask()
    out = Inpainter(make_baseline("telea"), work_size=WORK, label="Telea").inpaint(rgb, holes)
    np.testing.assert_array_equal(out[holes == 0], rgb[holes == 0])


# ----------------------------------------------------------------------------- checkpoints
def test_from_checkpoint_reads_the_working_size(checkpoint, tiny_model):
    inp = Inpainter.from_checkpoint(checkpoint, device="cpu")
    assert inp.work_size == WORK and inp.label == "BIDS-Net (zero fill + image head, tiny.pt)" and inp.mirror
    rgb, holes = photo(), box_mask()
    np.testing.assert_array_equal(inp.inpaint(rgb, holes),
                                  Inpainter(tiny_model, work_size=WORK, mirror=True).inpaint(rgb, holes))
    assert not Inpainter.from_checkpoint(checkpoint, device="cpu", mirror=False).mirror


@pytest.fixture(scope="module")
def residual_checkpoint(tmp_path_factory):
    """A tiny model with a residual head whose correction is not zero, and its checkpoint."""
    torch.manual_seed(1)
    config = dataclasses.replace(tiny_config(), output="residual")
    model = BIDSNet(config).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "residual.pt"
    save_checkpoint({"model": model.state_dict(), "config": config.to_dict(), "meta": {"image_size": WORK}},
                    path, INFERENCE_FORMAT)
    return model, path


def test_from_checkpoint_fills_coarse_to_fine_with_a_residual_head(residual_checkpoint, checkpoint):
    model, path = residual_checkpoint
    assert Inpainter.from_checkpoint(path, device="cpu").coarse_to_fine
    assert not Inpainter.from_checkpoint(path, device="cpu", coarse_to_fine=False).coarse_to_fine
    assert not Inpainter.from_checkpoint(checkpoint, device="cpu").coarse_to_fine  # an image head cannot


def test_missing_shipped_checkpoint_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(inference, "SHIPPED_CHECKPOINT", tmp_path / "bidsnet_small.pt")
    with pytest.raises(FileNotFoundError, match="shipped checkpoint .*bidsnet_small.pt is missing.*reinstall.*bidsnet train"):
        Inpainter.from_checkpoint()


def test_bad_checkpoints_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.pt"):
        Inpainter.from_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt', expected a checkpoint file; there is no file"):
        Inpainter.from_checkpoint(tmp_path / "absent.pt")


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def files(tmp_path):
    rgb, holes = photo(), box_mask()
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(holes * 255).save(tmp_path / "mask.png")
    return tmp_path, rgb, holes


def test_cli_mirrors_unless_told_not_to(files, checkpoint, tiny_model):
    folder, rgb, holes = files
    for flags, mirror in (([], True), (["--no-mirror"], False)):
        out = folder / f"mirror_{mirror}.png"
        assert main([str(folder / "photo.png"), str(folder / "mask.png"), "-o", str(out),
                     "--checkpoint", str(checkpoint), *flags]) == 0
        expected = Inpainter(tiny_model, work_size=WORK, mirror=mirror).inpaint(rgb, holes)
        np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_cli_fills_coarse_to_fine_unless_told_not_to(tmp_path, residual_checkpoint, checkpoint, capsys):
    model, path = residual_checkpoint
    rgb, holes = photo(160, 200), box_mask(160, 200, (20, 30, 140, 170))  # larger than the working square
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(holes * 255).save(tmp_path / "mask.png")
    outputs = {}
    for flags, levels in (([], True), (["--no-coarse-to-fine"], False), (["--coarse-to-fine"], True)):
        out = tmp_path / f"{len(flags)}{levels}.png"
        assert main([str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), "-o", str(out),
                     "--checkpoint", str(path), *flags]) == 0
        outputs[levels] = np.asarray(Image.open(out))
        expected = Inpainter(model, work_size=WORK, mirror=True, coarse_to_fine=levels).inpaint(rgb, holes)
        np.testing.assert_array_equal(outputs[levels], expected)
    assert (outputs[True] != outputs[False]).any()
    # Asked for a model without a residual head: one line, status 2.
    assert main([str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), "-o", str(tmp_path / "no.png"),
                 "--checkpoint", str(checkpoint), "--coarse-to-fine"]) == 2
    assert "coarse_to_fine: got True, expected a model with a residual head" in capsys.readouterr().err


def test_cli_single_image(files, checkpoint, capsys):
    folder, rgb, holes = files
    code = main([str(folder / "photo.png"), str(folder / "mask.png"), "-o", str(folder / "out" / "result.png"),
                 "--checkpoint", str(checkpoint), "--strict"])
    assert code == 0, capsys.readouterr().err
    out = np.asarray(Image.open(folder / "out" / "result.png"))
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[holes == 0], rgb[holes == 0])
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["result.png"]  # no temp file left


def test_cli_folder_mode(tmp_path, checkpoint, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for i, (h, w) in enumerate([(48, 40), (60, 80), (33, 50)]):
        Image.fromarray(photo(h, w, i)).save(images / f"p{i}.jpg")
        Image.fromarray(box_mask(h, w, (3, 3, 20, 20)) * 255).save(masks / f"p{i}.png")
    (masks / "unused.png").write_bytes((masks / "p0.png").read_bytes())  # masks without photos are ignored
    code = main(["--images", str(images), "--masks", str(masks), "-o", str(out), "--checkpoint", str(checkpoint)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    source = np.asarray(Image.open(images / "p1.jpg"))
    result = np.asarray(Image.open(out / "p1.png"))
    known = box_mask(60, 80, (3, 3, 20, 20)) == 0
    np.testing.assert_array_equal(result[known], source[known])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "out"]  # staging removed


def bad_call(argv, capsys) -> str:
    """Run the CLI expecting a usage error; return its one stderr line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_bad_inputs(files, checkpoint, capsys):
    folder, _, _ = files
    ck = ["--checkpoint", str(checkpoint)]
    out = folder / "result.png"
    p, m = str(folder / "photo.png"), str(folder / "mask.png")
    assert "there is no file" in bad_call([str(folder / "nope.png"), m, "-o", str(out), *ck], capsys)
    (folder / "text.png").write_text("hello")
    assert "not an image" in bad_call([str(folder / "text.png"), m, "-o", str(out), *ck], capsys)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "small.png")
    assert "MASK: got 10x10, expected the size of IMAGE, 48x40" in bad_call([p, str(folder / "small.png"), "-o", str(out), *ck], capsys)
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(folder / "empty.png")
    assert "all known" in bad_call([p, str(folder / "empty.png"), "-o", str(out), "--strict", *ck], capsys)
    assert "it is the IMAGE file" in bad_call([p, m, "-o", p, *ck], capsys)
    assert "r.txt', expected a file name ending in one of .png" in bad_call([p, m, "-o", str(folder / "r.txt"), *ck], capsys)
    (folder / "corrupt.pt").write_bytes(b"PK\x03\x04garbage")
    assert "corrupt.pt" in bad_call([p, m, "-o", str(out), "--checkpoint", str(folder / "corrupt.pt")], capsys)
    torch.save({"weight": torch.zeros(3)}, folder / "foreign.pt")
    assert "not a bidsnet checkpoint" in bad_call([p, m, "-o", str(out), "--checkpoint", str(folder / "foreign.pt")], capsys)
    assert "give IMAGE MASK" in bad_call([p, "-o", str(out)], capsys)
    assert not out.exists()


def test_cli_folder_mode_checks_first_skips_bad_pairs_and_keeps_good_results(tmp_path, checkpoint, capsys):
    """Issue 17 #18: every problem reported at once, good pairs written, exit 1 when any was skipped."""
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for i in range(5):
        Image.fromarray(photo(48, 40, i)).save(images / f"p{i}.png")
        Image.fromarray(box_mask() * 255).save(masks / f"p{i}.png")
    ck = ["--checkpoint", str(checkpoint)]
    assert "it is the --images folder" in bad_call(["--images", str(images), "--masks", str(masks), "-o", str(images), *ck], capsys)
    # Three kinds of problem at once: a truncated file (found only while decoding), a missing mask,
    # a size mismatch.
    data = (images / "p2.png").read_bytes()
    (images / "p2.png").write_bytes(data[: len(data) // 2])
    (masks / "p1.png").unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "p3.png")
    assert main(["--images", str(images), "--masks", str(masks), "-o", str(out), *ck]) == 1
    err = capsys.readouterr().err
    assert "skipped p1: " in err and "no mask named p1" in err
    assert "skipped p3: mask " in err and ": got 10x10, expected the size of image" in err
    assert "skipped p2: " in err and "p2.png" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p4.png"]  # the good ones, nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "out"]  # no staging folder


def test_cli_folder_mode_refuses_a_file_as_out_before_any_work(tmp_path, checkpoint, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.fromarray(photo()).save(images / "a.png")
    Image.fromarray(box_mask() * 255).save(masks / "a.png")
    (tmp_path / "afile.txt").write_text("keep me")
    err = bad_call(["--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "afile.txt"),
                    "--checkpoint", str(checkpoint)], capsys)
    assert "a folder for the results (folder mode); it is a file" in err
    assert (tmp_path / "afile.txt").read_text() == "keep me"


def test_python_dash_m_reports_errors_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "bidsnet_lib.commands.inpaint", str(tmp_path / "a.png"),
                          str(tmp_path / "b.png"), "-o", str(tmp_path / "c.png")], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"python -m bidsnet_lib.commands.inpaint: error: IMAGE: got {str(tmp_path / 'a.png')!r}, expected an image "
        "file; there is no file (it does not exist)"]


def test_white_photo_with_a_large_hole(inpainter):
    # Downscaling a float photo can overshoot 1.0 by a rounding error; the model must not see it.
    white = np.full((300, 260, 3), 255, np.uint8)
    holes = box_mask(300, 260, (20, 20, 280, 240))
    out = inpainter.inpaint(white, holes)
    np.testing.assert_array_equal(out[holes == 0], 255)


def test_course_checkpoint_prefers_the_learners_export(tmp_path, monkeypatch):
    from bidsnet_lib import inference

    runs, drive = tmp_path / "runs", tmp_path / "drive"
    shipped = tmp_path / "shipped.pt"
    monkeypatch.setattr(inference, "SHIPPED_CHECKPOINT", shipped)
    path, why = inference.course_checkpoint(runs, drive)
    assert path is None and "no trained model" in why and str(shipped) in why
    shipped.write_bytes(b"x")
    path, why = inference.course_checkpoint(runs, drive)
    assert path == shipped and why.startswith("the shipped model")
    drive.mkdir()
    (drive / "06_model.pt").write_bytes(b"x")  # on Colab: the export on Drive
    assert inference.course_checkpoint(runs, drive)[0] == drive / "06_model.pt"
    runs.mkdir()
    (runs / "06_model.pt").write_bytes(b"x")  # beside the notebook: this machine's own export first
    path, why = inference.course_checkpoint(runs, drive)
    assert path == runs / "06_model.pt" and why.startswith("your own model, exported by notebook 06")


# ----------------------------------------------------------------------------- issue 17: hostile input
def inpaint_file(tmp_path, checkpoint, image: Image.Image, holes: np.ndarray, name="out.png", capsys=None):
    image.save(tmp_path / "in.png") if not name.endswith(".tif") else image.save(tmp_path / "in.tif")
    source = tmp_path / ("in.tif" if name.endswith(".tif") else "in.png")
    Image.fromarray(holes * 255).save(tmp_path / "m.png")
    code = main([str(source), str(tmp_path / "m.png"), "-o", str(tmp_path / name), "--checkpoint", str(checkpoint)])
    assert code == 0, capsys.readouterr().err if capsys else code
    return Image.open(tmp_path / name)


def test_16_bit_grey_photo_keeps_its_depth_and_level(tmp_path, checkpoint):
    """#5: a 16-bit grey photo came back 90 % white (mean 251 for an input of mean 127.5)."""
    grey = np.random.default_rng(0).integers(0, 65536, (48, 40)).astype(np.uint16)
    holes = box_mask()
    out = inpaint_file(tmp_path, checkpoint, Image.fromarray(grey), holes)
    assert out.mode.startswith("I")  # 16-bit in, 16-bit out
    values = np.asarray(out).astype(np.int64)
    np.testing.assert_array_equal(values[holes == 0], grey[holes == 0])
    assert abs(values.mean() - grey.mean()) < 0.1 * 65535
    np.testing.assert_allclose(read_photo(tmp_path / "in.png").rgb.mean(), grey.mean() / 257, atol=1)


@pytest.mark.parametrize("mode", ["I", "F", "F01"])
def test_int32_and_float_photos_are_scaled_not_clipped(mode):
    """#5: PIL I and F photos came back white or black."""
    level = np.tile(np.linspace(0, 1, 40), (48, 1))
    if mode == "I":
        pil = Image.fromarray((level * 65535).astype(np.int32), "I")
    elif mode == "F":
        pil = Image.fromarray((level * 255).astype(np.float32), "F")
    else:
        pil = Image.fromarray(level.astype(np.float32), "F")
    rgb = read_photo(pil).rgb
    np.testing.assert_allclose(rgb[..., 0], level * 255, atol=1)


def test_rgba_photo_keeps_its_alpha_through_inpainting(tmp_path, checkpoint):
    """#8: transparent areas became opaque black; alpha is written back unchanged, holes included."""
    rgb, holes = photo(), box_mask()
    alpha = np.zeros((48, 40), np.uint8)
    alpha[:, 20:] = 255
    alpha[:, 10:20] = 128
    out = inpaint_file(tmp_path, checkpoint, Image.fromarray(np.dstack([rgb, alpha])), holes)
    assert out.mode == "RGBA"
    values = np.asarray(out)
    np.testing.assert_array_equal(values[..., 3], alpha)  # holes included
    np.testing.assert_array_equal(values[holes == 0], np.dstack([rgb, alpha])[holes == 0])
    assert (values[..., :3][holes == 1] != rgb[holes == 1]).any()


def test_grey_in_grey_out(tmp_path, checkpoint):
    """#9: a grey photo came back RGB with a colour cast in the hole."""
    grey, holes = photo()[..., 0], box_mask()
    out = inpaint_file(tmp_path, checkpoint, Image.fromarray(grey), holes)
    assert out.mode == "L"
    values = np.asarray(out)
    np.testing.assert_array_equal(values[holes == 0], grey[holes == 0])
    grey_alpha = np.dstack([grey, np.full_like(grey, 255)])
    out = inpaint_file(tmp_path, checkpoint, Image.fromarray(grey_alpha, "LA"), holes, "la.png")
    assert out.mode == "LA"


def test_lossy_output_keeps_known_pixels_close_and_says_so(tmp_path, checkpoint, capsys):
    """#10: .jpg/.webp outputs differed by up to 36 levels on known pixels, silently."""
    rgb = np.asarray(Image.open(inference.__file__.replace("bidsnet_lib/inference.py", "data/images/test/")
                                + sorted(__import__("os").listdir(
                                    inference.__file__.replace("bidsnet_lib/inference.py", "data/images/test/")))[0])
                     .convert("RGB").resize((160, 120)))
    holes = box_mask(120, 160, (30, 30, 70, 90))
    jpg = np.asarray(inpaint_file(tmp_path, checkpoint, Image.fromarray(rgb), holes, "out.jpg")).astype(int)
    err = capsys.readouterr().err
    assert ".jpg is lossy" in err and "use .png" in err
    known = holes == 0
    assert np.percentile(np.abs(jpg[known] - rgb[known].astype(int)), 99) <= 8
    webp = np.asarray(inpaint_file(tmp_path, checkpoint, Image.fromarray(rgb), holes, "out.webp"))
    np.testing.assert_array_equal(webp[known], rgb[known])  # WebP is written lossless
    assert capsys.readouterr().err == ""


def test_jpeg_output_of_a_transparent_photo_is_refused(files, checkpoint, capsys, tmp_path):
    rgba = np.dstack([photo(), np.full((48, 40), 100, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "t.png")
    err = bad_call([str(tmp_path / "t.png"), str(files[0] / "mask.png"), "-o", str(tmp_path / "t.jpg"),
                    "--checkpoint", str(checkpoint)], capsys)
    assert "keeps transparency" in err


def test_nan_weights_are_refused_at_load_naming_the_tensor(tiny_model, tmp_path):
    """#7: a checkpoint whose weights hold NaN filled holes with black."""
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    save_checkpoint({"model": state, "config": tiny_config().to_dict(), "meta": {}}, tmp_path / "nan.pt",
                    INFERENCE_FORMAT)
    with pytest.raises(ValueError, match=f"tensor '{name}' holds 1 NaN or infinite value"):
        Inpainter.from_checkpoint(tmp_path / "nan.pt")


def test_non_finite_predictions_are_never_pasted():
    """#7: whatever the model, a NaN prediction is an error, not black holes."""
    inp = Inpainter(lambda image, mask: image * float("nan"), work_size=WORK)
    with pytest.raises(ValueError, match="model output: got 'NaN or infinite values', expected finite"):
        inp.inpaint(photo(), box_mask())


def test_crafted_config_is_refused_before_anything_is_allocated(tiny_model, tmp_path):
    """#12: a config asking for width 10**6 made the program try to allocate terabytes."""
    config = tiny_config().to_dict()
    config["width"] = 10**6
    save_checkpoint({"model": tiny_model.state_dict(), "config": config, "meta": {}}, tmp_path / "huge.pt",
                    INFERENCE_FORMAT)
    with pytest.raises(ValueError, match="huge.pt: its model config does not fit its weights.*refused before"):
        Inpainter.from_checkpoint(tmp_path / "huge.pt")


def test_folder_passed_as_image_or_checkpoint_says_what_to_pass(files, checkpoint, capsys, tmp_path):
    """#14: a folder as IMAGE, or a run folder as --checkpoint, was reported as "no such file"."""
    folder, _, _ = files
    m, out = str(folder / "mask.png"), str(tmp_path / "r.png")
    err = bad_call([str(folder), m, "-o", out, "--checkpoint", str(checkpoint)], capsys)
    assert "expected an image file, not a folder (a folder of photos goes to --images)" in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"")
    err = bad_call([str(folder / "photo.png"), m, "-o", out, "--checkpoint", str(run)], capsys)
    assert "not a folder; pass its" in err and "latest.pt" in err and "bidsnet export" in err


def test_cli_device_that_does_not_exist_is_one_line(files, checkpoint, capsys):
    """#11: --device cuda without a GPU (and --device gpu) ended in a traceback."""
    folder, _, _ = files
    argv = [str(folder / "photo.png"), str(folder / "mask.png"), "-o", str(folder / "r.png"),
            "--checkpoint", str(checkpoint)]
    assert "available here: cpu" in bad_call([*argv, "--device", "gpu"], capsys)
    if not torch.cuda.is_available():
        assert "expected a device this machine has: cpu" in bad_call([*argv, "--device", "cuda"], capsys)
    assert "expected a device this machine has" in bad_call([*argv, "--device", "cuda:99"], capsys)


def test_folder_mode_skips_a_result_it_cannot_write_and_names_it(tmp_path, checkpoint, capsys):
    """#16: errors in folder mode named out/.afile.txt.gui3zi5k/a.png; #30.10: one result that
    cannot be written aborted the whole batch."""
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for stem in "abc":
        Image.fromarray(photo()).save(images / f"{stem}.png")
        Image.fromarray(box_mask() * 255).save(masks / f"{stem}.png")
    out.mkdir()
    (out / "a.png").mkdir()  # the result's name is taken by a folder
    assert main(["--images", str(images), "--masks", str(masks), "-o", str(out), "--checkpoint", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert f"skipped a: cannot write {out / 'a.png'}" in err and "/." not in err.replace(str(tmp_path), "")
    assert "Traceback" not in err and (out / "b.png").is_file() and (out / "c.png").is_file()


def test_outputs_get_the_permissions_of_a_normal_write(files, checkpoint, tmp_path):
    """#17: results were written 0600 and folders 0700 whatever the umask."""
    import os
    import stat

    folder, _, _ = files
    old = os.umask(0o022)
    try:
        assert main([str(folder / "photo.png"), str(folder / "mask.png"), "-o", str(tmp_path / "new" / "r.png"),
                     "--checkpoint", str(checkpoint)]) == 0
        images, masks = tmp_path / "images", tmp_path / "masks"
        images.mkdir()
        masks.mkdir()
        Image.fromarray(photo()).save(images / "photo.png")
        Image.fromarray(box_mask() * 255).save(masks / "photo.png")
        assert main(["--images", str(images), "--masks", str(masks), "-o", str(tmp_path / "outdir"),
                     "--checkpoint", str(checkpoint)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "r.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "outdir").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "outdir" / "photo.png").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- siblings and the hostile pass
def test_16_bit_mask_opened_as_mode_i_is_not_clipped():
    """Sibling of #5: a 16-bit mask PIL opens as mode I was clipped by convert("L") (30000 -> hole)."""
    values = np.array([[0, 30000, 33000, 65535]], np.int32)
    np.testing.assert_array_equal(read_mask(Image.fromarray(values, "I")), [[0, 0, 1, 1]])


def test_crafted_working_size_in_the_meta_is_refused(tiny_model, tmp_path):
    """Sibling of #12: meta image_size 10**6 padded every crop to a terapixel square."""
    save_checkpoint({"model": tiny_model.state_dict(), "config": tiny_config().to_dict(),
                     "meta": {"image_size": 10**6}}, tmp_path / "big.pt", INFERENCE_FORMAT)
    with pytest.raises(ValueError, match=r"big.pt: meta work_size: got 1000000, expected an int from 1 to 2048"):
        Inpainter.from_checkpoint(tmp_path / "big.pt")


def test_out_whose_folder_is_a_file_is_one_line(files, checkpoint, capsys):
    folder, _, _ = files
    err = bad_call([str(folder / "photo.png"), str(folder / "mask.png"), "-o", str(folder / "mask.png" / "r.png"),
                    "--checkpoint", str(checkpoint)], capsys)
    assert "r.png', expected a file in a folder;" in err and "mask.png' is a file" in err


def test_an_all_known_mask_writes_the_photo_unchanged(files, checkpoint, tmp_path, capsys):
    """Hostile pass: an all-known mask (no --strict) crashed the writer ("cannot reshape array of size 0")."""
    folder, rgb, _ = files
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(tmp_path / "none.png")
    for source in (rgb, np.dstack([rgb, np.full((48, 40), 50, np.uint8)]), rgb[..., 0]):
        Image.fromarray(source).save(tmp_path / "src.png")
        assert main([str(tmp_path / "src.png"), str(tmp_path / "none.png"), "-o", str(tmp_path / "r.png"),
                     "--checkpoint", str(checkpoint)]) == 0, capsys.readouterr().err
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), source)
