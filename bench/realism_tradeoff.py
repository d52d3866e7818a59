"""Fidelity against realism (issue 29): one point per model and per classical method.

    python bench/realism_tradeoff.py --run "shipped (L1+SSIM)=results/shipped" \
        --run "adversarial 0.3, FM 3=results/real_a" --out docs/realism

Each ``--run LABEL=DIR`` names the output folder of one ``bidsnet evaluate --realism`` (its
``results.json``) of one checkpoint; the runs must share the photos, masks, protocol and baselines
(the baselines' rows of every run are compared, and a run whose baselines scored otherwise is
refused). A point is :func:`bidsnet_lib.evaluate.realism.tradeoff_points`'s: PSNR minus the best
baseline's in each group, detectability (C2ST AUC) and hole sharpness, each the mean over the
groups of issue 29's goal (Set I 30-40 to 50-60 %, Set II medium and thick) unless ``--groups``
says otherwise. Writes ``tradeoff.json`` (read by notebook 07), ``tradeoff.png`` and
``tradeoff.md`` into ``--out``, atomically.
"""

import argparse
import io
import json
import math
import sys
from pathlib import Path

from bidsnet_lib.evaluate import (
    TRADEOFF_FORMAT,
    load_tradeoff,
    plot_tradeoff,
    tradeoff_points,
)
from bidsnet_lib.plumbing import atomic_write

GOAL_GROUPS = (("Set I", "30-40"), ("Set I", "40-50"), ("Set I", "50-60"), ("Set II", "medium"), ("Set II", "thick"))


def read_run(spec: str) -> tuple[str, dict]:
    """(label, results.json data) of ``LABEL=DIR``."""
    label, sep, folder = spec.rpartition("=")
    if not sep or not label:
        raise ValueError(f"--run: got {spec!r}, expected LABEL=DIR (DIR: a `bidsnet evaluate --realism` --out)")
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"--run {spec}: no {path}; expected the --out folder of `bidsnet evaluate --realism`")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != "bidsnet-evaluation" or "realism" not in data:
        raise ValueError(f"--run {spec}: {path} holds no realism rows; expected `bidsnet evaluate --realism` output")
    return label, data


def same(a, b) -> bool:
    """Equal scores; results.json writes a metric that was not measured (NaN) as null."""
    if a is None or b is None:
        return a is b
    return isinstance(b, float | int) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def merge(runs: list[tuple[str, dict]]) -> tuple[list[dict], list[str]]:
    """The baselines' rows once (the same in every run, or refused) and each run's model rows
    under its label: (rows, baseline names)."""
    first_label, first = runs[0]
    baselines = list(first["baselines"])
    reference = {(r["set"], r["group"], r["method"], r["metric"]): r["value"]
                 for r in first["rows"] if r["method"] in baselines}
    rows = [r for r in first["rows"] if r["method"] in baselines]
    for label, data in runs:
        theirs = {(r["set"], r["group"], r["method"], r["metric"]): r["value"]
                  for r in data["rows"] if r["method"] in baselines}
        differ = sorted(k for k in reference if not same(reference[k], theirs.get(k, "missing")))
        if list(data["baselines"]) != baselines or differ:
            raise ValueError(f"--run {label}: its baselines ({data['baselines']}) scored otherwise than those of "
                             f"{first_label} (first differing: {differ[:3]}); expected runs on the same photos, "
                             f"masks and protocol")
        models = [m for m in data["methods"] if m not in baselines]
        if len(models) != 1:
            raise ValueError(f"--run {label}: {len(models)} models in it ({models}); expected one checkpoint a run")
        rows += [{**r, "method": label} for r in data["rows"] if r["method"] == models[0]]
    return rows, baselines


def markdown(points: list[dict], groups) -> str:
    names = ", ".join(f"{s} {g}" for s, g in groups)
    lines = [f"Means over {names} (`bench/realism_tradeoff.py`):", "",
             "| method | PSNR − best baseline (dB) ↑ | detectability (C2ST AUC) ↓ | hole sharpness (→ 1) |",
             "|---|---:|---:|---:|"]
    for p in points:
        name = p["method"] + (" (classical)" if p["baseline"] else "")
        lines.append(f"| {name} | {p['delta_psnr']:+.2f} | {p['detectability']:.3f} | {p['sharpness']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                   help="a label and a `bidsnet evaluate --realism` output folder; repeat, in plot order")
    p.add_argument("--groups", help="comma-separated SET/GROUP, e.g. 'Set I/30-40,Set II/thick' (default: the goal's)")
    p.add_argument("--out", required=True, help="folder for tradeoff.json, tradeoff.png, tradeoff.md")
    args = p.parse_args(argv)
    try:
        groups = GOAL_GROUPS if args.groups is None else [tuple(g.split("/", 1)) for g in args.groups.split(",")]
        runs = [read_run(spec) for spec in args.run]
        rows, baselines = merge(runs)
        points = tradeoff_points(rows, baselines, groups)
    except (OSError, ValueError, KeyError) as error:
        print(f"realism_tradeoff: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "tradeoff.json", check=load_tradeoff, content=json.dumps({
        "format": TRADEOFF_FORMAT, "groups": [list(g) for g in groups], "points": points,
        "runs": {label: spec.rpartition("=")[2] for (label, _), spec in zip(runs, args.run, strict=True)},
        "protocol": runs[0][1]["protocol"]}, indent=1) + "\n")
    figure = plot_tradeoff(points).figure
    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=110)
    atomic_write(out / "tradeoff.png", picture.getvalue())
    table = markdown(points, groups)
    atomic_write(out / "tradeoff.md", table)
    print(table)
    print(f"wrote {out / 'tradeoff.json'}, {out / 'tradeoff.png'}, {out / 'tradeoff.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
