"""bidsnet_lib.evaluate's realism: hole sharpness, the C2ST detectability test, their place in
evaluate() and `bidsnet evaluate --realism`."""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bidsnet_lib import evaluate as ev
from bidsnet_lib.commands import evaluate as evaluate_command
from bidsnet_lib.masks import SHIPPED_MASKS
from bidsnet_lib.model import composite

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
PROTOCOL = ev.C2STProtocol(patch=16, per_pair=6)  # 64 px photos: smaller patches than the default 48


def photos_of(split: str, count: int) -> dict[str, np.ndarray]:
    return ev.load_photos(ROOT / "data" / "images" / split, SIZE, limit=count)


@pytest.fixture(scope="module")
def train_photos():
    return photos_of("train", 10)


@pytest.fixture(scope="module")
def test_photos():
    return photos_of("val", 6)


@pytest.fixture(scope="module")
def groups():
    hole = np.zeros((SIZE, SIZE), np.uint8)
    hole[12:52, 16:48] = 1  # 31 % of the image
    ring = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(ring, (32, 32), 22, 1, thickness=14)
    return [ev.MaskGroup("folder", "box", [hole]), ev.MaskGroup("folder", "ring", [ring])]


def truth(image, mask):
    """A method that puts the true photo back: its fills are the real photo."""
    return image.clone()


def blur(image, mask):
    """A smooth fill: the photo blurred hard (sigma 3 px) inside the hole."""
    pixels = (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    smooth = np.stack([cv2.GaussianBlur(p, (0, 0), 3) for p in pixels])
    return composite(torch.from_numpy(smooth).permute(0, 3, 1, 2).float() / 255, image, mask)


def evaluation(train_photos, test_photos, groups, protocol=PROTOCOL, seed=0):
    check = ev.RealismCheck(train_photos, protocol, source="train")
    result = ev.evaluate({"truth": truth, "blur": blur}, test_photos, groups, baselines=("telea",),
                         progress=False, seed=seed, n_resamples=500, realism=check)
    return result, check


@pytest.fixture(scope="module")
def result(train_photos, test_photos, groups):
    return evaluation(train_photos, test_photos, groups)


# ----------------------------------------------------------------------------- hole sharpness
def test_sharpness_of_the_truth_is_one_of_a_blur_low_of_noise_high():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((2, 3, 48, 48))).float()
    image = torch.from_numpy(np.stack([cv2.GaussianBlur(i.permute(1, 2, 0).numpy(), (0, 0), 1)
                                       for i in image])).permute(0, 3, 1, 2).contiguous()
    mask = torch.zeros(2, 1, 48, 48)
    mask[:, :, 10:40, 8:30] = 1
    assert torch.equal(ev.hole_sharpness(image, image, mask), torch.ones(2))
    smooth = composite(torch.full_like(image, 0.5), image, mask)
    assert (ev.hole_sharpness(smooth, image, mask) < 0.15).all()
    noisy = composite((image + 0.2 * torch.randn_like(image)).clamp(0, 1), image, mask)
    assert (ev.hole_sharpness(noisy, image, mask) > 2).all()
    # The seam is not detail: a flat fill of a flat truth scores 1 however different its level.
    flat, other = torch.full_like(image, 0.2), composite(torch.full_like(image, 0.9), torch.full_like(image, 0.2), mask)
    assert torch.allclose(ev.hole_sharpness(other, flat, mask), torch.ones(2))
    # No hole: NaN; a hole too thin for a whole 3x3 window uses every hole pixel (seams and all).
    assert ev.hole_sharpness(image, image, torch.zeros_like(mask)).isnan().all()
    line = torch.zeros_like(mask)
    line[:, :, 20, :] = 1
    assert torch.equal(ev.hole_sharpness(image, image, line), torch.ones(2))
    assert torch.isfinite(ev.hole_sharpness(composite(smooth, image, line), image, line)).all()


def test_sharpness_refuses_bad_inputs():
    image, mask = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"output: got \(1, 3, 8, 8\), expected a tensor of the target's shape"):
        ev.hole_sharpness(image[..., :8, :8], image, mask)
    with pytest.raises(ValueError, match="mask: got shape"):
        ev.hole_sharpness(image, image, mask[:, 0])


# ----------------------------------------------------------------------------- the C2ST parts
def test_protocol_defaults_and_refusals():
    p = ev.C2STProtocol()
    assert (p.patch, p.per_pair, p.ridge, p.iterations, p.seed) == (48, 6, 1.0, 1000, 0)
    assert "6 patches of 48x48 px" in p.describe() and f"{len(ev.FEATURES)} " in p.describe()
    for kwargs, message in (({"patch": 4}, "patch: got 4, expected an int >= 8"),
                            ({"per_pair": 0}, "per_pair: got 0, expected an int >= 1"),
                            ({"ridge": 0}, "ridge: got 0, expected a finite number > 0"),
                            ({"seed": -1}, "seed: got -1, expected an int >= 0")):
        with pytest.raises(ValueError, match=message):
            ev.C2STProtocol(**kwargs)
    with pytest.raises(TypeError, match="iterations: got True, expected an int >= 1"):
        ev.C2STProtocol(iterations=True)


def test_patch_centres_lie_in_the_hole_with_the_patch_inside_and_repeat_for_a_key():
    hole = np.zeros((40, 50), np.uint8)
    hole[:, 30:] = 1  # touches the border: centres must keep the patch inside
    p = ev.C2STProtocol(patch=16, per_pair=20)
    centres = ev.patch_centres(hole, "a", p)
    assert centres.shape == (20, 2) and len({tuple(c) for c in centres.tolist()}) == 20
    assert hole[centres[:, 0], centres[:, 1]].all()
    assert (centres >= 8).all() and (centres[:, 0] <= 40 - 8).all() and (centres[:, 1] <= 50 - 8).all()
    assert np.array_equal(centres, ev.patch_centres(hole, "a", p))
    assert not np.array_equal(centres, ev.patch_centres(hole, "b", p))
    assert not np.array_equal(centres, ev.patch_centres(hole, "a", ev.C2STProtocol(patch=16, per_pair=20, seed=1)))
    tiny = np.zeros((40, 50), np.uint8)
    tiny[20, 40] = 1
    assert len(ev.patch_centres(tiny, "a", p)) == 1
    image = torch.rand(3, 40, 50)
    patches = ev.cut_patches(image, centres, 16)
    y, x = centres[0]
    assert patches.shape == (20, 3, 16, 16) and torch.equal(patches[0], image[:, y - 8: y + 8, x - 8: x + 8])
    with pytest.raises(ValueError, match=r"hole: got \(10, 50\), expected an \(H, W\) mask with sides >= the patch, 16"):
        ev.patch_centres(hole[:10], "a", p)


def test_features_are_finite_and_tell_smooth_from_textured():
    rng = np.random.default_rng(0)
    textured = torch.from_numpy(rng.random((8, 3, 16, 16))).float()
    smooth = torch.full((8, 3, 16, 16), 0.4) + torch.linspace(0, 0.1, 16)
    f_t, f_s = ev.patch_features(textured), ev.patch_features(smooth)
    assert f_t.shape == (8, len(ev.FEATURES)) and np.isfinite(f_t).all() and np.isfinite(f_s).all()
    mean_gradient = ev.FEATURES.index("log mean |∇|")
    assert (f_t[:, mean_gradient] > f_s[:, mean_gradient] + 2).all()
    with pytest.raises(ValueError, match=r"patches: got \(8, 1, 16, 16\), expected a tensor \(N, 3, P, P\)"):
        ev.patch_features(textured[:, :1])


def brute_auc(scores, labels):
    fill, real = scores[labels == 1][:, None], scores[labels == 0][None]
    return float(np.mean((fill > real) + 0.5 * (fill == real)))


def test_auc_and_its_interval_over_photos_match_a_direct_count():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    labels = np.tile([0, 1], 30)
    photos = np.repeat(np.arange(6), 10).astype(str)
    found = ev.detectability(scores, labels, photos, n_resamples=300, seed=3)
    assert found.auc == pytest.approx(brute_auc(scores, labels))
    assert found.ci_low <= found.auc <= found.ci_high
    for name in ("0", "4"):
        own = photos == name
        assert found.per_photo[name] == pytest.approx(brute_auc(scores[own], labels[own]))
    again = ev.detectability(scores, labels, photos, n_resamples=300, seed=3)
    assert (again.ci_low, again.ci_high) == (found.ci_low, found.ci_high)
    # The interval is that of a bootstrap over photos done by hand (other draws: within 0.03).
    draws = np.random.default_rng(9).integers(6, size=(2000, 6))
    by_hand = [brute_auc(*(np.concatenate([x[photos == str(p)] for p in d]) for x in (scores, labels)))
               for d in draws]
    wide = ev.detectability(scores, labels, photos, n_resamples=2000, seed=3)
    assert np.allclose((wide.ci_low, wide.ci_high), np.percentile(by_hand, [2.5, 97.5]), atol=0.03)
    same = ev.detectability_difference(found, found)
    assert same["diff"] == 0 and same["ci_low"] == same["ci_high"] == 0 and not same["beats"]
    with pytest.raises(ValueError, match=r"scores, labels, photos: got \(\(60,\), \(59,\), \(60,\)\)"):
        ev.detectability(scores, labels[:59], photos)
    with pytest.raises(ValueError, match="labels in {0, 1} with both present"):
        ev.detectability(scores, np.ones(60), photos)
    with pytest.raises(TypeError, match="model: got dict, expected a Detectability"):
        ev.detectability_difference({}, found)


def test_c2st_learns_a_difference_and_refuses_bad_inputs():
    rng = np.random.default_rng(0)
    d = len(ev.FEATURES)
    real, fill = rng.normal(size=(200, d)), rng.normal(size=(200, d))
    fill[:, 3] += 1.5
    test = ev.C2ST().fit(real, fill)
    assert test.auc(rng.normal(size=(100, d)), rng.normal(size=(100, d)) + np.eye(d)[3] * 1.5) > 0.8
    assert max(test.weights(), key=lambda k: abs(test.weights()[k])) == ev.FEATURES[3]
    assert abs(ev.C2ST().fit(real, rng.normal(size=(200, d))).auc(real, rng.normal(size=(200, d))) - 0.5) < 0.1
    with pytest.raises(ValueError, match=rf"real: got \(200, 3\), expected features \(N, {d}\)"):
        ev.C2ST().fit(real[:, :3], fill)
    with pytest.raises(ValueError, match=r"C2ST: got an unfitted test, expected fit\(real, fill\) first"):
        ev.C2ST().decision(real)
    with pytest.raises(TypeError, match="protocol: got dict, expected a C2STProtocol or None"):
        ev.C2ST({})


# ----------------------------------------------------------------------------- inside evaluate()
def test_the_true_photo_is_undetectable_and_as_sharp(result):
    res, _ = result
    for group in ("box", "ring"):
        assert res.value(group, "truth", "detectability") == 0.5
        assert res.value(group, "truth", "sharpness") == 1.0


def test_a_blurred_fill_is_detectable_and_less_sharp(result):
    res, check = result
    for group in ("box", "ring"):
        low, high = res.interval(group, "blur", "detectability")
        assert res.value(group, "blur", "detectability") > 0.85 and low > 0.7 and high <= 1
        assert res.value(group, "blur", "sharpness") < 0.6
        assert res.interval(group, "blur", "sharpness")[1] < 0.8
        c = res.comparison(group, "blur", "Telea (r=3)", "detectability")
        assert c["n_photos"] == 6 and c["ci_low"] <= c["diff"] <= c["ci_high"]
        c = res.comparison(group, "truth", "Telea (r=3)", "detectability")
        assert c["beats"] and c["diff"] < 0
    # 6 photos x 1 mask x 6 patches, real and filled; 10 training photos x 2 groups x 6.
    assert "36 real and 36 filled" in res._row("box", "blur", "detectability")["note"]
    assert check.summary["train_patches"] == 120 and check.summary["source"] == "train"
    assert set(check.summary["train_seconds"]) == {"Telea (r=3)", "truth", "blur"}


def test_tables_csv_and_json_carry_the_realism(result, tmp_path):
    res, _ = result
    text = res.markdown()
    assert "**Realism.**" in text and "Detectability (C2ST AUC) ↓" in text and "| folder | box | blur | " in text
    assert "**Detectability, model minus baseline**" in text
    paths = ev.write_outputs(res, tmp_path)
    with open(paths["csv"], newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] in ("detectability", "sharpness")]
    assert len(rows) == 2 * 3 * 2  # groups x methods x measures
    with open(paths["per_photo"], newline="") as f:
        assert sum(r["metric"] == "sharpness" for r in csv.DictReader(f)) == 2 * 3 * 6
    data = json.loads(Path(paths["json"]).read_text())
    assert data["realism"]["protocol"] == PROTOCOL.describe() and data["realism"]["train_photos"] == 10


def test_detectability_is_deterministic_given_the_seed(train_photos, test_photos, groups, result):
    first, _ = result
    again, _ = evaluation(train_photos, test_photos, groups)
    keep = ("detectability", "sharpness")
    assert [r for r in first.rows if r["metric"] in keep] == [r for r in again.rows if r["metric"] in keep]
    other, _ = evaluation(train_photos, test_photos, groups, ev.C2STProtocol(patch=16, per_pair=6, seed=1))
    assert other.value("box", "blur", "detectability") != first.value("box", "blur", "detectability")


def test_without_realism_nothing_changes(test_photos, groups):
    res = ev.evaluate({"truth": truth}, test_photos, groups[:1], baselines=(), progress=False, n_resamples=10)
    assert not res.realism and "Realism" not in res.markdown()
    assert {r["metric"] for r in res.rows} == set(ev.METRICS)


def test_realism_refuses_bad_inputs(train_photos, test_photos, groups):
    with pytest.raises(ValueError, match="train_photos: got dict, expected a non-empty dict"):
        ev.RealismCheck({})
    with pytest.raises(ValueError, match=r"train_photos\['x'\]: got \(8, 8\), expected an RGB uint8"):
        ev.RealismCheck({"x": np.zeros((8, 8), np.uint8)})
    with pytest.raises(ValueError, match=r"train_photos\['x'\]: got \(20, 20, 3\), expected sides >= the C2ST patch, 48"):
        ev.RealismCheck({"x": np.zeros((20, 20, 3), np.uint8)})
    with pytest.raises(TypeError, match="protocol: got str, expected a C2STProtocol"):
        ev.RealismCheck(train_photos, "fast")
    with pytest.raises(TypeError, match="realism: got str, expected a RealismCheck or None"):
        ev.evaluate({"truth": truth}, test_photos, groups, baselines=(), progress=False, realism="yes")
    mixed = {**train_photos, "again": next(iter(test_photos.values()))}
    with pytest.raises(ValueError, match="realism training photo: got 'again', expected none of the test photos"):
        ev.evaluate({"truth": truth}, test_photos, groups, baselines=(), progress=False,
                    realism=ev.RealismCheck(mixed, PROTOCOL))


# ----------------------------------------------------------------------------- the command
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_command_reports_realism(tmp_path, capsys, monkeypatch):
    from bidsnet_lib.checkpoint import INFERENCE_FORMAT, save_checkpoint
    from bidsnet_lib.model import BIDSNet, BIDSNetConfig

    tiny = dataclasses.replace(BIDSNetConfig.small(), width=8, channel_mults=(1, 2), cnn_depths=(1,),
                               trans_depths=(1,), heads=1, dim_head=8, nb_features=8)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    checkpoint = save_checkpoint({"model": BIDSNet(tiny).state_dict(), "config": tiny.to_dict(),
                                  "meta": {"image_size": 32}}, tmp_path / "tiny.pt", INFERENCE_FORMAT)
    folders = {}
    for split, names in (("test", ("skimage_rocket", "lomiri_life_by_aitzol_berasategi")),
                         ("val", sorted(p.stem for p in (ROOT / "data" / "images" / "val").glob("*"))[:3])):
        folders[split] = tmp_path / split
        folders[split].mkdir()
        for name in names:
            shutil.copy(next((ROOT / "data" / "images" / split).glob(f"{name}.*")), folders[split])
    base = ["--checkpoint", str(checkpoint), "--images", str(folders["test"]), "--masks",
            str(SHIPPED_MASKS / "set2"), "--size", "64", "--limit", "1", "--baselines", "telea",
            "--lpips", "off", "--no-fid", "--resamples", "100", "--out", str(tmp_path / "out")]
    assert evaluate_command.main([*base, "--realism-train", str(folders["val"])]) == 2
    assert "--realism-train FOLDER needs --realism" in one_line_error(capsys)
    assert evaluate_command.main([*base, "--realism", "--realism-train", str(tmp_path / "none")]) == 2
    assert "none" in one_line_error(capsys)
    assert evaluate_command.main([*base, "--realism", "--realism-train", str(folders["test"])]) == 2
    assert "--realism-train: got" in one_line_error(capsys)
    assert evaluate_command.main([*base, "--realism", "--realism-train", str(folders["val"])]) == 0
    text = (tmp_path / "out" / "results.md").read_text()
    assert f"3 photos of {folders['val']}" in text and "| Set II | thick | Telea (r=3) |" in text
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert sum(r["metric"] == "detectability" for r in csv.DictReader(f)) == 3 * 2


def test_tradeoff_points_measure_each_method_against_the_best_baseline_per_group():
    from bidsnet_lib.evaluate import plot_tradeoff, tradeoff_points

    scores = {  # method: {group: (psnr, detectability, sharpness)}
        "Telea": {"a": (20.0, 0.90, 0.5), "b": (18.0, 0.92, 0.5)},
        "PatchMatch": {"a": (19.8, 0.65, 0.9), "b": (18.4, 0.60, 0.8)},
        "model": {"a": (21.0, 0.88, 0.45), "b": (19.0, 0.90, 0.4)},
    }
    rows = [{"set": "Set I", "group": g, "method": m, "metric": metric, "value": v}
            for m, groups in scores.items() for g, values in groups.items()
            for metric, v in zip(("psnr", "detectability", "sharpness"), values, strict=True)]
    points = {p["method"]: p for p in tradeoff_points(rows, ["Telea", "PatchMatch"])}
    # the best baseline is Telea in group a (20.0) and PatchMatch in b (18.4)
    assert points["model"]["delta_psnr"] == pytest.approx((1.0 + 0.6) / 2)
    assert points["Telea"]["delta_psnr"] == pytest.approx(-0.2) and points["PatchMatch"]["delta_psnr"] == pytest.approx(-0.1)
    assert points["PatchMatch"]["detectability"] == pytest.approx(0.625) and points["model"]["sharpness"] == pytest.approx(0.425)
    assert not points["model"]["baseline"] and points["Telea"]["baseline"]
    only_a = {p["method"]: p for p in tradeoff_points(rows, ["Telea", "PatchMatch"], groups=[("Set I", "a")])}
    assert only_a["model"]["delta_psnr"] == pytest.approx(1.0) and only_a["model"]["groups"] == 1
    with pytest.raises(ValueError, match="groups"):
        tradeoff_points(rows, ["Telea"], groups=[("Set I", "c")])
    with pytest.raises(ValueError, match="baselines"):
        tradeoff_points(rows, ["NS"])
    ax = plot_tradeoff(list(points.values()))
    assert {t.get_text() for t in ax.texts} == set(scores)
