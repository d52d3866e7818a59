"""bidsnet_lib.ablate (tables): the verdict rule on made-up numbers, a report's JSON round trip."""


import dataclasses

import pytest

from bidsnet_lib.ablate import (
    claim_verdict,
    compare,
    load_report,
    overall_verdict,
    photo_difference,
    photo_scores,
)


@pytest.mark.parametrize("values, winner_wins", [
    ({"paper": [10.0, 10.1], "b": [9.0, 9.1], "c": [8.0, 8.2]}, "reproduced"),
    ({"paper": [10.0, 10.1], "b": [11.0, 11.1], "c": [8.0, 8.2]}, "not reproduced"),
    ({"paper": [10.0, 10.1], "b": [9.95, 10.05], "c": [8.0, 8.2]}, "within noise"),
])
def test_verdict_on_synthetic_numbers(values, winner_wins):
    verdict, comparisons = claim_verdict(values, "paper", ["b", "c"])
    assert verdict == winner_wins
    assert comparisons["c"][0] == "better"  # c is far below in every case


def test_verdict_margin_lower_is_better_and_trade_off():
    # margin = 2 * max(std paper, std rival, pooled std); stds with ddof 1.
    outcome, delta, margin = compare([1.0, 3.0], [0.0, 0.0])
    assert (outcome, delta) == ("tie", 2.0) and margin == pytest.approx(2 * 2**0.5)
    assert compare([10.0, 10.0], [9.9, 9.9])[0] == "better"
    assert compare([10.0, 10.0], [9.9, 9.9], pooled_std=0.1)[0] == "tie"  # a lucky zero spread
    # A pooled spread: one noisy variant widens every margin of its study.
    values = {"paper": [10.0, 10.01], "b": [9.8, 9.81], "noisy": [5.0, 15.0]}
    assert claim_verdict(values, "paper", ["b"], ["noisy"])[0] == "within noise"
    # LPIPS: lower is better, so the paper's lower value wins.
    assert claim_verdict({"paper": [0.20, 0.21], "b": [0.30, 0.31]}, "paper", ["b"], higher_is_better=False)[0] \
        == "reproduced"
    # Trade-off (72 features): beat the cheaper, tie with the costlier is enough; losing to it is not.
    trade = {"72": [10.0, 10.1], "16": [9.0, 9.1], "256": [10.05, 10.1]}
    assert claim_verdict(trade, "72", ["16"], ["256"])[0] == "reproduced"
    trade["256"] = [11.0, 11.1]
    assert claim_verdict(trade, "72", ["16"], ["256"])[0] == "not reproduced"
    with pytest.raises(ValueError, match=">= 2 seeds"):
        compare([1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match=r"no scores for \['c'\]"):
        claim_verdict({"paper": [1.0, 2.0], "b": [1.0, 2.0]}, "paper", ["b", "c"])


def test_photo_difference_and_its_interval():
    paper = {"a": 11.0, "b": 12.0, "c": 13.5, "d": 10.2}
    rival = {"a": 10.0, "b": 11.2, "c": 12.0, "d": 10.0, "only_here": 0.0}  # photos in common only
    mean, low, high = photo_difference(paper, rival)
    assert mean == pytest.approx((1 + 0.8 + 1.5 + 0.2) / 4) and 0 < low < mean < high
    assert photo_difference(paper, rival, higher_is_better=False)[0] == pytest.approx(-mean)  # LPIPS: lower wins
    _, low, high = photo_difference({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 2.0, "b": 1.0, "c": 3.0})
    assert low < 0 < high
    with pytest.raises(ValueError, match="1 photo"):
        photo_difference({"a": 1.0}, {"a": 2.0, "b": 3.0})


def test_an_outcome_needs_the_photos_to_agree_with_the_seeds():
    values = {"paper": [10.0, 10.01], "b": [9.0, 9.01], "c": [11.0, 11.01]}
    # The seeds alone: paper beats b and loses to c.
    assert claim_verdict(values, "paper", ["b", "c"])[1]["b"][0] == "better"
    agree = {"b": (0.8, 1.2), "c": (-1.2, -0.8)}
    assert claim_verdict(values, "paper", ["b", "c"], intervals=agree)[0] == "not reproduced"
    # An interval over photos that holds zero makes either a tie: a few photos carried the mean.
    straddle = {"b": (-0.1, 2.0), "c": (-2.0, 0.1)}
    verdict, comparisons = claim_verdict(values, "paper", ["b", "c"], intervals=straddle)
    assert verdict == "within noise" and comparisons["b"][0] == comparisons["c"][0] == "tie"
    assert comparisons["b"][1] == pytest.approx(1.0)  # the delta is still the seeds' difference of means


def test_photo_scores_average_a_photos_groups():
    rows = [{"photo": "a", "metric": "psnr", "value": 20.0}, {"photo": "a", "metric": "psnr", "value": 22.0},
            {"photo": "b", "metric": "psnr", "value": 30.0}, {"photo": "a", "metric": "ssim", "value": 0.5}]
    assert photo_scores(rows, "psnr") == {"a": 21.0, "b": 30.0}


def test_report_shows_intervals_third_seed_flags_and_the_references_lead(made_up_fusion_report):
    table = made_up_fusion_report.markdown()
    # SFF is 1 dB below add on every photo: an interval wholly below zero, far beyond the margin.
    assert "- vs fusion=add (must win): PSNR Δ -1.00 [-1.00, -1.00] (margin 0.14): worse" in table
    assert "third seed" not in table
    assert "The paper's choice leads" not in table  # the made-up groups are not Set I's bins
    close = dataclasses.replace(made_up_fusion_report, records={
        name: [{**r, "rows": [{**row, "value": row["value"] + (0.9 if name == "fusion=sff" else 0)}
                              for row in r["rows"]]} for r in runs]
        for name, runs in made_up_fusion_report.records.items()})
    assert "- vs fusion=add (must win): PSNR Δ -0.10" in close.markdown() and "a third seed" in close.markdown()
    telea = [{**row, "group": ("30-40", "40-50", "50-60")[i % 3]} for i, row in enumerate(
        r for r in made_up_fusion_report.baselines if r["group"] in ("g0", "g1", "g2"))]
    winners = {name: [{**r, "rows": [{**row, "group": {"g0": "30-40", "g1": "40-50", "g2": "50-60"}.get(row["group"], row["group"])}
                                     for row in r["rows"]]} for r in runs]
               for name, runs in made_up_fusion_report.records.items()}
    lead = dataclasses.replace(made_up_fusion_report, baselines=telea, records=winners)
    # SFF's psnr is 25 (+0.1 in seed 1) minus g/10 in each group, Telea's 24 minus g/10: +1.05 dB.
    assert lead.reference_lead() == pytest.approx(1.05)
    assert "leads the best classical baseline of each group by +1.05 dB" in lead.markdown()


def test_a_report_without_per_photo_scores_is_judged_on_the_seeds(made_up_fusion_report):
    old = dataclasses.replace(made_up_fusion_report, records={
        name: [{k: v for k, v in r.items() if k != "photos"} for r in runs]
        for name, runs in made_up_fusion_report.records.items()})
    assert old.differences("psnr") == {}
    assert old.verdicts() == made_up_fusion_report.verdicts()  # these made-up photos agree with the seeds
    assert "the seeds alone decide" in old.markdown()


def test_overall_verdict_over_metrics():
    assert overall_verdict({"psnr": "reproduced", "ssim": "reproduced"}) == "reproduced"
    assert overall_verdict({"psnr": "reproduced", "ssim": "within noise"}) == "within noise"
    assert overall_verdict({"psnr": "not reproduced", "ssim": "within noise"}) == "not reproduced"
    assert overall_verdict({"psnr": "not reproduced", "ssim": "reproduced"}) == "within noise"
    with pytest.raises(ValueError, match="per_metric"):
        overall_verdict({"psnr": "maybe"})


def test_report_json_round_trip_keeps_table_and_verdict(tmp_path, made_up_fusion_report):
    paths = made_up_fusion_report.write(tmp_path)
    assert sorted(paths) == ["csv", "groups", "json", "markdown", "plot"]
    loaded = load_report(paths["json"])
    assert loaded.markdown() == made_up_fusion_report.markdown()
    assert loaded.verdicts() == made_up_fusion_report.verdicts()
    # Made-up scores: each variant 1 dB above the previous, 0.07 dB seed spread: SFF, the first, loses.
    assert loaded.verdicts()[0] == "not reproduced"
    assert "fingerprint" not in paths["json"].read_text()  # machine paths stay out of published files


def test_load_report_names_what_a_damaged_file_lacks(tmp_path, made_up_fusion_report):
    import json

    path = made_up_fusion_report.write_data(tmp_path)["json"]
    whole = json.loads(path.read_text())
    for damage, match in ((lambda d: d.pop("records"), r"no \['records'\]"),
                          (lambda d: d["records"].pop("fusion=add"), r"no runs recorded for \['fusion=add'\]"),
                          (lambda d: d["settings"].update(epochs=3), "do not fit this version")):
        data = json.loads(json.dumps(whole))
        damage(data)
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=match):
            load_report(path)


def test_load_report_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json: no such file"):
        load_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "bidsnet-ablation-run"}')
    with pytest.raises(ValueError, match="expected 'bidsnet-ablation-study'"):
        load_report(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        load_report(bad)


def test_a_table_says_why_a_variant_is_not_in_it(made_up_fusion_report):
    """A quick run leaves out all but two variants by design; a full one lacks only variants added
    to the study after it ran."""
    report = dataclasses.replace(made_up_fusion_report, variants=made_up_fusion_report.variants[:2])
    assert report.settings.quick
    assert ("Not in this table: fusion=concat (quick mode runs the paper's choice and the first rival; "
            "without `--quick` every variant runs).") in report.markdown()
    full = dataclasses.replace(report, settings=dataclasses.replace(report.settings, quick=False))
    assert ("Not in this table: fusion=concat (added to the study after it was run; "
            "`bidsnet ablate --study fusion --docs` runs them).") in full.markdown()
    assert "Not in this table" not in made_up_fusion_report.markdown()
