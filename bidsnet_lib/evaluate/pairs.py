"""A blind pair test by eye (issue 29): two methods' fills of the same photos side by side, sides
drawn at random, a person picks the one that looks more like an untouched photograph, and the picks
are scored with an interval (issue 29: for notebook 07's "you be the judge" exercise).

:func:`make_pairs` writes ``pair_000.png`` ... (left | right, no names) and the hidden key
``.key.csv`` (which method is on which side) into a folder; the picks go into ``picks.csv``
(columns ``pair, pick, judge``; pick = ``left`` or ``right``), by hand, by :func:`record_pick` or
by the notebook widget :func:`judge_pairs`; :func:`score_pairs` reads both (:func:`read_key` the
key alone) and gives each method's share of the judgements with a 95 % Wilson score interval
(Wilson, 1927). Judgements of one pair
by several people are not independent; the interval treats them as if they were, so with several
judges a pair also reports its majority (``PairScore.pair_wins``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bidsnet_lib.baselines import BASELINES, make_baseline
from bidsnet_lib.bootstrap import CONFIDENCE
from bidsnet_lib.evaluate.evaluation import as_method
from bidsnet_lib.evaluate.inputs import fit_mask, load_photos
from bidsnet_lib.model import composite
from bidsnet_lib.plumbing import (
    DEFAULT_WORK_SIZE,
    atomic_write,
    check_fraction,
    check_int,
    got_expected,
    save_image,
)

KEY_FILE = ".key.csv"  # which method is on which side: not to be opened before judging
PICKS_FILE = "picks.csv"
SIDES = ("left", "right")
_KEY_COLUMNS = ("pair", "file", "photo", "mask", "left", "right", "first", "second")
_PICK_COLUMNS = ("pair", "pick", "judge")


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``successes / n`` (scipy's
    ``binomtest(...).proportion_ci(method="wilson")``); (nan, nan) for n = 0."""
    from scipy.stats import binomtest

    n = check_int("n", n, 0)
    successes = check_int("successes", successes, 0, n)
    confidence = check_fraction("confidence", confidence, high_open=True)
    if n == 0:
        return math.nan, math.nan
    interval = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> Path:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, text.getvalue())


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or not set(columns) <= set(reader.fieldnames):
            raise ValueError(got_expected(path.name, reader.fieldnames, f"a CSV with the columns {list(columns)}"))
        return list(reader)


def make_pairs(folder, photos, masks: Sequence[np.ndarray], methods: Mapping, *, seed: int = 0,
               gap: int = 8, size: int | None = DEFAULT_WORK_SIZE) -> list[Path]:
    """One pair per photo: a mask drawn for it (seeded), both methods' composited fills side by
    side (``gap`` white pixels between), the sides drawn at random; writes ``pair_NNN.png`` and
    the key ``.key.csv`` into ``folder`` (which must hold no pairs yet). Returns the pair files.

    ``photos``: a folder of photos (read by :func:`load_photos` at ``size``: centre squares of
    ``size`` px, or each photo's own size for None), or RGB uint8 (H, W, 3) arrays by name; ``masks``:
    (H, W) 0/1 arrays, resized to each photo; ``methods``: exactly two, ``{name: method}``, each a
    baseline name (``"telea"``, ``"patchmatch"`` ...), an ``Inpainter``, a model or a callable
    ``(image, mask) -> image`` on tensors.
    """
    if isinstance(photos, str | os.PathLike):
        photos = load_photos(photos, size)
    if not isinstance(photos, Mapping) or not photos:
        raise ValueError(f"photos: got {type(photos).__name__}, expected a photo folder or a non-empty dict "
                         "{name: RGB uint8 (H, W, 3)}")
    for name, im in photos.items():
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(got_expected(f"photos[{name!r}]", getattr(im, "shape", type(im).__name__),
                                          "an RGB uint8 array (H, W, 3)"))
    listed = list(masks) if isinstance(masks, Sequence) and not isinstance(masks, str) else []
    if not listed or not all(isinstance(m, np.ndarray) and m.ndim == 2 and (m != 0).any() for m in listed):
        raise ValueError(f"masks: got {type(masks).__name__} of {len(listed)}, expected a non-empty list of "
                         "(H, W) 0/1 masks, each with a hole")
    masks = listed
    if not isinstance(methods, Mapping) or len(methods) != 2:
        got = f"{len(methods)} methods" if isinstance(methods, Mapping) else type(methods).__name__
        raise ValueError(f"methods: got {got}, expected a dict of exactly two {{name: method}}")
    check_int("seed", seed, 0)
    check_int("gap", gap, 0)
    folder = Path(folder)
    if (folder / KEY_FILE).exists():
        raise ValueError(got_expected("folder", str(folder), f"a folder without pairs ({KEY_FILE} is there); "
                                      "pick a new folder, or delete the old pairs and picks"))
    unknown = [m for m in methods.values() if isinstance(m, str) and m not in BASELINES]
    if unknown:
        raise ValueError(got_expected("methods", unknown[0], f"a baseline's name from {list(BASELINES)}, "
                                      "an Inpainter, a model or a callable (image, mask) -> image"))
    callables = {name: make_baseline(m) if isinstance(m, str) and m in BASELINES else as_method(m, name)
                 for name, m in methods.items()}
    names = list(callables)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, files = [], []
    for index, (photo, rgb) in enumerate(photos.items()):
        m = int(rng.integers(len(masks)))
        swap = bool(rng.integers(2))
        hole = fit_mask((masks[m] != 0).astype(np.uint8), rgb.shape[:2])
        target = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W); rgb may be read-only
        mask = torch.from_numpy(hole)[None, None].float()  # (1, 1, H, W)
        fills = {}
        for name, method in callables.items():
            out = composite(method(target, mask).detach().float().clamp(0, 1), target, mask)
            fills[name] = (out[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
        left, right = (names[1], names[0]) if swap else (names[0], names[1])
        spacer = np.full((rgb.shape[0], gap, 3), 255, dtype=np.uint8)
        file = f"pair_{index:03d}.png"
        files.append(save_image(np.concatenate([fills[left], spacer, fills[right]], axis=1), folder / file))
        rows.append({"pair": index, "file": file, "photo": photo, "mask": m, "left": left, "right": right,
                     "first": names[0], "second": names[1]})
    _write_csv(folder / KEY_FILE, _KEY_COLUMNS, rows)
    return files


def _pair_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("pair_*.png"))
    if not files:
        raise ValueError(got_expected("folder", str(folder), "a folder of pairs made by make_pairs"))
    return files


def read_key(folder) -> list[dict]:
    """The hidden key of ``folder``, to be read after judging: one row per pair, ``pair`` (int),
    ``file``, ``photo``, ``mask`` (int, the index into make_pairs' masks), which method is on the
    ``left`` and the ``right``, and the two methods in make_pairs' order, ``first`` and ``second``."""
    folder = Path(folder)
    if not (folder / KEY_FILE).is_file():
        raise ValueError(got_expected("folder", str(folder), f"a folder of pairs made by make_pairs (with {KEY_FILE})"))
    return [{**row, "pair": int(row["pair"]), "mask": int(row["mask"])} for row in _read_csv(folder / KEY_FILE, _KEY_COLUMNS)]


def read_picks(folder) -> list[dict]:
    """The picks recorded in ``folder/picks.csv`` (none yet: an empty list)."""
    path = Path(folder) / PICKS_FILE
    return _read_csv(path, _PICK_COLUMNS) if path.is_file() else []


def record_pick(folder, pair: int, pick: str, judge: str = "") -> Path:
    """Add one judgement to ``folder/picks.csv``: pair number ``pair`` (as in ``pair_NNN.png``),
    ``pick`` = "left" or "right", by ``judge``; a judge's second pick of a pair replaces the first."""
    folder = Path(folder)
    count = len(_pair_files(folder))
    if isinstance(pair, bool) or not isinstance(pair, int | np.integer) or not 0 <= pair < count:
        raise ValueError(got_expected("pair", pair, f"an int from 0 to {count - 1}"))
    if pick not in SIDES:
        raise ValueError(got_expected("pick", pick, "'left' or 'right'"))
    if not isinstance(judge, str) or "\n" in judge:
        raise ValueError(got_expected("judge", judge, "a one-line name (str)"))
    rows = [r for r in read_picks(folder) if not (int(r["pair"]) == pair and r["judge"] == judge)]
    rows.append({"pair": int(pair), "pick": pick, "judge": judge})
    return _write_csv(folder / PICKS_FILE, _PICK_COLUMNS, rows)


@dataclass
class PairScore:
    """How often each method was picked: ``wins[name]`` of ``n`` judgements, the first method's
    share with its Wilson interval, and each method's pairs won by majority (ties count for none)."""

    methods: tuple[str, str]
    wins: dict[str, int]
    n: int
    share: float  # of methods[0]
    ci_low: float
    ci_high: float
    pair_wins: dict[str, int]
    n_pairs: int

    def __str__(self) -> str:
        a, b = self.methods
        if not self.n:
            return f"{a} against {b}: no judgements yet"
        return (f"{a} preferred to {b} in {self.wins[a]} of {self.n} judgements ({self.share:.0%}, "
                f"{100 * CONFIDENCE:g} % Wilson interval {self.ci_low:.0%}–{self.ci_high:.0%}); "
                f"pairs won by majority: {self.pair_wins[a]} to {self.pair_wins[b]} of {self.n_pairs}")


def score_pairs(folder) -> PairScore:
    """Unblind: the picks of ``folder/picks.csv`` against the hidden key, as a :class:`PairScore`."""
    key = {r["pair"]: r for r in read_key(folder)}
    methods = (key[min(key)]["first"], key[min(key)]["second"])  # the order given to make_pairs
    wins, per_pair = dict.fromkeys(methods, 0), {}
    for line, row in enumerate(read_picks(folder), start=2):  # line 1 is the header
        pair = int(row["pair"]) if row["pair"].strip().isdigit() else -1
        if pair not in key or row["pick"] not in SIDES:
            raise ValueError(got_expected(f"{PICKS_FILE} row {line}", f"{row['pair']},{row['pick']}",
                                          f"a pair from 0 to {max(key)} and a pick 'left' or 'right'"))
        chosen = key[pair][row["pick"]]
        wins[chosen] += 1
        per_pair.setdefault(pair, []).append(chosen)
    n = sum(wins.values())
    low, high = wilson_interval(wins[methods[0]], n)
    pair_wins = dict.fromkeys(methods, 0)
    for votes in per_pair.values():
        a = votes.count(methods[0])
        if 2 * a != len(votes):
            pair_wins[methods[0] if 2 * a > len(votes) else methods[1]] += 1
    return PairScore(methods, wins, n, wins[methods[0]] / n if n else math.nan, low, high, pair_wins, len(key))


def judge_pairs(folder, judge: str = ""):
    """A notebook widget that shows each pair of ``folder`` in turn with a "left" and a "right"
    button; every click is recorded (:func:`record_pick`) and the next pair shown."""
    import ipywidgets as widgets

    folder = Path(folder)
    files = _pair_files(folder)
    done = {int(r["pair"]) for r in read_picks(folder) if r["judge"] == judge}
    state = {"i": next((i for i in range(len(files)) if i not in done), len(files))}
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    caption = widgets.Label()
    buttons = [widgets.Button(description=f"{side} looks real") for side in SIDES]

    def show():
        i = state["i"]
        if i >= len(files):
            caption.value = f"all {len(files)} pairs judged: score them with score_pairs({str(folder)!r})"
            for b in buttons:
                b.disabled = True
            return
        image.value = files[i].read_bytes()
        caption.value = f"pair {i + 1} of {len(files)}: which looks more like an untouched photograph?"

    def click(side):
        def handler(_):
            if state["i"] < len(files):
                record_pick(folder, state["i"], side, judge)
                state["i"] += 1
                show()
        return handler

    for side, button in zip(SIDES, buttons, strict=True):
        button.on_click(click(side))
    show()
    box = widgets.VBox([caption, image, widgets.HBox(buttons)])
    box.buttons = dict(zip(SIDES, buttons, strict=True))  # for tests and scripted clicks
    return box
