"""What an evaluation gives back (:class:`EvalResult`): the rows, the intervals over photos, the
paired comparisons, and their renderings: Markdown tables, CSV, JSON, the metrics-against-hole-
ratio figure and the examples grid (``write_outputs`` writes them all).

Computed by :func:`bidsnet_lib.evaluate.evaluate`; taught in ``notebooks/07_evaluation.ipynb``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsnet_lib.bootstrap import CONFIDENCE
from bidsnet_lib.evaluate.realism import realism_markdown
from bidsnet_lib.masks import overlay_mask
from bidsnet_lib.plumbing import (
    atomic_write,
)

# metric key -> table header; the arrow says which way is better.
METRICS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "fid": "FID ↓",
           "colour": "Hole colour error ↓"}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "colour": False}
PER_PHOTO = ("psnr", "ssim", "lpips", "colour")  # per-image metrics: intervals over photos
COMPARED = ("psnr", "ssim", "lpips")  # what a model must win on against each baseline
CSV_COLUMNS = ("set", "group", "hole_ratio", "method", "metric", "value", "ci_low", "ci_high", "std",
               "n", "n_photos", "note")
PER_PHOTO_COLUMNS = ("set", "group", "photo", "method", "metric", "value", "n_masks")
COMPARISON_COLUMNS = ("set", "group", "model", "baseline", "metric", "diff", "ci_low", "ci_high", "wins",
                      "beats", "best", "n_photos")
REFERENCE = "original photo"  # the hole colour error of the photo itself, beside the methods'


@dataclass
class Example:
    """One pair of a group and what every method made of it, all RGB uint8 (H, W, 3)."""

    group: str
    photo: str
    mask_source: str
    target: np.ndarray
    mask: np.ndarray  # (H, W) 0/1
    outputs: dict[str, np.ndarray]


@dataclass
class EvalResult:
    """The long-format rows (``CSV_COLUMNS``) with what a table must state beside them: each
    photo's means (``PER_PHOTO_COLUMNS``), each model against each baseline
    (``COMPARISON_COLUMNS``), each method's seconds per image and the bootstrap's settings."""

    rows: list[dict]
    methods: list[str]
    metric_notes: dict[str, str]  # metric -> what was used, or "skipped: why"
    protocol: str
    examples: list[Example]
    baselines: list[str] = field(default_factory=list)  # the methods that are baselines
    per_photo: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # method -> seconds per image
    bootstrap: dict = field(default_factory=dict)  # seed, n_resamples
    realism: dict = field(default_factory=dict)  # RealismCheck.summary: protocol, training photos, times

    @property
    def models(self) -> list[str]:
        return [m for m in self.methods if m not in self.baselines]

    def _row(self, group: str, method: str, metric: str) -> dict:
        for row in self.rows:
            if group in (row["group"], f"{row['set']} {row['group']}") and row["method"] == method \
                    and row["metric"] == metric:
                return row
        raise KeyError(f"no row for group={group!r}, method={method!r}, metric={metric!r}")

    def value(self, group: str, method: str, metric: str) -> float:
        """The value of one cell; ``group`` is a group's name ("10-20") or label ("Set I 10-20")."""
        return self._row(group, method, metric)["value"]

    def interval(self, group: str, method: str, metric: str) -> tuple[float, float]:
        """The bootstrap interval over photos of one cell (NaN for FID and skipped metrics)."""
        row = self._row(group, method, metric)
        return row["ci_low"], row["ci_high"]

    def comparison(self, group: str, model: str, baseline: str, metric: str) -> dict:
        """``model`` minus ``baseline`` in one group: diff, ci_low, ci_high, wins, beats, best."""
        for c in self.comparisons:
            if group in (c["group"], f"{c['set']} {c['group']}") and (c["model"], c["baseline"],
                                                                       c["metric"]) == (model, baseline, metric):
                return c
        raise KeyError(f"no comparison for group={group!r}, model={model!r}, baseline={baseline!r}, "
                       f"metric={metric!r}")

    def target_groups(self, model: str, metrics: Sequence[str] = ("psnr", "ssim")) -> list[str]:
        """The groups (labels) in which ``model`` beats every baseline on every one of ``metrics``
        with the whole paired interval on the better side of zero."""
        won = []
        for set_name, group, _, _ in self.groups:
            cells = [c for c in self.comparisons if (c["set"], c["group"], c["model"]) == (set_name, group, model)
                     and c["metric"] in metrics]
            if cells and len(cells) == len(metrics) * len(self.baselines) and all(c["beats"] for c in cells):
                won.append(f"{set_name} {group}")
        return won

    @property
    def groups(self) -> list[tuple[str, str, float, int]]:
        """(set, group, mean hole ratio, n) in table order."""
        seen = {}
        for row in self.rows:
            seen.setdefault((row["set"], row["group"]), (row["hole_ratio"], row["n"]))
        return [(s, g, r, n) for (s, g), (r, n) in seen.items()]

    @property
    def computed_metrics(self) -> list[str]:
        return [m for m in METRICS if not self.metric_notes[m].startswith("skipped")]

    def _write_table(self, path, columns: Sequence[str], rows: list[dict]) -> Path:
        def cell(v):
            if isinstance(v, float):
                return "" if math.isnan(v) else repr(v)
            return v

        def write(stream):
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: cell(row[k]) for k in columns})

        return _write_atomic(path, write)

    def write_csv(self, path) -> Path:
        """``results.csv``: one row per (group, method, metric); skipped metrics have no value."""
        return self._write_table(path, CSV_COLUMNS, self.rows)

    def write_per_photo_csv(self, path) -> Path:
        """``per_photo.csv``: each photo's mean over a group's masks, per method and metric."""
        return self._write_table(path, PER_PHOTO_COLUMNS, self.per_photo)

    def to_json(self) -> dict:
        """Everything of the result but the pictures, as plain JSON data (NaN as null, ±inf as
        the strings "inf" / "-inf")."""
        def plain(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            return v

        return plain({"format": "bidsnet-evaluation", "protocol": self.protocol,
                      "metric_notes": self.metric_notes,
                      "bootstrap": {"method": "percentile", "over": "photos", "confidence": CONFIDENCE,
                                    **self.bootstrap},
                      "methods": self.methods, "baselines": self.baselines,
                      "seconds_per_image": self.seconds, "rows": self.rows,
                      "comparisons": self.comparisons, "per_photo": self.per_photo,
                      **({"realism": self.realism} if self.realism else {})})

    def write_json(self, path) -> Path:
        """``results.json``: :meth:`to_json`."""
        return _write_atomic(path, lambda f: f.write(json.dumps(self.to_json(), indent=1) + "\n"))

    def markdown(self) -> str:
        """The scores table (a row per group and method, a column per metric, mean [interval]),
        then each model against each baseline, with notes saying how."""
        fmt = {"psnr": "{:.2f}", "ssim": "{:.4f}", "lpips": "{:.4f}", "fid": "{:.4g}", "colour": "{:.1f}"}
        lines = [
            f"Metrics on the composited output (known pixels kept from the input, holes filled by "
            f"the method, rounded to 8 bits), against the original photo. {self.protocol}",
            "",
            "| Set | Group | Hole % | Photos × masks | Method | " + " | ".join(METRICS.values())
            + " | s / image |",
            "|---|---|---:|---:|---|" + "---:|" * (len(METRICS) + 1),
        ]
        cells = {(r["set"], r["group"], r["method"], r["metric"]): r for r in self.rows}
        for set_name, group, ratio, n in self.groups:
            for method in self.methods:
                values = []
                for metric in METRICS:
                    row = cells[(set_name, group, method, metric)]
                    v, low, high = row["value"], row["ci_low"], row["ci_high"]
                    if math.isnan(v):
                        values.append("skipped")
                        continue
                    text = fmt[metric].format(v)
                    if not math.isnan(low):
                        text += f" [{fmt[metric].format(low)}, {fmt[metric].format(high)}]"
                    values.append(text)
                row = cells[(set_name, group, method, "psnr")]
                seconds = self.seconds.get(method, math.nan)
                lines.append(f"| {set_name} | {group} | {100 * ratio:.1f} | {row['n_photos']} × "
                             f"{n // row['n_photos']} | {method} | " + " | ".join(values)
                             + f" | {'—' if math.isnan(seconds) else f'{seconds:.3f}'} |")
        lines.append("")
        for metric, note in self.metric_notes.items():
            header = METRICS[metric].rsplit(" ", 1)[0]
            if metric == "colour" and not note.startswith("skipped"):
                own = [cells[(s, g, REFERENCE, "colour")]["value"] for s, g, _, _ in self.groups]
                note += (f"; the original photos themselves score {min(own):.1f}–{max(own):.1f} over "
                         "the groups (their hidden content differs from the ring too)")
            lines.append(f"- {header}: {note}")
        lines.append("- s / image: wall time per image of each method on this machine (batched for the "
                     "model); baselines read from the cache report the time measured when computed")
        for model in self.models:
            lines += ["", *self._comparison_lines(model)]
        if self.realism:  # realism (issue 29): its own tables
            lines += ["", *realism_markdown(self)]
        return "\n".join(lines)

    def _comparison_lines(self, model: str) -> list[str]:
        compared = [m for m in COMPARED if any(c["metric"] == m and c["model"] == model for c in self.comparisons)]
        if not compared or not self.baselines:
            return []
        n_photos = self.rows[0]["n_photos"]
        fmt = {"psnr": "{:+.2f}", "ssim": "{:+.4f}", "lpips": "{:+.4f}"}
        lines = [f"**{model} minus each baseline**, photo by photo: the mean difference and its "
                 f"{100 * CONFIDENCE:g} % bootstrap interval over photos; ✓ when the whole interval lies on "
                 "the better side of zero; wins: the photos on which the model is better, of "
                 f"{n_photos}; † marks the group's best baseline on that metric (best mean).",
                 "",
                 "| Set | Group | Baseline | " + " | ".join(f"Δ{METRICS[m]} | wins" for m in compared) + " |",
                 "|---|---|---|" + "---:|---:|" * len(compared)]
        for set_name, group, _, _ in self.groups:
            for baseline in self.baselines:
                values = []
                for metric in compared:
                    c = self.comparison(f"{set_name} {group}", model, baseline, metric)
                    f = fmt[metric]
                    text = f.format(c["diff"])
                    if not math.isnan(c["ci_low"]):
                        text += f" [{f.format(c['ci_low'])}, {f.format(c['ci_high'])}]"
                    text += (" ✓" if c["beats"] else "") + (" †" if c["best"] else "")
                    values += [text, f"{round(c['wins'] * c['n_photos'])}/{c['n_photos']}"]
                lines.append(f"| {set_name} | {group} | {baseline} | " + " | ".join(values) + " |")
        won = self.target_groups(model)
        total = len(self.groups)
        lines += ["", f"Beats every baseline on PSNR and SSIM with both intervals above zero in {len(won)} "
                      f"of {total} groups" + (f": {', '.join(won)}." if won else ".")]
        return lines

    def figure(self):
        """Each computed metric against the group's mean hole ratio: a line per method through the
        Set I (or folder) bins, an open marker per Set II preset in the method's colour."""
        from matplotlib.figure import Figure  # no pyplot: headless, no global state
        from matplotlib.lines import Line2D

        metrics = self.computed_metrics
        fig = Figure(figsize=(4.2 * len(metrics), 3.6), layout="constrained")
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        colours = {m: f"C{i}" for i, m in enumerate(self.methods)}
        presets = [g for s, g, _, _ in self.groups if s == "Set II"]
        shapes = {g: "svD^<>ph"[i % 8] for i, g in enumerate(presets)}
        for ax, metric in zip(axes, metrics, strict=True):
            for method in self.methods:
                points = [(r["set"], r["group"], r["hole_ratio"], r["value"]) for r in self.rows
                          if r["method"] == method and r["metric"] == metric]
                binned = sorted((x, y) for s, _, x, y in points if s != "Set II")
                if binned:
                    ax.plot(*zip(*binned, strict=True), "o-", color=colours[method])
                for s, group, x, y in points:
                    if s == "Set II":
                        ax.plot(x, y, shapes[group], mfc="none", color=colours[method])
            ax.set_xlabel("hole ratio (mean of the group)")
            ax.set_title(METRICS[metric])
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
            ax.grid(alpha=0.3)
        handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in self.methods]
        handles += [Line2D([], [], color="0.4", marker=shapes[g], mfc="none", ls="none",
                           label=f"Set II {g}") for g in presets]
        axes[-1].legend(handles=handles, fontsize=7)
        return fig

    def examples_figure(self):
        """A row per group: input (holes white), mask, each method, target."""
        from matplotlib.figure import Figure

        columns = ["input", "mask", *self.methods, "target"]
        rows = len(self.examples)
        width, height = 1.9 * len(columns) + 0.25, 1.95 * rows + 0.35
        # Fixed margins, not a layout engine: a grid of equal tiles needs none, and the constrained
        # layout of (groups x methods) axes took longer than the evaluation of a quick run.
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(rows, len(columns), squeeze=False, gridspec_kw={
            "left": 0.25 / width, "right": 1 - 0.05 / width, "bottom": 0.05 / height,
            "top": 1 - 0.3 / height, "wspace": 0.05, "hspace": 0.05})
        for r, (row, ex) in enumerate(zip(axes, self.examples, strict=True)):
            tiles = [overlay_mask(ex.target, ex.mask), ex.mask * np.uint8(255),
                     *(ex.outputs[m] for m in self.methods), ex.target]
            for ax, tile, title in zip(row, tiles, columns, strict=True):
                ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:  # column titles once, on top
                    ax.set_title(title, fontsize=8)
            row[0].set_ylabel(ex.group, fontsize=8)
        return fig


def _write_atomic(path, write: Callable) -> Path:
    """``write(text_stream)`` into ``path`` through :func:`bidsnet_lib.plumbing.atomic_write`."""
    text = io.StringIO(newline="")
    write(text)
    return atomic_write(path, text.getvalue())


def write_outputs(result: EvalResult, out) -> dict[str, Path]:
    """results.csv, results.md, results.json, per_photo.csv, metrics_vs_hole_ratio.png and
    examples.png in folder ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": result.write_csv(out / "results.csv"),
             "markdown": _write_atomic(out / "results.md", lambda f: f.write(result.markdown() + "\n")),
             "json": result.write_json(out / "results.json"),
             "per_photo": result.write_per_photo_csv(out / "per_photo.csv")}
    for key, name, fig in (("figure", "metrics_vs_hole_ratio.png", result.figure()),
                           ("examples", "examples.png", result.examples_figure())):
        fig.savefig(out / name, dpi=100)
        paths[key] = out / name
    return paths
