"""bidsnet_lib.evaluate (evaluation): the `bidsnet evaluate` command on shipped data, the Python API, errors
(the inputs and the result tables: test_evaluate_inputs.py, test_evaluate_results.py)."""

import csv
import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scripts import load_script

from bidsnet_lib import evaluate as ev
from bidsnet_lib import fid, metrics, plumbing
from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.bootstrap import bootstrap_interval
from bidsnet_lib.checkpoint import INFERENCE_FORMAT, save_checkpoint
from bidsnet_lib.commands import evaluate as evaluate_command
from bidsnet_lib.masks import EVAL_PRESETS, RATIO_BINS, SHIPPED_MASKS, bin_name, irregular_mask
from bidsnet_lib.model import BIDSNet, BIDSNetConfig

ROOT = Path(__file__).resolve().parents[1]
MASKS = SHIPPED_MASKS
IMAGES = Path()  # conftest's four_photos, set by _four_photos before any test runs
GROUPS = [("Set I", bin_name(b)) for b in RATIO_BINS] + [("Set II", p) for p in EVAL_PRESETS]
TINY = dataclasses.replace(BIDSNetConfig.small(), width=8, channel_mults=(1, 2), cnn_depths=(1,),
                           trans_depths=(1,), heads=1, dim_head=8, nb_features=8)
LABEL = "BIDS-Net (zero fill + image head, tiny.pt)"  # what the model is, which file
BASELINES = ("Telea (r=3)", "Navier-Stokes (r=3)", "Biharmonic", "PatchMatch (p=3)")
METHODS = (*BASELINES, LABEL)
QUICK = ["--size", "32", "--limit", "1"]  # 8 groups x 1 mask x 4 photos = 32 pairs at 32x32
SET2 = ["--masks", str(MASKS / "set2")]  # quicker still: its 3 groups


@pytest.fixture(scope="module", autouse=True)
def cache_home(tmp_path_factory):
    """The command's default baseline cache goes to a folder of this module's, never ~/.cache."""
    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home))
        yield home / "bidsnet" / "baselines"


@pytest.fixture(scope="module", autouse=True)
def _four_photos(four_photos):
    global IMAGES  # noqa: PLW0603  (run() and the tests below read it)
    IMAGES = four_photos


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    payload = {"model": BIDSNet(TINY).state_dict(), "config": TINY.to_dict(), "meta": {"image_size": 32}}
    return save_checkpoint(payload, tmp_path_factory.mktemp("ckpt") / "tiny.pt", INFERENCE_FORMAT)


def run(checkpoint, out, *extra) -> int:
    return evaluate_command.main(["--checkpoint", str(checkpoint), "--images", str(IMAGES), "--masks", str(MASKS),
                    "--out", str(out), *QUICK, *extra])


@pytest.fixture(scope="module")
def quick_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run1"
    assert run(checkpoint, out, "--lpips", "off", "--no-fid") == 0
    return out


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------ the command
def test_command_writes_a_well_formed_csv_for_every_group_method_and_metric(quick_run):
    rows = read_rows(quick_run / "results.csv")
    assert tuple(rows[0]) == ev.CSV_COLUMNS
    # Every method and metric, and the photos' own hole colour error as the reference.
    assert len(rows) == len(GROUPS) * (len(METHODS) * len(ev.METRICS) + 1)
    cells = {(r["set"], r["group"], r["method"], r["metric"]): r for r in rows}
    for set_name, group in GROUPS:
        for method in METHODS:
            psnr, ssim = cells[(set_name, group, method, "psnr")], cells[(set_name, group, method, "ssim")]
            assert 5 < float(psnr["value"]) < 60 and 0 < float(ssim["value"]) <= 1
            assert psnr["n"] == "4" and psnr["n_photos"] == "4"  # 1 mask x 4 photos
            for metric in ("psnr", "ssim", "colour"):
                row = cells[(set_name, group, method, metric)]
                assert float(row["ci_low"]) <= float(row["value"]) <= float(row["ci_high"]), row
            for metric, flag in (("lpips", "--lpips off"), ("fid", "--no-fid")):
                row = cells[(set_name, group, method, metric)]
                assert row["value"] == "" and row["note"] == f"skipped: {flag}"
        assert float(cells[(set_name, group, ev.REFERENCE, "colour")]["value"]) > 0
        ratio = float(cells[(set_name, group, METHODS[0], "psnr")]["hole_ratio"])
        if set_name == "Set I":  # at 32x32 the resized masks stay near their bin
            low, high = (int(v) / 100 for v in group.split("-"))
            assert low - 0.05 <= ratio < high + 0.05


def test_command_writes_the_markdown_tables_and_both_pictures(quick_run):
    table = (quick_run / "results.md").read_text()
    assert "composited output (known pixels kept" in table and "resized to 32x32" in table
    assert "the model through bidsnet inpaint's Inpainter" in table and "averaged with that of the mirrored crop" in table
    assert "95 % percentile bootstrap interval of the mean over photos (10,000 resamples" in table
    lines = table.splitlines()
    for set_name, group in GROUPS:
        for method in METHODS:
            line = next(x for x in lines if x.startswith(f"| {set_name} | {group} |") and f"| {method} |" in x)
            assert line.count("skipped") == 2 and "| 4 × 1 |" in line and line.count(" [") == 3
        for baseline in BASELINES:  # the model against each baseline: ΔPSNR, wins, ΔSSIM, wins
            line = next(x for x in lines if x.startswith(f"| {set_name} | {group} | {baseline} |"))
            assert line.count("/4 |") == 2
    assert "LPIPS: skipped: --lpips off" in table and "FID: skipped: --no-fid" in table
    assert "the original photos themselves score" in table and "| s / image |" in table
    assert f"**{LABEL} minus each baseline**" in table
    assert "with both intervals above zero in 0 of 8 groups." in table  # a random tiny model
    figure = cv2.imread(str(quick_run / "metrics_vs_hole_ratio.png"))
    grid = cv2.imread(str(quick_run / "examples.png"))
    assert figure is not None and grid is not None
    assert grid.shape[0] > 4 * grid.shape[1] / 8  # a row per group (8), eight columns


def test_per_photo_numbers_give_the_means_intervals_and_comparisons(quick_run):
    rows = {(r["set"], r["group"], r["method"], r["metric"]): r for r in read_rows(quick_run / "results.csv")}
    per_photo = read_rows(quick_run / "per_photo.csv")
    assert tuple(per_photo[0]) == ev.PER_PHOTO_COLUMNS
    data = json.loads((quick_run / "results.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))
    assert data["bootstrap"] == {"method": "percentile", "over": "photos", "confidence": 0.95,
                                 "seed": 0, "n_resamples": 10_000}
    assert data["baselines"] == list(BASELINES) and data["methods"] == list(METHODS)
    assert set(data["seconds_per_image"]) == set(METHODS)
    values = {}
    for r in per_photo:
        values.setdefault((r["set"], r["group"], r["method"], r["metric"]), {})[r["photo"]] = float(r["value"])
    for set_name, group in GROUPS:
        for method in METHODS:
            for metric in ("psnr", "ssim"):
                photos = values[(set_name, group, method, metric)]
                assert len(photos) == 4
                row = rows[(set_name, group, method, metric)]
                assert np.mean(list(photos.values())) == pytest.approx(float(row["value"]), rel=1e-9)
                low, high = bootstrap_interval(list(photos.values()), seed=0)
                assert (low, high) == pytest.approx((float(row["ci_low"]), float(row["ci_high"])), rel=1e-12)
    for c in data["comparisons"]:
        model = values[(c["set"], c["group"], c["model"], c["metric"])]
        base = values[(c["set"], c["group"], c["baseline"], c["metric"])]
        diff = [model[p] - base[p] for p in model]
        assert c["diff"] == pytest.approx(np.mean(diff), rel=1e-9, abs=1e-12)
        assert c["wins"] == np.mean([d > 0 for d in diff]) and c["n_photos"] == 4
    assert len(data["comparisons"]) == len(GROUPS) * len(BASELINES) * 2  # PSNR and SSIM
    assert sum(c["best"] for c in data["comparisons"]) == len(GROUPS) * 2  # one best per group, metric


def test_same_seed_gives_the_same_csv_and_the_table_is_printed(quick_run, checkpoint, tmp_path, capsys,
                                                                cache_home):
    cached = sorted(cache_home.rglob("*.npz"))
    assert len(cached) == len(GROUPS) * 4 * 2  # each (photo, mask) once for biharmonic and PatchMatch
    assert run(checkpoint, tmp_path / "again", "--lpips", "off", "--no-fid") == 0
    assert sorted(cache_home.rglob("*.npz")) == cached  # read back, nothing recomputed
    assert (tmp_path / "again" / "results.csv").read_bytes() == (quick_run / "results.csv").read_bytes()
    printed = capsys.readouterr().out
    assert printed.startswith((tmp_path / "again" / "results.md").read_text())  # (its timings differ)
    assert run(checkpoint, tmp_path / "fresh", "--lpips", "off", "--no-fid", "--no-cache") == 0
    assert (tmp_path / "fresh" / "results.csv").read_bytes() == (quick_run / "results.csv").read_bytes()
    printed += capsys.readouterr().out
    assert "wrote " in printed and "examples.png" in printed


def test_random_lpips_backbone_is_computed_and_labelled_not_comparable(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    assert run(checkpoint, tmp_path / "out", "--random-lpips-backbone", "--no-fid",
               "--baselines", "telea", *SET2) == 0
    rows = [r for r in read_rows(tmp_path / "out" / "results.csv") if r["metric"] == "lpips"]
    assert len(rows) == len(EVAL_PRESETS) * 2
    assert all(0 <= float(r["value"]) < 1 and "not comparable" in r["note"].lower() for r in rows)
    assert "RANDOM trunk: not comparable" in (tmp_path / "out" / "results.md").read_text()


def test_weight_flags_reach_the_metrics_and_fid_rows_state_the_count(checkpoint, tmp_path, monkeypatch):
    seen = {}

    class FakeLPIPS:
        label = "LPIPS (fake: mean absolute error)"

        def __init__(self, net, *, backbone_path=None, random_backbone=False, device=None):
            seen["lpips"] = (net, backbone_path, random_backbone)

        def __call__(self, pred, target):
            return (pred - target).abs().flatten(1).mean(dim=1)

    def fake_inception(weights_path=None, *, device=None):
        seen["fid"] = weights_path
        return Projection()

    monkeypatch.setattr(metrics, "LPIPSMetric", FakeLPIPS)
    monkeypatch.setattr(fid, "load_fid_inception", fake_inception)
    with pytest.warns(fid.FIDSampleSizeWarning, match="from 4 to 4 images"):
        assert run(checkpoint, tmp_path / "out", "--lpips", "vgg", "--lpips-weights", "vgg.pth",
                   "--fid-weights", "inception.pth", "--baselines", "telea,ns", *SET2) == 0
    assert seen == {"lpips": ("vgg", "vgg.pth", False), "fid": "inception.pth"}
    rows = read_rows(tmp_path / "out" / "results.csv")
    for row in rows:
        if row["metric"] in ("lpips", "fid"):
            assert math.isfinite(float(row["value"])), row
    fid_notes = {r["note"] for r in rows if r["metric"] == "fid"}
    assert fid_notes and all("4 real / 4 generated images" in note for note in fid_notes)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "LPIPS: LPIPS (fake: mean absolute error)" in table
    assert "| ΔLPIPS ↓ | wins |" in table  # LPIPS is compared too when computed


@pytest.mark.parametrize("args, flags", [
    ([], ("alexnet-owt-7be5be79.pth", "--lpips off", "--random-lpips-backbone", "--lpips-weights")),
    (["--lpips", "off"], ("pt_inception-2015-12-05-6726825d.pth", "--no-fid", "--fid-weights")),
])
def test_missing_weights_fail_fast_naming_the_file_and_the_flags(checkpoint, tmp_path, monkeypatch,
                                                                 capsys, args, flags):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: False)
    assert run(checkpoint, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert all(flag in err for flag in flags), err
    assert not (tmp_path / "out").exists()  # failed before any work


def test_native_size_runs_the_any_size_path(checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, (h, w) in (("a", (48, 72)), ("b", (64, 40))):  # two sizes, neither square
        cv2.imwrite(str(photos / f"{name}.png"), cv2.imread(str(sorted(IMAGES.glob("*.jpg"))[0]))[:h, :w])
    out = tmp_path / "out"
    assert evaluate_command.main(["--checkpoint", str(checkpoint), "--images", str(photos), "--masks", str(MASKS / "set1"),
                    "--out", str(out), "--size", "native", "--limit", "2", "--lpips", "off", "--no-fid"]) == 0
    rows = read_rows(out / "results.csv")
    assert {r["group"] for r in rows} == {bin_name(b) for b in RATIO_BINS}
    assert {r["n"] for r in rows} == {"4"}  # 2 masks x 2 photos
    assert "at their own sizes" in (out / "results.md").read_text()


def test_protocol_says_coarse_to_fine_only_where_a_crop_can_exceed_the_working_square(tmp_path):
    torch.manual_seed(0)
    residual = dataclasses.replace(TINY, output="residual")
    checkpoint = save_checkpoint({"model": BIDSNet(residual).state_dict(), "config": residual.to_dict(),
                                  "meta": {"image_size": 32}}, tmp_path / "residual.pt", INFERENCE_FORMAT)
    for size, said in (("32", False), ("48", True)):
        out = tmp_path / size
        assert evaluate_command.main(["--checkpoint", str(checkpoint), "--images", str(IMAGES), *SET2, "--out", str(out),
                                      "--size", size, "--limit", "1", "--baselines", "telea", "--lpips", "off",
                                      "--no-fid", "--no-cache"]) == 0
        assert ("a larger crop filled coarse to fine" in (out / "results.md").read_text()) == said


def test_command_runs_the_model_through_the_inpainter_at_256_by_default(checkpoint, tmp_path, monkeypatch,
                                                                       cache_home):
    from bidsnet_lib.inference import Inpainter

    seen = {}

    def record(models, photos, groups, **options):
        seen.update(models=models, photos=photos, options=options)
        raise ValueError("recorded")

    monkeypatch.setattr(evaluate_command, "evaluate", record)
    assert evaluate_command.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--limit", "1",
                    "--lpips", "off", "--no-fid"]) == 2
    inpainter = seen["models"][LABEL]
    assert isinstance(inpainter, Inpainter) and inpainter.work_size == 32  # the checkpoint's size
    assert {p.shape for p in seen["photos"].values()} == {(256, 256, 3)}
    options = seen["options"]
    assert options["cache"] == cache_home and options["n_resamples"] == 10_000
    assert [getattr(b, "name", b) for b in options["baselines"]] == ["telea", "ns", "biharmonic",
                                                                     "PatchMatch (p=3)"]
    assert evaluate_command.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--limit", "1",
                                  "--lpips", "off", "--no-fid", "--work-size", "16"]) == 2
    assert seen["models"][LABEL].work_size == 16 and "working size 16x16" in seen["options"]["protocol"]


def test_baselines_flag_and_patchmatch_left_out_when_missing(checkpoint, tmp_path, monkeypatch, capsys):
    off = ["--lpips", "off", "--no-fid", *SET2]
    assert run(checkpoint, tmp_path / "two", *off, "--baselines", "biharmonic,telea") == 0
    methods = list(dict.fromkeys(r["method"] for r in read_rows(tmp_path / "two" / "results.csv")))
    assert methods == ["Biharmonic", "Telea (r=3)", LABEL, ev.REFERENCE]
    assert run(checkpoint, tmp_path / "alone", *off, "--baselines", "none") == 0
    assert "minus each baseline" not in (tmp_path / "alone" / "results.md").read_text()
    monkeypatch.setattr("bidsnet_lib.evaluate.evaluation.patchmatch_available", lambda: False)
    capsys.readouterr()
    assert run(checkpoint, tmp_path / "no_pm", *off) == 0
    assert "PatchMatch left out of the baselines: pypatchmatch is not installed" in capsys.readouterr().err
    assert "PatchMatch is left out" in (tmp_path / "no_pm" / "results.md").read_text()
    assert not any("PatchMatch" in r["method"] for r in read_rows(tmp_path / "no_pm" / "results.csv"))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("bidsnet evaluate: error:") and "\n" not in err, err
    return err


def test_errors_exit_2_with_one_line(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    base = ["--images", str(IMAGES), "--masks", str(MASKS), "--out", str(tmp_path / "out")]
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt"), *base], "missing.pt', expected a checkpoint file; there is no"),
        (["--checkpoint", str(text), *base, "--lpips", "off", "--no-fid"],
         "not a PyTorch checkpoint"),
        (["--checkpoint", str(checkpoint), *base, "--images", str(tmp_path / "nowhere")],
         "images: no such folder"),
        (["--checkpoint", str(checkpoint), *base, "--images", str(empty)], "expected a folder holding .png/.jpg"),
        (["--checkpoint", str(checkpoint), *base, "--masks", str(empty)], "expected a folder holding .png"),
        (["--checkpoint", str(checkpoint), *base, "--masks", str(tmp_path / "nowhere")],
         "masks: no such folder"),
        (["--checkpoint", str(checkpoint), *base, "--size", "8"], "--size: got '8'"),
        (["--checkpoint", str(checkpoint), *base, "--limit", "0"], "--limit: got '0'"),
        (["--checkpoint", str(checkpoint), *base, "--masks-per-group", "x"], "--masks-per-group/--limit: got 'x'"),
        (["--checkpoint", str(checkpoint), *base, "--resamples", "0"], "--resamples: got '0'"),
        (["--checkpoint", str(checkpoint), *base, "--baselines", "telea,lama"],
         "--baselines: got 'telea,lama', expected distinct names from telea,ns,biharmonic,patchmatch"),
        (["--checkpoint", str(checkpoint), *base, "--lpips", "off", "--random-lpips-backbone"],
         "needs an LPIPS trunk"),
        (["--checkpoint", str(checkpoint), *base, "--no-fid", "--fid-weights", "x.pth"],
         "exclude each other"),
        (["--checkpoint", str(checkpoint), *base[:4]], "the following arguments are required: --out"),
    ]
    for argv, message in cases:
        assert evaluate_command.main(argv) == 2, argv
        assert message in one_line_error(capsys), argv
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ Python API
@pytest.fixture(scope="module")
def photos():
    return ev.load_photos(IMAGES, 48, limit=3)


@pytest.fixture(scope="module")
def masks():
    rng = np.random.default_rng(1)
    return {"10-20": [irregular_mask(48, 48, RATIO_BINS[0], rng) for _ in range(2)],
            "40-50": [irregular_mask(48, 48, RATIO_BINS[3], rng) for _ in range(2)]}


class Projection:
    """Cheap FID features for tests: a fixed random projection of 8x8 thumbnails."""

    name, comparable = "random projection of 8x8 thumbnails", False

    def __init__(self):
        self.weight = torch.randn(192, 16, generator=torch.Generator().manual_seed(0))

    def __call__(self, images):
        return torch.nn.functional.adaptive_avg_pool2d(images, 8).flatten(1) @ self.weight  # (B, 16)


def test_evaluate_keeps_known_pixels_and_scores_like_the_metrics(photos, masks):
    zeros = lambda image, mask: torch.zeros_like(image)  # noqa: E731 - a method that paints black
    result = ev.evaluate({"black": zeros}, photos, masks, baselines=(), progress=False)
    assert result.methods == ["black"]
    for group, group_masks in masks.items():
        expected = []
        for photo in photos.values():
            for m in group_masks:
                out = np.where(m[:, :, None] == 1, 0, photo)  # known pixels kept
                expected.append(metrics.psnr(out, photo).item())
        assert result.value(group, "black", "psnr") == pytest.approx(np.mean(expected), rel=1e-6)
        assert result.value(f"masks {group}", "black", "psnr") == result.value(group, "black", "psnr")
        low, high = result.interval(group, "black", "psnr")
        assert low < result.value(group, "black", "psnr") < high
    assert result.comparisons == [] and "minus each baseline" not in result.markdown()
    ex = result.examples[0]
    np.testing.assert_array_equal(ex.outputs["black"], np.where(ex.mask[:, :, None] == 1, 0, ex.target))


def test_evaluate_fid_with_a_pluggable_extractor_states_the_count_and_warns(photos, masks):
    oracle = lambda image, mask: image  # noqa: E731 - fills every hole with the truth
    with pytest.warns(fid.FIDSampleSizeWarning, match="from 6 to 6 images"):
        result = ev.evaluate({"oracle": oracle}, photos, masks, fid_features=Projection(), progress=False)
    assert result.methods == [*BASELINES, "oracle"] and result.baselines == list(BASELINES)
    assert result.value("10-20", "oracle", "psnr") == math.inf
    assert all(math.isnan(v) for v in result.interval("10-20", "oracle", "psnr"))  # no interval of inf
    # The true content's hole colour error is the photos' own, the reference.
    assert result.value("10-20", "oracle", "colour") == result.value("10-20", ev.REFERENCE, "colour")
    assert result.value("10-20", "oracle", "fid") == pytest.approx(0, abs=1e-4)
    assert result.value("40-50", "Telea (r=3)", "fid") > result.value("40-50", "oracle", "fid")
    fid_rows = [r for r in result.rows if r["metric"] == "fid"]
    assert all("6 real / 6 generated images" in r["note"] and "NOT comparable" in r["note"] for r in fid_rows)
    assert "LPIPS: skipped: not requested" in result.markdown()


def test_evaluate_runs_a_bidsnet_restores_its_mode_and_is_deterministic(photos, masks):
    model = BIDSNet(TINY).train()
    first = ev.evaluate(model, photos, masks, baselines=("telea", "ns"), seed=3, progress=False)
    assert model.training
    second = ev.evaluate(model, photos, masks, baselines=("telea", "ns"), seed=3, progress=False)
    assert first.rows == second.rows and first.comparisons == second.comparisons
    assert [ex.photo for ex in first.examples] == [ex.photo for ex in second.examples]
    assert "BIDS-Net" in first.methods and len(first.rows) == 2 * (3 * len(ev.METRICS) + 1)
    assert first.models == ["BIDS-Net"] and set(first.seconds) == set(first.methods)


def test_a_better_model_beats_every_baseline_and_a_worse_one_none(photos, masks, tmp_path):
    def near_oracle(image, mask):  # the truth, one grey level off: finite PSNR far above any fill
        return (image + 1 / 255).clamp(0, 1)

    black = lambda image, mask: torch.zeros_like(image)  # noqa: E731
    result = ev.evaluate({"near": near_oracle, "black": black}, photos, masks, cache=tmp_path,
                         baselines=("telea", "biharmonic", make_baseline("patchmatch", patch_size=2)),
                         n_resamples=500, progress=False)
    assert result.baselines == ["Telea (r=3)", "Biharmonic", "PatchMatch (p=2)"]
    assert result.target_groups("near") == ["masks 10-20", "masks 40-50"]
    assert result.target_groups("black") == []
    for baseline in result.baselines:
        c = result.comparison("40-50", "near", baseline, "ssim")
        assert c["beats"] and c["wins"] == 1 and 0 < c["ci_low"] <= c["diff"] <= c["ci_high"]
        assert result.comparison("40-50", "black", baseline, "psnr")["wins"] == 0
    table = result.markdown()
    assert "Beats every baseline on PSNR and SSIM with both intervals above zero in 2 of 2 groups: " \
           "masks 10-20, masks 40-50." in table and "500 resamples" in table
    # The baselines went to the cache: an evaluation of the same pairs reads them back.
    assert len(list(tmp_path.rglob("*.npz"))) == 2 * len(photos) * 4  # Telea is not worth caching
    again = ev.evaluate({"near": near_oracle}, photos, masks, cache=tmp_path, n_resamples=500,
                        baselines=("telea", "biharmonic", make_baseline("patchmatch", patch_size=2)),
                        progress=False)
    assert again.value("40-50", "PatchMatch (p=2)", "psnr") == result.value("40-50", "PatchMatch (p=2)", "psnr")
    assert again.seconds["Biharmonic"] == pytest.approx(result.seconds["Biharmonic"])  # as computed


def test_evaluate_bad_arguments(photos, masks):
    with pytest.raises(TypeError, match="model: got int"):
        ev.evaluate(3, photos, masks, progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        ev.evaluate(None, photos, masks, baselines=(), progress=False)
    with pytest.raises(ValueError, match=r"images\['x'\]: got float64"):
        ev.evaluate(None, {"x": np.zeros((48, 48, 3))}, masks, progress=False)
    with pytest.raises(ValueError, match="images: got none"):
        ev.evaluate(None, {}, masks, progress=False)
    with pytest.raises(ValueError, match="batch_size: got 0"):
        ev.evaluate(None, photos, masks, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="output: got torch.Size"):
        ev.evaluate(lambda i, m: i[:, :1], photos, masks, progress=False)
    with pytest.raises(ValueError, match="only 0 and 1"):
        ev.evaluate(None, photos, {"bad": [np.full((48, 48), 2, np.uint8)]}, progress=False)
    with pytest.raises(ValueError, match="has no hole left at 48x48"):
        ev.evaluate(None, photos, {"none": [np.zeros((48, 48), np.uint8)]}, progress=False)
    with pytest.raises(ValueError, match="seed: got -1"):
        ev.evaluate(None, photos, masks, seed=-1, progress=False)
    with pytest.raises(TypeError, match="fid_features: got str"):
        ev.evaluate(None, photos, masks, fid_features="inception", progress=False)
    with pytest.raises(ValueError, match="name: got 'lama'"):
        ev.evaluate(None, photos, masks, baselines=("lama",), progress=False)
    with pytest.raises(TypeError, match="baselines: got 3"):
        ev.evaluate(None, photos, masks, baselines=(3,), progress=False)
    with pytest.raises(ValueError, match="n_resamples: got 0"):
        ev.evaluate(None, photos, masks, n_resamples=0, progress=False)
    with pytest.raises(ValueError, match="model name: got 'original photo', a baseline's or the reference's name"):
        ev.evaluate({ev.REFERENCE: lambda i, m: i}, photos, masks, progress=False)


def test_a_device_this_machine_lacks_is_one_line(checkpoint, tmp_path, capsys):
    """Issue 17 #11: --device cuda without a GPU (or --device gpu) ended in a traceback."""
    base = ["--checkpoint", str(checkpoint), "--images", str(IMAGES), "--masks", str(MASKS),
            "--out", str(tmp_path / "out"), "--lpips", "off", "--no-fid"]
    assert evaluate_command.main([*base, "--device", "gpu"]) == 2
    assert "--device: got 'gpu', expected a device name; available here: cpu" in one_line_error(capsys)
    assert evaluate_command.main([*base, "--device", "cuda:99"]) == 2
    assert "expected a device this machine has" in one_line_error(capsys)


def test_a_run_folder_as_checkpoint_says_what_to_pass(tmp_path, capsys):
    """Sibling of issue 17 #14 in evaluate: a run folder was "no such file"."""
    assert evaluate_command.main(["--checkpoint", str(tmp_path), "--images", str(IMAGES), "--masks", str(MASKS),
                    "--out", str(tmp_path / "out")]) == 2
    assert "expected a checkpoint file, not a folder" in one_line_error(capsys)


def test_bench_quick_mode_times_every_method_and_writes_its_table(tmp_path):

    bench = load_script("bench/evaluate.py", "bench_evaluate")
    output = tmp_path / "benchmarks.md"
    assert bench.main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    for method in [*BASELINES, "BIDS-Net (Telea fill + residual head, bidsnet_small.pt)", "metrics", "cache read"]:
        assert f"| {method} | " in text, method
    assert "Estimated `bidsnet evaluate` on 30 photos x 110 shipped masks (3,300 pairs)" in text
