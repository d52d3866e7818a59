"""bidsnet_lib.evaluate's blind pair kit: pairs with a hidden key, picks, the score and its interval."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bidsnet_lib import evaluate as ev
from bidsnet_lib.baselines import make_baseline


@pytest.fixture(scope="module")
def photos():
    rng = np.random.default_rng(0)
    return {f"photo{i}": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(8)}


@pytest.fixture(scope="module")
def masks():
    a, b = np.zeros((40, 48), np.uint8), np.zeros((20, 24), np.uint8)
    a[8:30, 10:30] = 1
    b[2:12, 12:20] = 1  # resized to each photo
    return [a, b]


def grey(image, mask):
    return torch.full_like(image, 0.5)


@pytest.fixture
def kit(tmp_path, photos, masks):
    folder = tmp_path / "pairs"
    files = ev.make_pairs(folder, photos, masks, {"grey": grey, "Telea": "telea"}, seed=3, gap=4)
    return folder, files


def test_pairs_show_both_fills_on_random_sides_with_a_hidden_key(kit, photos, masks):
    folder, files = kit
    assert [f.name for f in files] == [f"pair_{i:03d}.png" for i in range(8)]
    assert sorted(p.name for p in folder.iterdir()) == [".key.csv", *(f.name for f in files)]
    key = ev.read_key(folder)
    assert [r["photo"] for r in key] == list(photos)
    assert [r["pair"] for r in key] == list(range(8)) and {r["mask"] for r in key} <= {0, 1}  # ints, not text
    assert {r["left"] for r in key} == {"grey", "Telea"}  # both sides used across 8 pairs
    assert all({r["left"], r["right"]} == {"grey", "Telea"} and (r["first"], r["second"]) == ("grey", "Telea")
               for r in key)
    telea = make_baseline("telea")
    for row, file in zip(key, files, strict=True):
        image = np.asarray(Image.open(file))
        assert image.shape == (40, 2 * 48 + 4, 3) and (image[:, 48:52] == 255).all()
        hole = ev.fit_mask(masks[row["mask"]], (40, 48))
        sides = {row["left"]: image[:, :48], row["right"]: image[:, 52:]}
        truth = photos[row["photo"]]
        assert (sides["grey"][hole == 1] == 128).all() and (sides["grey"][hole == 0] == truth[hole == 0]).all()
        assert np.array_equal(sides["Telea"], telea.fill(truth, hole))


def test_same_seed_same_pairs_other_seed_other_sides(tmp_path, photos, masks, kit):
    folder, files = kit
    again = ev.make_pairs(tmp_path / "again", photos, masks, {"grey": grey, "Telea": "telea"}, seed=3, gap=4)
    assert ev.read_key(tmp_path / "again") == ev.read_key(folder)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(files, again, strict=True))
    ev.make_pairs(tmp_path / "other", photos, masks, {"grey": grey, "Telea": "telea"}, seed=4)
    assert [r["left"] for r in ev.read_key(tmp_path / "other")] != [r["left"] for r in ev.read_key(folder)]


def test_picks_are_scored_against_the_key(kit):
    folder, _ = kit
    key = ev.read_key(folder)
    assert str(ev.score_pairs(folder)) == "grey against Telea: no judgements yet"
    for row in key:  # judge "a" always picks Telea; judge "b" picks grey on the first two pairs
        ev.record_pick(folder, row["pair"], "left" if row["left"] == "Telea" else "right", judge="a")
        pick = "left" if (row["left"] == "grey") == (row["pair"] < 2) else "right"
        ev.record_pick(folder, row["pair"], pick, judge="b")
    ev.record_pick(folder, 0, "left" if key[0]["left"] == "Telea" else "right", judge="a")  # replaces, not adds
    assert len(ev.read_picks(folder)) == 16
    score = ev.score_pairs(folder)
    assert score.methods == ("grey", "Telea") and score.n == 16
    assert score.wins == {"grey": 2, "Telea": 14} and score.share == 2 / 16
    assert (score.ci_low, score.ci_high) == ev.wilson_interval(2, 16)
    assert score.pair_wins == {"grey": 0, "Telea": 6} and score.n_pairs == 8  # pairs 0 and 1 tie 1-1
    assert str(score).startswith("grey preferred to Telea in 2 of 16 judgements (12%, 95 % Wilson interval")


def test_wilson_interval_solves_its_defining_equation():
    z = 1.959963984540054
    for k, n in ((38, 45), (1, 45), (0, 10), (10, 10), (7, 15)):
        low, high = ev.wilson_interval(k, n)
        p = k / n
        assert 0 <= low <= p <= high <= 1
        for bound in (low, high):
            if 0 < bound < 1:  # the bounds are where |p - bound| = z * sqrt(bound (1 - bound) / n)
                assert abs(p - bound) == pytest.approx(z * math.sqrt(bound * (1 - bound) / n))
    assert ev.wilson_interval(38, 45) == pytest.approx((0.7122, 0.9226), abs=1e-4)
    assert all(math.isnan(v) for v in ev.wilson_interval(0, 0))
    low90, high90 = ev.wilson_interval(38, 45, confidence=0.9)
    assert ev.wilson_interval(38, 45)[0] < low90 < high90 < ev.wilson_interval(38, 45)[1]
    with pytest.raises(ValueError, match="successes: got 46, expected an int from 0 to 45"):
        ev.wilson_interval(46, 45)
    with pytest.raises(ValueError, match="n: got -1, expected an int >= 0"):
        ev.wilson_interval(0, -1)
    with pytest.raises(ValueError, match=r"confidence: got 1.0, expected a number in \(0.0, 1.0\)"):
        ev.wilson_interval(3, 5, confidence=1.0)


def test_the_widget_records_a_click_and_shows_the_next_pair(kit):
    folder, files = kit
    box = ev.judge_pairs(folder, judge="me")
    caption, image = box.children[0], box.children[1]
    assert caption.value.startswith("pair 1 of 8") and image.value == files[0].read_bytes()
    box.buttons["right"].click()
    box.buttons["left"].click()
    assert caption.value.startswith("pair 3 of 8") and image.value == files[2].read_bytes()
    assert ev.read_picks(folder) == [{"pair": "0", "pick": "right", "judge": "me"},
                                     {"pair": "1", "pick": "left", "judge": "me"}]
    again = ev.judge_pairs(folder, judge="me")  # resumes where the judge stopped
    assert again.children[0].value.startswith("pair 3 of 8")
    for _ in range(6):
        again.buttons["left"].click()
    assert again.children[0].value.startswith("all 8 pairs judged") and again.buttons["left"].disabled
    assert ev.score_pairs(folder).n == 8


def test_pairs_of_a_photo_folder(tmp_path, masks):
    source = tmp_path / "photos"
    source.mkdir()
    rng = np.random.default_rng(1)
    for name in ("b", "a"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(source / f"{name}.png")
    files = ev.make_pairs(tmp_path / "pairs", source, masks, {"grey": grey, "Telea": "telea"}, size=40)
    assert [r["photo"] for r in ev.read_key(tmp_path / "pairs")] == ["a", "b"]
    assert all(np.asarray(Image.open(f)).shape == (40, 2 * 40 + 8, 3) for f in files)
    ev.make_pairs(tmp_path / "native", source, masks, {"grey": grey, "Telea": "telea"}, size=None)
    assert np.asarray(Image.open(tmp_path / "native" / "pair_000.png")).shape == (50, 2 * 70 + 8, 3)
    with pytest.raises(ValueError, match="images: no such folder"):
        ev.make_pairs(tmp_path / "x", tmp_path / "missing", masks, {"grey": grey, "Telea": "telea"})


def test_bad_inputs_are_refused(kit, tmp_path, photos, masks):
    folder, _ = kit
    methods = {"grey": grey, "Telea": "telea"}
    cases = [
        (lambda: ev.make_pairs(folder, photos, masks, methods), r"folder: got '.*pairs', expected a folder without pairs"),
        (lambda: ev.make_pairs(tmp_path / "x", photos, masks, {"grey": grey}),
         r"methods: got 1 methods, expected a dict of exactly two \{name: method\}"),
        (lambda: ev.make_pairs(tmp_path / "x", {}, masks, methods), "photos: got dict, expected a photo folder or a non-empty dict"),
        (lambda: ev.make_pairs(tmp_path / "x", {"a": np.zeros((8, 8))}, masks, methods),
         r"photos\['a'\]: got \(8, 8\), expected an RGB uint8 array"),
        (lambda: ev.make_pairs(tmp_path / "x", photos, [np.zeros((4, 4))], methods),
         "masks: got list of 1, expected a non-empty list of .* each with a hole"),
        (lambda: ev.make_pairs(tmp_path / "x", photos, masks, methods, seed=-1), "seed: got -1, expected an int >= 0"),
        (lambda: ev.make_pairs(tmp_path / "x", photos, masks, {"grey": grey, "T": "teela"}),
         r"methods: got 'teela', expected a baseline's name from \['telea'"),
        (lambda: ev.record_pick(folder, 8, "left"), "pair: got 8, expected an int from 0 to 7"),
        (lambda: ev.record_pick(folder, 0, "middle"), "pick: got 'middle', expected 'left' or 'right'"),
        (lambda: ev.record_pick(tmp_path, 0, "left"), "folder: got .*, expected a folder of pairs made by make_pairs"),
        (lambda: ev.score_pairs(tmp_path), "folder: got .*, expected a folder of pairs made by make_pairs"),
        (lambda: ev.read_key(tmp_path), "folder: got .*, expected a folder of pairs made by make_pairs"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    (folder / "picks.csv").write_text("pair,pick,judge\n0,up,me\n")
    with pytest.raises(ValueError, match="picks.csv row 2: got '0,up', expected a pair from 0 to 7 and a pick"):
        ev.score_pairs(folder)
