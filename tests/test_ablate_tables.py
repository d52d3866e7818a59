"""bidsnet_lib.ablate (tables): the verdict rule on made-up numbers, a report's JSON round trip."""


import dataclasses

import pytest

from bidsnet_lib.ablate import claim_verdict, compare, load_report, overall_verdict


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
