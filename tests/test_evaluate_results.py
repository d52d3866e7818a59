"""bidsnet_lib.evaluate (results): EvalResult's look-ups, comparisons and target groups, its CSV,
JSON and Markdown renderings, and write_outputs, on a result made up by hand (no evaluation run)."""

import csv
import json
import math

import cv2
import numpy as np
import pytest

from bidsnet_lib.evaluate import (
    COMPARED,
    COMPARISON_COLUMNS,
    CSV_COLUMNS,
    HIGHER_IS_BETTER,
    METRICS,
    PER_PHOTO,
    PER_PHOTO_COLUMNS,
    REFERENCE,
    EvalResult,
    Example,
    write_outputs,
)

BASELINE, MODEL = "Telea (r=3)", "model"
GROUPS = (("Set I", "10-20", 0.15), ("Set II", "thick", 0.3))
NOTES = {"psnr": "PSNR on 8 bits", "ssim": "SSIM (Gaussian window)", "lpips": "skipped: --lpips off",
         "fid": "skipped: --no-fid", "colour": "mean colour distance to the ring"}


def row(set_name, group, ratio, method, metric, value, spread=1.0):
    skipped = NOTES[metric].startswith("skipped")
    value = math.nan if skipped else value
    low, high = (math.nan, math.nan) if skipped or metric == "fid" else (value - spread, value + spread)
    return {"set": set_name, "group": group, "hole_ratio": ratio, "method": method, "metric": metric,
            "value": value, "ci_low": low, "ci_high": high, "std": 0.5, "n": 4, "n_photos": 2,
            "note": NOTES[metric] if skipped else ""}


def made_up_result(examples=()) -> EvalResult:
    """Two groups, Telea and a model; the model beats Telea on both metrics in Set I 10-20 only."""
    rows, comparisons = [], []
    for g, (set_name, group, ratio) in enumerate(GROUPS):
        for m, method in enumerate((BASELINE, MODEL)):
            for metric in METRICS:
                rows.append(row(set_name, group, ratio, method, metric, 20.0 + m - g if metric == "psnr"
                                else 0.5 + m / 10 if metric == "ssim" else 30.0 - m))
        rows.append(row(set_name, group, ratio, REFERENCE, "colour", 25.0 + g))
        for metric in ("psnr", "ssim"):
            beats = g == 0 or metric == "psnr"
            comparisons.append({"set": set_name, "group": group, "model": MODEL, "baseline": BASELINE,
                                "metric": metric, "diff": 1.0, "ci_low": 0.5 if beats else -0.5, "ci_high": 1.5,
                                "wins": 1.0 if beats else 0.5, "beats": beats, "best": True, "n_photos": 2})
    per_photo = [{"set": "Set I", "group": "10-20", "photo": "a", "method": MODEL, "metric": "psnr",
                  "value": math.inf, "n_masks": 2}]
    return EvalResult(rows=rows, methods=[BASELINE, MODEL], metric_notes=dict(NOTES), protocol="Made up.",
                      examples=list(examples), baselines=[BASELINE], per_photo=per_photo, comparisons=comparisons,
                      seconds={BASELINE: 0.01, MODEL: 0.25}, bootstrap={"seed": 0, "n_resamples": 100})


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------ the constants
def test_every_metric_has_a_header_a_direction_and_the_column_lists_their_fields():
    assert set(HIGHER_IS_BETTER) == set(METRICS)
    assert all(METRICS[m].endswith("↑" if HIGHER_IS_BETTER[m] else "↓") for m in METRICS)
    assert set(COMPARED) <= set(PER_PHOTO) <= set(METRICS) and "fid" not in PER_PHOTO  # FID: one per set
    assert set(CSV_COLUMNS) == set(row("Set I", "g", 0.1, "m", "psnr", 1.0))
    assert {"diff", "ci_low", "ci_high", "wins", "beats", "best"} <= set(COMPARISON_COLUMNS)
    assert {"photo", "n_masks"} <= set(PER_PHOTO_COLUMNS)


# ------------------------------------------------------------------------------ look-ups
def test_cells_are_found_by_group_name_or_label():
    result = made_up_result()
    assert result.value("10-20", MODEL, "psnr") == 21.0 == result.value("Set I 10-20", MODEL, "psnr")
    assert result.interval("thick", BASELINE, "psnr") == (18.0, 20.0)
    assert all(math.isnan(v) for v in result.interval("thick", BASELINE, "fid"))
    assert result.comparison("Set II thick", MODEL, BASELINE, "ssim")["beats"] is False
    with pytest.raises(KeyError, match="no row for group='Set II 10-20', method='model', metric='psnr'"):
        result.value("Set II 10-20", MODEL, "psnr")
    with pytest.raises(KeyError, match="no comparison for group='thick', model='Telea .*', baseline='model'"):
        result.comparison("thick", BASELINE, MODEL, "psnr")


def test_groups_models_and_computed_metrics():
    result = made_up_result()
    assert result.groups == [("Set I", "10-20", 0.15, 4), ("Set II", "thick", 0.3, 4)]
    assert result.models == [MODEL]
    assert result.computed_metrics == ["psnr", "ssim", "colour"]


def test_target_groups_need_every_metric_against_every_baseline():
    result = made_up_result()
    assert result.target_groups(MODEL) == ["Set I 10-20"]
    assert result.target_groups(MODEL, metrics=("psnr",)) == ["Set I 10-20", "Set II thick"]
    assert result.target_groups(MODEL, metrics=("lpips",)) == []  # no such comparison: no target met
    assert result.target_groups(BASELINE) == []


# ------------------------------------------------------------------------------ renderings
def test_csv_files_leave_skipped_values_empty_and_keep_floats_exact(tmp_path):
    result = made_up_result()
    path = result.write_csv(tmp_path / "results.csv")
    rows = read_rows(path)
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(result.rows)
    fid = next(r for r in rows if r["metric"] == "fid")
    assert fid["value"] == fid["ci_low"] == "" and fid["note"] == "skipped: --no-fid"
    assert rows[0]["hole_ratio"] == "0.15" and rows[0]["value"] == "20.0"
    per_photo = read_rows(result.write_per_photo_csv(tmp_path / "per_photo.csv"))
    assert tuple(per_photo[0]) == PER_PHOTO_COLUMNS and per_photo[0]["value"] == "inf"


def test_json_is_strict_with_nan_as_null_and_infinities_as_strings(tmp_path):
    result = made_up_result()
    result.seconds["slow"] = -math.inf
    data = result.to_json()
    json.dumps(data, allow_nan=False)  # raises on any NaN or infinity left
    assert data["format"] == "bidsnet-evaluation" and data["protocol"] == "Made up."
    assert data["bootstrap"] == {"method": "percentile", "over": "photos", "confidence": 0.95, "seed": 0,
                                 "n_resamples": 100}
    assert data["per_photo"][0]["value"] == "inf" and data["seconds_per_image"]["slow"] == "-inf"
    fid = next(r for r in data["rows"] if r["metric"] == "fid")
    assert fid["value"] is None and fid["ci_low"] is None
    path = result.write_json(tmp_path / "results.json")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))["methods"] == [BASELINE, MODEL]
    assert math.isnan(next(r for r in result.rows if r["metric"] == "fid")["value"])  # the result is unchanged


def test_markdown_states_values_intervals_skips_and_the_comparison():
    table = made_up_result().markdown()
    lines = table.splitlines()
    assert lines[0].endswith("Made up.") and "| PSNR (dB) ↑ |" in lines[2] and lines[2].endswith("| s / image |")
    model_row = next(x for x in lines if x.startswith("| Set I | 10-20 | 15.0 | 2 × 2 | model |"))
    assert "21.00 [20.00, 22.00]" in model_row and model_row.count("skipped") == 2
    assert model_row.endswith("| 0.250 |") and "0.6000 [-0.4000, 1.6000]" in model_row
    assert "- LPIPS: skipped: --lpips off" in table
    assert "- Hole colour error: mean colour distance to the ring; the original photos themselves score " \
           "25.0–26.0 over the groups" in table
    assert "**model minus each baseline**" in table
    telea = next(x for x in lines if x.startswith("| Set II | thick | Telea (r=3) |"))
    assert "+1.00 [+0.50, +1.50] ✓ † | 2/2" in telea and "+1.0000 [-0.5000, +1.5000] † | 1/2" in telea
    assert "with both intervals above zero in 1 of 2 groups: Set I 10-20." in table


def test_markdown_without_baselines_has_no_comparison():
    result = made_up_result()
    result.baselines, result.comparisons = [], []
    assert "minus each baseline" not in result.markdown() and result.models == [BASELINE, MODEL]


def test_write_outputs_writes_every_file_and_both_pictures(tmp_path):
    target = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 1
    examples = [Example(group, "a", "m.png", target, mask, {BASELINE: target, MODEL: target})
                for _, group, _ in GROUPS]
    result = made_up_result(examples)
    paths = write_outputs(result, tmp_path / "out")
    assert {k: p.name for k, p in paths.items()} == {
        "csv": "results.csv", "markdown": "results.md", "json": "results.json", "per_photo": "per_photo.csv",
        "figure": "metrics_vs_hole_ratio.png", "examples": "examples.png"}
    assert (tmp_path / "out" / "results.md").read_text() == result.markdown() + "\n"
    figure, grid = (cv2.imread(str(paths[k])) for k in ("figure", "examples"))
    assert figure.shape[1] > figure.shape[0]  # a panel per computed metric, side by side
    assert grid.shape[0] > grid.shape[1] / 5 * 2 * 0.8  # two rows (groups) of five columns
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
