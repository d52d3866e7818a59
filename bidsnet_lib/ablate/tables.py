"""The ablations' numbers: a run's score, the verdict rule, and a study's report.

:mod:`bidsnet_lib.ablate` trains and evaluates the runs; this module turns their records into
each study's table, plot and verdict, and into the ``<study>.json`` that rebuilds them (notebook
09 teaches how to read them).

Verdict rule. A run's score for a metric is the mean over the mask groups of its per-group
means; a variant's is the mean and the sample standard deviation (ddof 1) over its seeds. Two
sources of noise are checked, and a difference must clear both (issue 26):

- the seeds: the difference of the means, signed so that positive favours the paper's choice,
  must exceed the margin ``2 * max(s_paper, s_rival, s_pool)`` (``s_pool``: root mean square of
  all the study's deviations; with two seeds a deviation has one degree of freedom and can be
  small by luck, the pool keeps the margin from collapsing);
- the photos: each test photo's score (mean over the mask groups, then over the seeds) is taken
  for both variants, and the 95 % percentile bootstrap interval of the mean per-photo difference
  (photos resampled, :func:`bidsnet_lib.bootstrap.bootstrap_interval`) must lie wholly on that side
  of zero. Reports made before per-photo scores were recorded are judged on the seeds alone.

The paper's choice *beats* a rival when both say so, *loses* when both say the opposite, and
*ties* otherwise. A difference within 1.5 × the seed margin is flagged for a third seed
(``--seeds 3``: finished runs are reused). Per metric, a claim is "reproduced" when the paper's
choice beats every rival it should beat and loses to none, "not reproduced" when it loses to any,
"within noise" otherwise. Over the metrics: "reproduced" only when every metric says so, "not
reproduced" when one does and none says "reproduced", else "within noise".
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsnet_lib.ablate.studies import AblationSettings, Study, Variant, resolve_studies
from bidsnet_lib.bootstrap import bootstrap_interval
from bidsnet_lib.evaluate import HIGHER_IS_BETTER
from bidsnet_lib.plumbing import REPO_ROOT as ROOT
from bidsnet_lib.plumbing import atomic_write

HEADERS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
FORMATS = {"psnr": "{:.2f}", "ssim": "{:.4f}", "lpips": "{:.4f}"}
VERDICTS = ("reproduced", "not reproduced", "within noise")
REPORT_FORMAT = "bidsnet-ablation-study"
DOCS = ROOT / "docs" / "ablations.md"
THIRD_SEED_FACTOR = 1.5  # a difference within this many seed margins asks for a third seed
# The groups where issue 26 asks the reference to lead the best classical baseline (>= +0.5 dB PSNR).
REFERENCE_GROUPS = (("Set I", "30-40"), ("Set I", "40-50"), ("Set I", "50-60"))
# Each study's data from the last full run, committed beside DOCS (`bidsnet ablate --docs` writes
# it) and read by notebook 09; a bare pip install (Colab) has no docs/, so
# ablate.fetch_published() downloads it.
PUBLISHED = DOCS.parent / "ablations"


# ----------------------------------------------------------------------------- verdicts
def compare(paper: Sequence[float], rival: Sequence[float], *, higher_is_better: bool = True,
            pooled_std: float = 0.0) -> tuple[str, float, float]:
    """("better" | "worse" | "tie", delta, margin) of the paper's choice against a rival, over
    seeds: delta is the difference of the means signed so that > 0 favours the paper's choice;
    margin = 2 * max(std paper, std rival, pooled_std), stds with ddof 1."""
    for name, values in (("paper", paper), ("rival", rival)):
        if len(values) < 2 or not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ValueError(f"{name}: got {list(values)!r}, expected finite scores of >= 2 seeds")
    delta = float(np.mean(paper) - np.mean(rival)) * (1 if higher_is_better else -1)
    margin = 2 * max(float(np.std(paper, ddof=1)), float(np.std(rival, ddof=1)), pooled_std)
    outcome = "better" if delta > margin else "worse" if delta < -margin else "tie"
    return outcome, delta, margin


def pooled_std(values: Mapping[str, Sequence[float]]) -> float:
    """Root mean square of the per-variant sample standard deviations."""
    return float(np.sqrt(np.mean([np.var(v, ddof=1) for v in values.values()])))


def photo_difference(paper: Mapping[str, float], rival: Mapping[str, float], *,
                     higher_is_better: bool = True, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean over the photos both score of the paper's choice's score minus
    the rival's, signed so that > 0 favours the paper's choice, and its 95 % bootstrap interval."""
    photos = sorted(set(paper) & set(rival))
    if len(photos) < 2:
        raise ValueError(f"per-photo scores: {len(photos)} photo(s) in common, expected at least 2")
    sign = 1 if higher_is_better else -1
    differences = [sign * (paper[p] - rival[p]) for p in photos]
    low, high = bootstrap_interval(differences, seed=seed)
    return float(np.mean(differences)), low, high


def claim_verdict(values: Mapping[str, Sequence[float]], winner: str, beat: Sequence[str],
                  match: Sequence[str] = (), *, higher_is_better: bool = True,
                  intervals: Mapping[str, tuple[float, float]] | None = None) -> tuple[str, dict]:
    """The verdict on one metric (see the module docstring) and {rival: (outcome, delta, margin)}.

    ``values``: each variant's scores over seeds; the paper's choice ``winner`` must beat every
    variant of ``beat`` and must not lose to any of ``match``. ``intervals``: {rival: (low, high)},
    the bootstrap interval over photos of the difference (:func:`photo_difference`); a seed
    outcome whose interval holds zero becomes a tie. None: the seeds alone decide.
    """
    missing = [n for n in (winner, *beat, *match) if n not in values]
    if missing:
        raise ValueError(f"values: no scores for {missing}; got {sorted(values)}")
    pool = pooled_std(values)
    comparisons = {}
    for n in (*beat, *match):
        outcome, delta, margin = compare(values[winner], values[n], higher_is_better=higher_is_better, pooled_std=pool)
        if intervals is not None:
            low, high = intervals[n]
            if (outcome == "better" and not low > 0) or (outcome == "worse" and not high < 0):
                outcome = "tie"
        comparisons[n] = (outcome, delta, margin)
    if any(c[0] == "worse" for c in comparisons.values()):
        return "not reproduced", comparisons
    if all(comparisons[n][0] == "better" for n in beat):
        return "reproduced", comparisons
    return "within noise", comparisons


def overall_verdict(per_metric: Mapping[str, str]) -> str:
    """Reproduced when every metric says so; not reproduced when one does and none says
    reproduced; within noise otherwise (including metrics that contradict each other)."""
    labels = set(per_metric.values())
    if not labels or not labels <= set(VERDICTS):
        raise ValueError(f"per_metric: got {dict(per_metric)!r}, expected verdicts among {VERDICTS}")
    if labels == {"reproduced"}:
        return "reproduced"
    if "not reproduced" in labels and "reproduced" not in labels:
        return "not reproduced"
    return "within noise"


# ----------------------------------------------------------------------------- the tables
def seed_scores(record: dict, metrics: Sequence[str]) -> dict[str, float]:
    """A run's score per metric: the mean over the mask groups of the per-group means."""
    return {m: float(np.mean([r["value"] for r in record["rows"] if r["metric"] == m])) for m in metrics}


def photo_scores(per_photo: Sequence[dict], metric: str) -> dict[str, float]:
    """{photo: the mean over the mask groups of its per-group mean} from an evaluation's per-photo
    rows of one method (``EvalResult.per_photo``): a photo's share of :func:`seed_scores`."""
    by_photo: dict[str, list[float]] = {}
    for row in per_photo:
        if row["metric"] == metric:
            by_photo.setdefault(row["photo"], []).append(row["value"])
    return {photo: float(np.mean(values)) for photo, values in by_photo.items()}


@dataclass
class StudyReport:
    """One study's numbers, verdicts and outputs (CSV, Markdown, plot)."""

    study: Study
    variants: list[Variant]
    keys: dict[str, str]  # variant name -> run key
    records: dict[str, list[dict]]  # variant name -> its runs' records, by seed
    baselines: list[dict]
    settings: AblationSettings
    stamp: str = ""  # command, date, machine, wall time: the line under the table

    @property
    def metrics(self) -> list[str]:
        return self.settings.metrics

    def header(self, metric: str) -> str:
        """The column title; a random LPIPS trunk says so in it, not only in a footnote."""
        if metric == "lpips" and self.settings.lpips == "random":
            return "LPIPS, random trunk ↓"
        return HEADERS[metric]

    def scores(self, metric: str) -> dict[str, list[float]]:
        return {v.name: [seed_scores(r, [metric])[metric] for r in self.records[v.name]] for v in self.variants}

    def baseline_scores(self) -> dict[str, dict[str, float]]:
        methods = dict.fromkeys(r["method"] for r in self.baselines)
        return {m: {k: float(np.mean([r["value"] for r in self.baselines if r["method"] == m and r["metric"] == k]))
                    for k in self.metrics} for m in methods}

    def photo_means(self, metric: str) -> dict[str, dict[str, float]] | None:
        """{variant: {photo: score, mean over seeds}}; None when a run recorded no per-photo scores
        (a report made before they were kept)."""
        if not all("photos" in r for runs in self.records.values() for r in runs):
            return None
        means = {}
        for v in self.variants:
            runs = [r["photos"][metric] for r in self.records[v.name]]
            means[v.name] = {p: float(np.mean([run[p] for run in runs])) for p in runs[0]}
        return means

    def differences(self, metric: str) -> dict[str, tuple[float, float, float]]:
        """{rival: (mean, low, high)} of the paper's choice minus the rival per photo, pooled over
        seeds (:func:`photo_difference`); {} without per-photo scores."""
        means = self.photo_means(metric)
        if means is None:
            return {}
        return {v.name: photo_difference(means[self.study.winner], means[v.name],
                                         higher_is_better=HIGHER_IS_BETTER[metric])
                for v in self.variants if v.name != self.study.winner}

    def verdicts(self) -> tuple[str, dict[str, tuple[str, dict]]]:
        beat, match = self.study.rivals([v.name for v in self.variants])
        per_metric = {}
        for m in self.metrics:
            differences = self.differences(m)
            intervals = {n: (low, high) for n, (_, low, high) in differences.items()} if differences else None
            per_metric[m] = claim_verdict(self.scores(m), self.study.winner, beat, match,
                                          higher_is_better=HIGHER_IS_BETTER[m], intervals=intervals)
        return overall_verdict({m: v for m, (v, _) in per_metric.items()}), per_metric

    def reference_lead(self) -> float | None:
        """The paper's choice's PSNR minus the best classical baseline's, per group, averaged over
        :data:`REFERENCE_GROUPS` and the seeds (issue 26 asks >= +0.5 dB); None when the groups
        were not scored."""
        best: dict = {}
        for row in self.baselines:
            key = (row["set"], row["group"])
            if row["metric"] == "psnr" and key in REFERENCE_GROUPS:
                best[key] = max(best.get(key, -np.inf), row["value"])
        if len(best) < len(REFERENCE_GROUPS):
            return None
        leads = [row["value"] - best[(row["set"], row["group"])] for r in self.records[self.study.winner]
                 for row in r["rows"] if row["metric"] == "psnr" and (row["set"], row["group"]) in best]
        return float(np.mean(leads))

    def summary_rows(self) -> list[dict]:
        rows = []
        for v in self.variants:
            runs = self.records[v.name]
            row = {"study": self.study.name, "variant": v.name,
                   "role": "paper's choice" if v.name == self.study.winner else "variant",
                   "run": self.keys[v.name], "params": runs[0]["params"], "seeds": len(runs),
                   "train_seconds": float(np.mean([r["train_seconds"] for r in runs]))}
            for m in self.metrics:
                values = self.scores(m)[v.name]
                row.update({f"{m}_mean": float(np.mean(values)), f"{m}_std": float(np.std(values, ddof=1))})
            rows.append(row)
        for method, scores in self.baseline_scores().items():
            rows.append({"study": self.study.name, "variant": method, "role": "baseline", "run": "", "params": "",
                         "seeds": "", "train_seconds": "", **{f"{m}_mean": scores[m] for m in self.metrics},
                         **{f"{m}_std": "" for m in self.metrics}})
        return rows

    def group_rows(self) -> list[dict]:
        rows = []
        for v in self.variants:
            for record in self.records[v.name]:
                rows += [{"study": self.study.name, "variant": v.name, "seed": record["seed"],
                          **{k: r[k] for k in ("set", "group", "hole_ratio", "n", "metric", "value")}}
                         for r in record["rows"]]
        rows += [{"study": self.study.name, "variant": r["method"], "seed": "",
                  **{k: r[k] for k in ("set", "group", "hole_ratio", "n", "metric", "value")}}
                 for r in self.baselines]
        return rows

    def markdown(self, image: str | None = None) -> str:
        s, study = self.settings, self.study
        verdict, per_metric = self.verdicts()
        lines = [f"## {study.title} (`--study {study.name}`)", ""]
        if s.quick:
            lines += ["**Quick mode: a smoke test of the runner; these numbers mean nothing.**", ""]
        missing = [v.name for v in study.variants if v.name not in {r.name for r in self.variants}]
        if missing:  # left out by quick mode, or the study grew after this table was run: say which
            why = ("quick mode runs the paper's choice and the first rival; without `--quick` every variant runs"
                   if s.quick else f"added to the study after it was run; `bidsnet ablate --study {study.name} "
                                   f"--docs` runs them")
            lines += [f"Not in this table: {', '.join(missing)} ({why}).", ""]
        lines += [f"Claim: {study.claim}.", "",
                  f"**Verdict: {verdict}** ("
                  + "; ".join(f"{HEADERS[m].split()[0]}: {v}" for m, (v, _) in per_metric.items()) + ").", "",
                  "| variant | parameters | training time / run | "
                  + " | ".join(self.header(m) for m in self.metrics) + " |",
                  "|---|---:|---:|" + "---:|" * len(self.metrics)]
        for row in self.summary_rows():
            if row["role"] == "baseline":
                cells = [f"{row['variant']} (no training)", "—", "—",
                         *(FORMATS[m].format(row[f"{m}_mean"]) for m in self.metrics)]
            else:
                name = f"**{row['variant']}** (paper)" if row["role"] == "paper's choice" else row["variant"]
                cells = [name, f"{row['params']:,}", format_duration(row["train_seconds"]),
                         *(f"{FORMATS[m].format(row[f'{m}_mean'])} ± {FORMATS[m].format(row[f'{m}_std'])}"
                           for m in self.metrics)]
            lines.append("| " + " | ".join(cells) + " |")
        differences = {m: self.differences(m) for m in self.metrics}
        photo_note = ("95 % bootstrap interval over the test photos of the per-photo difference, pooled over seeds"
                      if any(differences.values()) else "no per-photo scores in this report: the seeds alone decide")
        lines += ["", "The paper's choice against each rival (Δ > 0 favours the paper's choice; [interval]: "
                      f"{photo_note}; margin = 2 × max(std of the two over seeds, pooled std of the study); an "
                      "outcome needs both):", ""]
        _, match = study.rivals([v.name for v in self.variants])
        seeds_run = min(len(runs) for runs in self.records.values())
        for rival in next(iter(per_metric.values()))[1]:
            need = "must not lose" if rival in match else "must win"
            parts, close = [], False
            for m, (_, c) in per_metric.items():
                outcome, delta, margin = c[rival]
                signed = FORMATS[m].replace("{:", "{:+")
                interval = (f" [{signed.format(differences[m][rival][1])}, {signed.format(differences[m][rival][2])}]"
                            if differences[m] else "")
                parts.append(f"{HEADERS[m].split()[0]} Δ {signed.format(delta)}{interval} "
                             f"(margin {FORMATS[m].format(margin)}): {outcome}")
                close = close or abs(delta) <= THIRD_SEED_FACTOR * margin
            flag = (f" — within {THIRD_SEED_FACTOR}× the margin: a third seed would decide it (`--seeds 3`)"
                    if close and seeds_run < 3 else "")
            lines.append(f"- vs {rival} ({need}): " + "; ".join(parts) + flag)
        lead = self.reference_lead()
        if lead is not None:
            lines += ["", f"The paper's choice leads the best classical baseline of each group by {lead:+.2f} dB PSNR "
                          "over Set I 30–60 % (issue 26 asks at least +0.5 dB of a trained reference: "
                          f"{'met' if lead >= 0.5 else 'NOT met, so the verdicts speak of an undertrained model'})."]
        seeds = ", ".join(str(r["seed"]) for r in self.records[self.variants[0].name])
        first = self.baselines[0]["method"]
        pairs = sum(r["n"] for r in self.baselines if r["metric"] == "psnr" and r["method"] == first)
        masks = "every mask" if s.limit is None else f"{s.limit} mask(s)"
        lines += ["", f"Setting: {s.steps} training steps of `TrainConfig.small()` at {s.size} px, batch "
                      f"{s.batch_size}, seeds {seeds}, on `{short_path(s.train_images)}`; "
                      f"scored on `{short_path(s.test_images)}` at {s.eval_size} px through `Inpainter` under `{short_path(s.masks)}` "
                      f"({masks} per group, {pairs} pairs a run), composited, 8-bit. A run's score is the mean "
                      f"over the mask groups; mean ± sample std (ddof 1) over the seeds. Per-group "
                      f"numbers: `{study.name}_groups.csv` in the output folder."]
        lines += ["", {"alex": "LPIPS: AlexNet trunk with ImageNet weights.",
                       "random": "LPIPS: a RANDOM AlexNet trunk, not comparable to published LPIPS and not a "
                                 "perceptual measure.",
                       "off": "LPIPS: not measured (`--lpips off`, the default: its AlexNet ImageNet weights "
                              "cannot be had offline; `--lpips alex` adds the column)."}[s.lpips]]
        if self.stamp:
            lines += ["", self.stamp]
        if image:
            lines += ["", f"![{study.title}: mean ± std over seeds]({image})"]
        return "\n".join(lines)

    def figure(self):
        """Per metric: each seed's score (dots) and mean ± std (square) per variant."""
        from matplotlib.figure import Figure  # no pyplot: headless, no global state

        fig = Figure(figsize=(max(3.0, 0.8 * len(self.variants) + 1.2) * len(self.metrics), 3.4), layout="constrained")
        axes = fig.subplots(1, len(self.metrics), squeeze=False)[0]
        for ax, metric in zip(axes, self.metrics, strict=True):
            for i, (name, values) in enumerate(self.scores(metric).items()):
                colour = "C3" if name == self.study.winner else "C0"
                ax.plot([i] * len(values), values, "o", ms=3, alpha=0.5, color=colour)
                ax.errorbar(i, np.mean(values), yerr=np.std(values, ddof=1), fmt="s", capsize=4, color=colour)
            ax.set_xticks(range(len(self.variants)), [v.label for v in self.variants], rotation=30, fontsize=8)
            ax.set_xlim(-0.5, len(self.variants) - 0.5)
            ax.set_title(self.header(metric), fontsize=9)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{self.study.title}: seeds (dots), mean ± std (squares); red: the paper's choice", fontsize=9)
        return fig

    def write_data(self, out: Path) -> dict[str, Path]:
        """``<study>.json`` (everything :func:`load_report` needs), ``<study>.csv`` (a row per
        variant and baseline), ``<study>_groups.csv`` (a row per run, group and metric) and
        ``<study>.png`` in ``out``."""
        name = self.study.name
        paths = {"json": write_text(out / f"{name}.json", json.dumps(self.to_json(), indent=1) + "\n"),
                 "csv": write_csv(out / f"{name}.csv", self.summary_rows()),
                 "groups": write_csv(out / f"{name}_groups.csv", self.group_rows()),
                 "plot": out / f"{name}.png"}
        self.figure().savefig(paths["plot"], dpi=100)
        return paths

    def write(self, out: Path) -> dict[str, Path]:
        """The data files of :meth:`write_data` and ``<study>.md`` (the table) in ``out``."""
        paths = self.write_data(out)
        paths["markdown"] = write_text(out / f"{self.study.name}.md", self.markdown(f"{self.study.name}.png") + "\n")
        return paths

    def to_json(self) -> dict:
        """The report as JSON data; paths inside the repository are stored relative to it, and the
        runs' fingerprints (machine paths) are left out: ``settings`` holds what they share."""
        settings = dataclasses.asdict(self.settings)
        for name in ("train_images", "test_images", "masks"):
            settings[name] = short_path(settings[name])
        records = {name: [{k: v for k, v in r.items() if k != "fingerprint"} for r in runs]
                   for name, runs in self.records.items()}
        return {"format": REPORT_FORMAT, "study": self.study.name, "variants": [v.name for v in self.variants],
                "keys": self.keys, "settings": settings, "stamp": self.stamp, "records": records,
                "baselines": self.baselines}


def write_text(path: Path, text: str) -> Path:
    """Through :func:`bidsnet_lib.plumbing.atomic_write`: readers never see half a file."""
    return atomic_write(path, text)


def write_csv(path: Path, rows: list[dict]) -> Path:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, text.getvalue())


def short_path(path: str) -> str:
    """A path relative to the repository when inside it (what a reader can find)."""
    p = Path(path)
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def load_report(path) -> StudyReport:
    """A study's report from the ``<study>.json`` that :meth:`StudyReport.write_data` wrote:
    verdicts, tables and plot can be rebuilt from it without the runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected a <study>.json written by `bidsnet ablate` "
                                f"(in its --out folder, or {short_path(str(PUBLISHED))})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error}); expected a <study>.json written by `bidsnet ablate`") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ValueError(f"{path}: format {data.get('format') if isinstance(data, dict) else None!r}; "
                         f"expected {REPORT_FORMAT!r} (a <study>.json written by `bidsnet ablate`)")
    missing = [k for k in ("study", "variants", "keys", "settings", "stamp", "records", "baselines") if k not in data]
    if missing:
        raise ValueError(f"{path}: no {missing} in it; expected a whole <study>.json written by `bidsnet ablate`")
    study = resolve_studies(data["study"])[0]
    known = {v.name: v for v in study.variants}
    unknown = [n for n in data["variants"] if n not in known]
    if unknown:
        raise ValueError(f"{path}: variants {unknown} are not in study {study.name!r}; expected among {list(known)}")
    unrun = [n for n in data["variants"] if not data["records"].get(n)]
    if unrun:
        raise ValueError(f"{path}: no runs recorded for {unrun}; expected each variant's runs under 'records'")
    settings = dict(data["settings"])
    for name in ("train_images", "test_images", "masks"):  # stored relative to the repository
        settings[name] = str(ROOT / settings.get(name, ""))
    settings.setdefault("eval_size", settings.get("size", 128))  # before eval_size, runs were scored at their size
    try:
        settings = AblationSettings(**settings)
    except TypeError as error:  # a key this version does not know
        raise ValueError(f"{path}: settings {sorted(data['settings'])} do not fit this version ({error})") from None
    return StudyReport(study, [known[n] for n in data["variants"]], data["keys"], data["records"],
                       data["baselines"], settings, data["stamp"])
