"""bidsnet_lib.inference: input forms, crops of large images, batching, checkpoints, the CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib import inference
from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.checkpoint import INFERENCE_FORMAT, save_checkpoint
from bidsnet_lib.inference import Inpainter, load_image, load_mask, main, plan_crops
from bidsnet_lib.model import BIDSNet, BIDSNetConfig

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
def test_load_image_forms(tmp_path):
    rgb = photo()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    grey = rgb[:, :, 0]
    Image.fromarray(rgb).save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(rgb), rgb)
    np.testing.assert_array_equal(load_image(rgba), rgb)
    np.testing.assert_array_equal(load_image(grey), np.dstack([grey] * 3))
    np.testing.assert_array_equal(load_image(grey[:, :, None]), np.dstack([grey] * 3))
    np.testing.assert_array_equal(load_image(Image.fromarray(rgba)), rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), rgb)
    np.testing.assert_array_equal(load_image(str(tmp_path / "p.png")), rgb)


def test_load_image_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="image must have dtype uint8.*float64"):
        load_image(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"image must be \(H, W\).*\(4, 4, 2\)"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="image must be a uint8 numpy array.*list"):
        load_image([[1, 2]])
    with pytest.raises(ValueError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        load_image(tmp_path / "notes.png")


def test_load_mask_forms_and_threshold(tmp_path):
    holes = box_mask()
    np.testing.assert_array_equal(load_mask(holes), holes)  # 0/1
    np.testing.assert_array_equal(load_mask(holes * 255), holes)  # 0/255
    np.testing.assert_array_equal(load_mask(holes.astype(bool)), holes)
    np.testing.assert_array_equal(load_mask(holes.astype(np.float32)), holes)
    np.testing.assert_array_equal(load_mask(Image.fromarray(holes * 255)), holes)
    np.testing.assert_array_equal(load_mask(Image.fromarray(holes * 255).convert("1")), holes)
    np.testing.assert_array_equal(load_mask(np.dstack([holes * 255] * 3)), holes)
    Image.fromarray(holes * 255).save(tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), holes)
    # Anti-aliased grey: a hole above half of full scale.
    np.testing.assert_array_equal(load_mask(np.array([[0, 127, 128, 255]], np.uint8)), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(load_mask(np.array([[0.2, 0.5, 0.51]])), [[0, 0, 1]])


def test_load_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="colour channels disagree"):
        load_mask(np.dstack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8), np.zeros((4, 4), np.uint8)]))
    with pytest.raises(TypeError, match="mask must be a numpy array.*float"):
        load_mask(3.0)


@pytest.mark.parametrize("form", ["rgb", "rgba", "grey", "pil", "path"])
def test_inpaint_keeps_known_pixels_for_every_image_form(inpainter, tmp_path, form):
    rgb, holes = photo(), box_mask()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    Image.fromarray(rgb).save(tmp_path / "p.png")
    source = {"rgb": rgb, "rgba": rgba, "grey": rgb[:, :, 1], "pil": Image.fromarray(rgb),
              "path": tmp_path / "p.png"}[form]
    expected = np.dstack([rgb[:, :, 1]] * 3) if form == "grey" else rgb
    out = inpainter.inpaint(source, holes * 255)
    assert out.dtype == np.uint8 and out.shape == (48, 40, 3)
    known = holes == 0
    np.testing.assert_array_equal(out[known], expected[known])
    assert (out[~known] != expected[~known]).any(), "the hole was not filled"


def test_mask_size_must_match(inpainter):
    with pytest.raises(ValueError, match=r"mask is 20x40 but image is 48x40 \(height x width\)"):
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
    with pytest.raises(ValueError, match="equally long, got 3 images and 2 masks"):
        inp.inpaint_many(images, masks[:2])


def test_inpainter_arguments_are_checked(tiny_model):
    with pytest.raises(ValueError, match="work_size must be a positive multiple of the model's stride 4, got 30"):
        Inpainter(tiny_model, work_size=30)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        Inpainter(tiny_model, batch_size=0)
    with pytest.raises(TypeError, match="model must be a BIDSNet or a callable"):
        Inpainter("telea")


def test_a_baseline_works_as_the_model():
    rgb, holes = photo(), box_mask()
    out = Inpainter(make_baseline("telea"), work_size=WORK, label="Telea").inpaint(rgb, holes)
    np.testing.assert_array_equal(out[holes == 0], rgb[holes == 0])


# ----------------------------------------------------------------------------- checkpoints
def test_from_checkpoint_reads_the_working_size(checkpoint, tiny_model):
    inp = Inpainter.from_checkpoint(checkpoint, device="cpu")
    assert inp.work_size == WORK and "tiny.pt" in inp.label
    rgb, holes = photo(), box_mask()
    np.testing.assert_array_equal(inp.inpaint(rgb, holes), Inpainter(tiny_model, work_size=WORK).inpaint(rgb, holes))


def test_missing_shipped_checkpoint_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(inference, "SHIPPED_CHECKPOINT", tmp_path / "bidsnet_small.pt")
    with pytest.raises(FileNotFoundError, match="shipped checkpoint .*bidsnet_small.pt is missing.*reinstall.*bidsnet train"):
        Inpainter.from_checkpoint()


def test_bad_checkpoints_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.pt"):
        Inpainter.from_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        Inpainter.from_checkpoint(tmp_path / "absent.pt")


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def files(tmp_path):
    rgb, holes = photo(), box_mask()
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(holes * 255).save(tmp_path / "mask.png")
    return tmp_path, rgb, holes


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
    assert "no such file" in bad_call([str(folder / "nope.png"), m, "-o", str(out), *ck], capsys)
    (folder / "text.png").write_text("hello")
    assert "not an image" in bad_call([str(folder / "text.png"), m, "-o", str(out), *ck], capsys)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "small.png")
    assert "mask is 10x10 but image is 48x40" in bad_call([p, str(folder / "small.png"), "-o", str(out), *ck], capsys)
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(folder / "empty.png")
    assert "all known" in bad_call([p, str(folder / "empty.png"), "-o", str(out), "--strict", *ck], capsys)
    assert "is an input file" in bad_call([p, m, "-o", p, *ck], capsys)
    assert "unknown image extension '.txt'" in bad_call([p, m, "-o", str(folder / "r.txt"), *ck], capsys)
    (folder / "corrupt.pt").write_bytes(b"PK\x03\x04garbage")
    assert "corrupt.pt" in bad_call([p, m, "-o", str(out), "--checkpoint", str(folder / "corrupt.pt")], capsys)
    torch.save({"weight": torch.zeros(3)}, folder / "foreign.pt")
    assert "not a bidsnet checkpoint" in bad_call([p, m, "-o", str(out), "--checkpoint", str(folder / "foreign.pt")], capsys)
    assert "give IMAGE MASK" in bad_call([p, "-o", str(out)], capsys)
    assert not out.exists()


def test_cli_folder_mode_refuses_and_writes_nothing_on_failure(tmp_path, checkpoint, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(photo(48, 40, i)).save(images / f"p{i}.png")
        Image.fromarray(box_mask() * 255).save(masks / f"p{i}.png")
    ck = ["--checkpoint", str(checkpoint)]
    assert "is the --images folder" in bad_call(["--images", str(images), "--masks", str(masks), "-o", str(images), *ck], capsys)
    # A truncated file passes the header check and fails while decoding: nothing may be written.
    data = (images / "p2.png").read_bytes()
    (images / "p2.png").write_bytes(data[: len(data) // 2])
    assert "p2.png" in bad_call(["--images", str(images), "--masks", str(masks), "-o", str(out), *ck], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks"]
    (masks / "p1.png").unlink()
    assert "no mask for 1 image(s): p1" in bad_call(["--images", str(images), "--masks", str(masks), "-o", str(out), *ck], capsys)


def test_python_dash_m_reports_errors_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "bidsnet_lib.inference", str(tmp_path / "a.png"),
                          str(tmp_path / "b.png"), "-o", str(tmp_path / "c.png")], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"python -m bidsnet_lib.inference: error: image: no such file {str(tmp_path / 'a.png')!r}"]


def test_white_photo_with_a_large_hole(inpainter):
    # Downscaling a float photo can overshoot 1.0 by a rounding error; the model must not see it.
    white = np.full((300, 260, 3), 255, np.uint8)
    holes = box_mask(300, 260, (20, 20, 280, 240))
    out = inpainter.inpaint(white, holes)
    np.testing.assert_array_equal(out[holes == 0], 255)
