"""bench/time_to_quality.py: the quick run end to end through `bidsnet train`, and its pieces."""

import dataclasses
import json
import math

import pytest
import torch
from scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench/time_to_quality.py", "bench_time_to_quality")


def test_the_quick_run_trains_through_the_command_scores_milestones_and_keeps_them(bench, tmp_path):
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--out", str(tmp_path), "--recipes", "today"]) == 0
    finally:
        torch.set_num_threads(threads)
    results = json.loads((tmp_path / "results.json").read_text())
    run = results["recipes"]["today"]
    milestones = run["milestones"]
    assert len(milestones) == bench.MILESTONES
    steps = [m["step"] for m in milestones]
    assert steps == [run["steps"] // 10 * (i + 1) for i in range(10)]  # evenly over the run
    cpu = [m["cpu_minutes"] for m in milestones]
    assert all(a < b for a, b in zip(cpu, cpu[1:], strict=False)) and cpu[0] > 0
    assert cpu[-1] <= run["cpu_minutes_total"] + 1e-9  # a milestone's CPU never exceeds the run's
    # The budget bought the steps (start-up included), within what load may change of the rate.
    assert run["cpu_minutes_total"] < 2 * run["budget_cpu_minutes"]
    for scores in [m["scores"] for m in milestones] + [results["reference"]]:
        assert set(scores["groups"]) == set(bench.HEADLINE)
        assert all(math.isfinite(v) for v in scores["headline"].values())
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- bench/time_to_quality.py: begin -->" in doc and "CPU-min to reach the shipped model" in doc

    # Measured: a second call trains nothing and keeps the numbers.
    log = tmp_path / "runs" / "today" / "train.log"
    before = log.read_text()
    assert bench.main(["--quick", "--out", str(tmp_path), "--recipes", "today"]) == 0
    assert log.read_text() == before
    assert json.loads((tmp_path / "results.json").read_text())["recipes"]["today"]["milestones"] == milestones


def test_a_recipe_whose_flags_and_config_disagree_is_refused(bench, tmp_path):
    from bidsnet_lib.train import TrainConfig

    today = bench.RECIPES["today"]
    (tmp_path / "config.json").write_text(json.dumps(today.config().to_dict()))
    bench.check_config(today, tmp_path, {})  # the recipe's own config passes
    made = json.loads((tmp_path / "config.json").read_text())
    made["loss"]["ssim"] = 1.0  # what `--ssim 1.0` among the flags would have made
    (tmp_path / "config.json").write_text(json.dumps(made))
    with pytest.raises(ValueError, match=r"loss: flags give .*ssim=1\.0"):
        bench.check_config(today, tmp_path, {})
    assert TrainConfig.from_dict(made).loss.ssim == 1.0


def test_every_recipes_flags_make_its_config(bench):
    from bidsnet_lib.commands.train import build_parser, config_from_args
    from bidsnet_lib.train import TrainConfig

    for name, recipe in bench.RECIPES.items():
        args = build_parser().parse_args([*recipe.flags, "--out", "unused"])
        made = config_from_args(args, TrainConfig.small())
        assert dataclasses.replace(made, processes=1) == recipe.config(), name
    # "today", the shipped model's last run (constant 2e-4, 128 px throughout), is the default.
    assert bench.RECIPES["today"].config() == TrainConfig.small()
    fast = bench.RECIPES["fast"].config()
    assert (fast.lr_g, fast.lr_schedule, fast.warmup_steps, fast.stages) == (8e-4, "cosine", 100, ((64, 0.7),))
    today = bench.RECIPES["today"].config()
    assert (today.lr_g, today.lr_schedule, today.warmup_steps, today.stages, today.size) == (2e-4, "constant", 0, (), 128)
    assert (today.model.input_fill, today.model.output, today.loss.adversarial, today.loss.ssim) == (
        "telea", "residual", 0.0, 2.0)


def test_the_calibration_line_and_the_step_count(bench):
    rows = [(10, 30.0), (20, 42.0), (30, 52.0), (40, 62.0)]  # the first point still warms up
    rate = bench.fit_rate(rows)
    assert rate["cpu_s_per_step"] == pytest.approx(1.0) and rate["startup_cpu_s"] == pytest.approx(22.0)
    assert bench.steps_for_budget(60, rate) == 3570  # (3600 - 22) / 1.0, a multiple of 10
    assert bench.steps_for_budget(0.1, rate) == bench.MILESTONES  # never fewer than the milestones
    with pytest.raises(ValueError, match="rows: got 2 logged steps"):
        bench.fit_rate(rows[:2])


def test_the_cpu_of_a_milestone_is_read_between_samples(bench):
    samples = [(100.0, 0.0), (110.0, 20.0), (120.0, 30.0)]
    assert bench.cpu_at(samples, 105.0) == pytest.approx(10.0)
    assert bench.cpu_at(samples, 130.0) == pytest.approx(30.0)


def _milestones(points):
    return [{"step": 10 * (i + 1), "cpu_minutes": 6.0 * (i + 1), "wall_minutes": 4.0 * (i + 1),
             "scores": {"headline": {"psnr": p, "ssim": s}, "groups": {}}} for i, (p, s) in enumerate(points)]


def test_reached_needs_both_differences_and_the_table_says_so(bench):
    reference = {"psnr": 0.5, "ssim": 0.002}
    slow = _milestones([(0.6, 0.001), (0.4, 0.003), (0.5, 0.002)])
    assert bench.cpu_minutes_to_reach(slow, reference) == 18.0  # the first with both at least the reference's
    assert bench.cpu_minutes_to_reach(slow[:2], reference) is None
    results = {"reference": {"headline": reference},
               "recipes": {"a": {"processes": 2, "milestones": slow}, "b": {"processes": 2, "milestones": slow[:2]}}}
    lines = bench.curve_table(results)
    assert lines[2] == "| 1 | 6.0 (8.0) | +0.600 | +0.0010 | 6.0 (8.0) | +0.600 | +0.0010 |"
    assert lines[4] == "| 3 | 18.0 (24.0) | +0.500 | +0.0020 | | | |"  # b has no third milestone
    assert lines[-1] == "| CPU-min to reach the shipped model | 18.0 | | | not reached | | |"


def test_the_profile_splits_a_step_into_parts_that_add_up(bench):
    threads = torch.get_num_threads()
    try:
        profile = bench.profile_step(bench.RECIPES["today"], bench.TRAIN, bench.VAL, steps=1, warmup=1,
                                     changes=bench.QUICK_CHANGES)
    finally:
        torch.set_num_threads(threads)
    parts = {row["part"]: row["ms"] for row in profile["rows"]}
    assert parts["network forward"] > 0 and parts["network backward"] > 0
    assert parts["Telea pre-fill (x batch)"] > 0 and parts["photo decoding and cropping (x batch)"] > 0
    assert profile["total_ms"] == pytest.approx(sum(parts.values()))
    assert len(bench.profile_table(profile)) == len(parts) + 4
