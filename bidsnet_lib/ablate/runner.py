"""The paper's four ablations and the course's own at small scale: train, evaluate, judge each claim.

Its tables and verdicts go to ``docs/ablations.md`` (``--docs``). Every variant of a study trains
with ``TrainConfig.small()``'s recipe on that recipe's own model (:func:`reference_model`: the small
preset on a Telea fill with a residual head, the shipped model's configuration) with one field
changed, on the same photos (``data/images/train``), for the same steps, with the same seeds and
mask mix; its EMA generator is then scored by :func:`bidsnet_lib.evaluate.evaluate` on
``data/images/test`` under the shipped fixed masks (``bidsnet_lib/eval_masks``), beside Telea and
Navier-Stokes (computed once). The rivals of other networks (``SingleStream``, ``UnifiedNet``)
share BIDS-Net's input and head, so they start from the same Telea fill with a residual head.

Studies, with the paper's choice, in the order ``all`` runs them:

- ``start`` (the course's): the paper's zero-filled input with an image head / Telea fill with an
  image head / **a residual on a Telea fill** (the reference);
- ``streams`` (the method's premise): **both streams** / the CNN stream alone / the Transformer
  stream alone, each rival at BIDS-Net's parameter count (``BIDSNetConfig.streams``);
- ``interaction``: **bidirectional** / cnn_to_trans / trans_to_cnn / none / the paper's unified
  path (``model.UnifiedNet``, at the same parameter count);
- ``fusion``: **sff** / add / concat;
- ``channel_split``: CNN share of the width 0.25 / **0.5** / 0.75 (equal total width);
- ``nb_features``: 16 / 32 / **72** / 128 / 256 random features, and exact softmax attention;
- ``features`` (the course's, not the paper's): **FAVOR+** / FAVOR++ features at m = 72, and
  exact softmax attention (``bidsnet_lib.attention``, notebook 03);
- ``all``: the seven (the unchanged reference model is one run per seed, shared by all of them).

Verdicts follow the rule of :mod:`bidsnet_lib.ablate.tables`, fixed before any run: the
paper's choice beats a rival when the difference of their means over seeds exceeds twice the
larger seed spread. The 72-features claim is a trade-off: 72 must beat fewer features (16, 32)
and must not lose to more (128, 256, softmax), the ``match`` rivals of its :class:`Study`;
FAVOR+ need only not lose to FAVOR++ and softmax attention (``features``: no rival to beat).

Runs live in ``<out>/runs/<variant>/seed<k>/``. A run holding ``results.json`` made with the same
settings is reused, one holding only ``latest.pt`` resumes training: an interrupted study goes
on where it stopped. After evaluation ``latest.pt`` gives way to the float16 ``model.pt``.

Outputs per study in ``--out``: ``<study>.json`` (read back by :func:`load_report`), two CSVs,
the table and a plot; ``--docs`` also copies the data and plot to ``docs/ablations/``, which
notebook 09 reads (:func:`fetch_published` downloads it where docs/ is missing).

Command line (``bidsnet_lib.commands.ablate``)::

    bidsnet ablate --study all --docs        # about 2 hours on 2 CPU cores
    bidsnet ablate --study fusion --quick    # the runner end to end in seconds
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from bidsnet_lib import reports
from bidsnet_lib.ablate.studies import (
    STUDIES,
    AblationSettings,
    Study,
    Variant,
    reference_model,
    study_variants,
)
from bidsnet_lib.ablate.tables import (
    FORMATS,
    StudyReport,
    format_duration,
    load_report,
    photo_scores,
    seed_scores,
    write_text,
)
from bidsnet_lib.checkpoint import export_inference
from bidsnet_lib.colab import REPO_URL, published_url
from bidsnet_lib.evaluate import evaluate, load_mask_groups, load_photos
from bidsnet_lib.inference import Inpainter
from bidsnet_lib.model import BIDSNetConfig, count_parameters
from bidsnet_lib.plumbing import check_apart, check_int, download_file
from bidsnet_lib.reports import machine_line
from bidsnet_lib.train import RunLock, Trainer, read_metrics

PUBLISHED_URL = published_url("docs/ablations")
ABLATION_BASELINES = ("telea", "ns")  # scored once beside every study
RESULTS_FORMAT = "bidsnet-ablation-run"


def make_lpips(settings: AblationSettings, device=None):
    """The LPIPS metric the settings ask for, or None; a missing weight file fails here."""
    if settings.lpips == "off":
        return None
    from bidsnet_lib.metrics import LPIPSMetric

    return LPIPSMetric("alex", backbone_path=settings.lpips_weights,
                       random_backbone=settings.lpips == "random", device=device)


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunTask:
    """One training run and its evaluation: a model config and a seed, in its own folder."""

    key: str  # "reference" or a variant name
    model: BIDSNetConfig
    seed: int
    settings: AblationSettings
    folder: Path


def run_key(variant: Variant) -> str:
    """"reference" when the variant is the unchanged reference model (shared by every study)."""
    base = reference_model()
    return "reference" if variant.config(base) == base else variant.name


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def load_finished(task: RunTask) -> dict | None:
    """The run's results when it finished with these settings; None when it has not finished."""
    path = task.folder / "results.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    differing = _differences(record.get("fingerprint"), task.settings.fingerprint(task.model, task.seed))
    if record.get("format") != RESULTS_FORMAT or differing:
        raise ValueError(f"{task.folder}: holds a finished run made with other settings (differing: "
                         f"{differing[:6]}); expected a run of this invocation's settings: choose "
                         f"another --out, or delete that folder to retrain it")
    return record


def training_seconds(rows: list[dict]) -> float:
    """Wall time of the training loop from its log (each row: steps since the last / steps_per_s);
    a resumed run re-logs from its checkpoint, so the sum covers every step once."""
    total, previous = 0.0, 0
    for row in rows:
        if "steps_per_s" in row:
            total += (row["step"] - previous) / row["steps_per_s"]
            previous = row["step"]
    return total


def _score_rows(result, metrics: Sequence[str]) -> list[dict]:
    keep = ("set", "group", "hole_ratio", "n", "method", "metric", "value", "std")
    return [{k: row[k] for k in keep} for row in result.rows if row["metric"] in metrics]


class RunInterrupted(RuntimeError):
    """A run stopped by SIGINT or SIGTERM before its last step: its checkpoint is kept for the
    next invocation to resume, and nothing of it is evaluated or recorded as finished."""

    def __init__(self, folder: Path, step: int, steps: int, signal_number: int):
        super().__init__(folder, step, steps, signal_number)  # picklable: it crosses the process pool
        self.folder, self.step, self.steps, self.signal_number = folder, step, steps, signal_number

    def __str__(self) -> str:
        return (f"{self.folder}: interrupted by signal {self.signal_number} at step {self.step} of {self.steps}; "
                "its checkpoint is kept: run the same command again to resume")


def execute(task: RunTask) -> dict:
    """Train (or resume) the run, evaluate its EMA generator, write ``results.json``; its record.
    A run stopped by a signal raises :class:`RunInterrupted` instead (evaluated later, when whole)."""
    settings = task.settings
    resume = (task.folder / "latest.pt").is_file()  # else a fresh start, over what a killed run left
    trainer = Trainer(settings.train_config(task.model, task.seed), task.folder,
                      resume=resume, overwrite=not resume, progress=False)
    trainer.train()
    if trainer.stopped_by is not None:
        raise RunInterrupted(task.folder, trainer.step, settings.steps, trainer.stopped_by)
    # Scored as the model card scores the shipped model: the float16 export at the evaluation's
    # working size, through Inpainter (its defaults: mirror, coarse to fine for a residual head).
    export_inference(task.folder / "latest.pt", task.folder / "model.pt", work_size=settings.eval_size)
    inpainter = Inpainter.from_checkpoint(task.folder / "model.pt", device=trainer.device, label=task.key)
    photos = load_photos(settings.test_images, settings.eval_size)
    groups = load_mask_groups(settings.masks, settings.limit)
    start = time.perf_counter()
    result = evaluate(inpainter, photos, groups, label=task.key, baselines=(),
                      lpips=make_lpips(settings, trainer.device), progress=False,
                      skipped={"lpips": "--lpips off", "fid": "not used by the ablations"})
    record = {
        "format": RESULTS_FORMAT, "key": task.key, "seed": task.seed,
        "fingerprint": settings.fingerprint(task.model, task.seed),
        "params": count_parameters(trainer.generator)["total"],
        "train_seconds": training_seconds(read_metrics(task.folder)),
        "eval_seconds": time.perf_counter() - start, "torch_threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%d %H:%M"), "rows": _score_rows(result, settings.metrics),
        "photos": {m: photo_scores([r for r in result.per_photo if r["method"] == task.key], m)
                   for m in settings.metrics},  # the verdicts' intervals over photos
    }
    write_text(task.folder / "results.json", json.dumps(record, indent=1))
    (task.folder / "latest.pt").unlink()  # 10x the size of model.pt, and no longer needed
    return record


def baseline_rows(settings: AblationSettings, out: Path) -> list[dict]:
    """Telea and Navier-Stokes on the evaluation pairs, computed once per ``out`` and settings."""
    path = out / "baselines.json"
    fingerprint = json.loads(json.dumps(settings.eval_fingerprint()))
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached["fingerprint"] == fingerprint:
            return cached["rows"]
    result = evaluate(None, load_photos(settings.test_images, settings.eval_size),
                      load_mask_groups(settings.masks, settings.limit), baselines=ABLATION_BASELINES,
                      lpips=make_lpips(settings), progress=False, skipped={"lpips": "--lpips off"})
    rows = _score_rows(result, settings.metrics)
    out.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({"fingerprint": fingerprint, "rows": rows}, indent=1))
    return rows


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_tasks(tasks: Sequence[RunTask], jobs: int, threads: int, log: Callable[[str], None]) -> dict:
    """Run the tasks (in ``jobs`` processes of ``threads`` torch threads when jobs > 1), in the
    given order; returns {(key, seed): record}."""
    records, done = {}, 0

    def finished(task, record):
        nonlocal done
        done += 1
        scores = seed_scores(record, task.settings.metrics)
        log(f"  [{done}/{len(tasks)}] {task.key} seed {task.seed}: train {format_duration(record['train_seconds'])}, "
            f"evaluate {format_duration(record['eval_seconds'])}; "
            + ", ".join(f"{m} {FORMATS[m].format(v)}" for m, v in scores.items()))
        records[(task.key, task.seed)] = record

    if jobs == 1:
        for task in tasks:
            finished(task, execute(task))
        return records
    # spawn, not fork: a child forked after the parent ran OpenMP-threaded torch code can deadlock.
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(execute, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                finished(futures[future], future.result())
        except BaseException:
            for future in futures:  # queued runs would only delay the error; finished ones are kept
                future.cancel()
            raise
    return records


# ----------------------------------------------------------------------------- the time estimate
@dataclass(frozen=True)
class Probe:
    """Measured costs of one config: Trainer set-up, a training step, evaluating one pair."""

    setup: float
    step: float
    pair: float

    def run_seconds(self, steps: int, pairs: int) -> float:
        return self.setup + steps * self.step + pairs * self.pair


def probe(settings: AblationSettings, model: BIDSNetConfig) -> Probe:
    """Time a Trainer's set-up, training steps (after a warm-up step, except in quick mode) and
    an evaluation of one mask per photo, in a temporary folder, at the settings' size."""
    photos = load_photos(settings.test_images, settings.eval_size)
    group = load_mask_groups(settings.masks, 1)[:1]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer = Trainer(settings.train_config(model, 0), tmp, progress=False)
        setup = time.perf_counter() - start
        batches = iter(trainer.loader())
        if not settings.quick:  # quick mode times one cold step: its estimate need not be right, only printed
            trainer.train_step(next(batches))  # the first step pays one-off allocations
        timed = 1 if settings.quick else 3
        start = time.perf_counter()
        for _ in range(timed):
            trainer.train_step(next(batches))
        step = (time.perf_counter() - start) / timed
        start = time.perf_counter()
        evaluate(Inpainter(trainer.ema, work_size=settings.eval_size, mirror=True), photos, group, baselines=(),
                 lpips=make_lpips(settings), progress=False)
        return Probe(setup, step, (time.perf_counter() - start) / len(photos))


def makespan(durations: Sequence[float], jobs: int) -> float:
    """Wall time of running the durations in the given order on ``jobs`` workers, each task
    going to the first free worker (what the process pool does)."""
    check_int("jobs", jobs, 1)
    free_at = [0.0] * jobs
    for d in durations:
        i = free_at.index(min(free_at))
        free_at[i] += d
    return max(free_at)


def fetch_published(dest, base_url: str = PUBLISHED_URL, studies: Sequence[str] = tuple(STUDIES)) -> Path:
    """Download each study's published ``<study>.json`` from ``base_url`` into ``dest`` (for a
    bare pip install, which has no docs/); returns ``dest``. Files already there are kept; a study
    the server does not have (HTTP 404: not run yet) is left out."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in studies:
        target = dest / f"{name}.json"
        if target.is_file():
            continue
        url = f"{base_url.rstrip('/')}/{name}.json"

        def check(file, url=url):  # a wrong page (an HTML error, another format) fails here, by name
            try:
                load_report(file)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{url}: not a study report ({error})") from error

        download_file(url, target, "the published ablation tables", timeout=30, missing_ok=True, check=check,
                      progress=False, alternative=f", or clone {REPO_URL} and read its docs/ablations/ folder")
    return dest


def section_markers(study: str) -> tuple[str, str]:
    """The markers of a study's section in docs/ablations.md."""
    return reports.section_markers(f"ablate:{study}")


def write_docs_section(path, study: str, text: str) -> Path:
    """Replace the text between the study's markers in ``path`` (appended when absent)."""
    return reports.write_section(path, f"ablate:{study}", text, title="# Ablations")


def publish(report: StudyReport, docs) -> Path:
    """The study's data and plot into the ``ablations/`` folder beside ``docs``, and its section
    of ``docs`` rewritten; returns that folder."""
    folder = Path(docs).parent / "ablations"
    folder.mkdir(exist_ok=True)
    report.write_data(folder)
    write_docs_section(docs, report.study.name, report.markdown(f"ablations/{report.study.name}.png"))
    return folder


# ----------------------------------------------------------------------------- the whole run
def plan_tasks(studies: Sequence[Study], settings: AblationSettings, out: Path) -> tuple[list[RunTask], dict]:
    """Every distinct run the studies need (shared ones once) and {study: {variant: key}}."""
    base, tasks, keys = reference_model(), {}, {}
    for study in studies:
        keys[study.name] = {}
        for variant in study_variants(study, settings.quick):
            key = run_key(variant)
            keys[study.name][variant.name] = key
            for seed in range(settings.seeds):
                tasks.setdefault((key, seed), RunTask(key, variant.config(base), seed, settings,
                                                      out / "runs" / key / f"seed{seed}"))
    return list(tasks.values()), keys


def study_report(study: Study, settings: AblationSettings, keys: Mapping[str, str], records: Mapping, baselines,
                 stamp: str) -> StudyReport:
    """The study's report from the finished runs' ``records`` ({(run key, seed): record}) and
    its ``keys`` ({variant name: run key}, from :func:`plan_tasks`)."""
    variants = study_variants(study, settings.quick)
    return StudyReport(study, variants, dict(keys),
                       {v.name: [records[(keys[v.name], s)] for s in range(settings.seeds)] for v in variants},
                       baselines, settings, stamp)


def run_ablations(studies: Sequence[Study], settings: AblationSettings, out, *, jobs: int = 1,
                  docs=None, dry_run: bool = False, command: str = "",
                  log: Callable[[str], None] = print) -> list[StudyReport]:
    """Plan, estimate, train and evaluate what is missing, then write each study's outputs (and
    its section of ``docs`` when given). Returns the reports (none on a dry run)."""
    check_int("jobs", jobs, 1)
    started, out = time.perf_counter(), Path(out)
    # Cheap checks first: a wrong folder fails in a second, not after an hour of training.
    if not Path(settings.train_images).is_dir():
        raise ValueError(f"data: no such folder {settings.train_images!r}; expected the training photos")
    check_apart(out, {"data": settings.train_images, "test images": settings.test_images, "masks": settings.masks},
                "out")
    photos = load_photos(settings.test_images, settings.eval_size)
    groups = load_mask_groups(settings.masks, settings.limit)
    make_lpips(settings)
    pairs = len(photos) * sum(len(g.masks) for g in groups)
    tasks, keys = plan_tasks(studies, settings, out)
    finished = {(t.key, t.seed): r for t in tasks if (r := load_finished(t)) is not None}
    pending = [t for t in tasks if (t.key, t.seed) not in finished]
    threads = max(1, torch.get_num_threads() // jobs) if jobs > 1 else torch.get_num_threads()

    names = ", ".join(s.name for s in studies)
    log(f"ablations: {names}; {settings.seeds} seeds, {settings.steps} steps at {settings.size} px, "
        f"batch {settings.batch_size}; evaluation at {settings.eval_size} px: {len(photos)} photos x "
        f"{pairs // len(photos)} masks ({len(groups)} groups) = {pairs} pairs a run")
    log(f"runs: {len(tasks)} ({len(finished)} finished earlier, {len(pending)} to do) in {out}, "
        f"{min(jobs, max(len(pending), 1))} job(s) of {threads} torch thread(s)")
    if pending:
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)  # measure at the thread count the runs will use
        try:
            probes = {}
            for task in pending:
                if task.key not in probes:
                    p = probes[task.key] = probe(settings, task.model)
                    log(f"  measured {task.key}: {p.step:.3f} s a step, {p.pair * 1000:.0f} ms an "
                        f"evaluated pair, {p.setup:.1f} s set-up")
        finally:
            torch.set_num_threads(saved)
        durations = {(t.key, t.seed): probes[t.key].run_seconds(settings.steps, pairs) for t in pending}
        # Part-trained runs first (a stop after them loses no training), then the longest first:
        # the jobs end together.
        pending.sort(key=lambda t: (not (t.folder / "latest.pt").is_file(), -durations[(t.key, t.seed)]))
        estimate = makespan([durations[(t.key, t.seed)] for t in pending], jobs)
        resumed = sum((t.folder / "latest.pt").is_file() for t in pending)
        log(f"estimated time: {format_duration(estimate)} for the runs"
            + (f" (an upper bound: {resumed} resume part-trained)" if resumed else "")
            + ", measured just now at this machine's load (steps: --steps; runs: --seeds, --study)")
    if dry_run:
        return []

    lock = RunLock(out).acquire()  # one ablation writes --out at a time (each run's folder has its own lock too)
    try:
        return _run_and_report(studies, settings, out, pending, finished, keys, jobs, threads, docs, command, log,
                               started)
    finally:
        lock.release()


def _run_and_report(studies, settings, out, pending, finished, keys, jobs, threads, docs, command, log,
                    started) -> list[StudyReport]:
    """The training, evaluation and reports of :func:`run_ablations`, done holding the lock of ``out``."""
    baselines = baseline_rows(settings, out)
    records = dict(finished)
    records.update(run_tasks(pending, jobs, threads, log))
    wall = time.perf_counter() - started
    stamp = (f"Run {time.strftime('%Y-%m-%d')}: `{command or 'bidsnet ablate'}`; this invocation took "
             f"{format_duration(wall)} ({len(pending)} runs trained, {len(finished)} reused) on {machine_line()}, "
             f"{min(jobs, max(len(pending), 1))} job(s) of {threads} thread(s).")
    reports = []
    for study in studies:
        report = study_report(study, settings, keys[study.name], records, baselines, stamp)
        paths = report.write(out)
        if docs is not None:
            publish(report, docs)
        log(f"\n{report.markdown()}\n\nwrote " + ", ".join(str(p) for p in paths.values()))
        reports.append(report)
    verdicts = "; ".join(f"{r.study.name}: **{r.verdicts()[0]}**" for r in reports)
    if docs is not None:
        write_status(docs, command or "bidsnet ablate", wall, settings.quick)
    log(f"\nverdicts: {verdicts.replace('**', '')} (wall time {format_duration(wall)})")
    return reports


def write_status(docs, command: str, wall: float, quick: bool) -> Path:
    """The note atop ``docs``: this invocation, and the verdict of every study published beside
    it (an earlier run's too: a one-study invocation keeps the others' verdicts in view)."""
    folder = Path(docs).parent / "ablations"
    published = [load_report(folder / f"{name}.json") for name in STUDIES if (folder / f"{name}.json").is_file()]
    verdicts = "; ".join(f"{r.study.name}: **{r.verdicts()[0]}**" for r in published)
    status = "quick mode only, a smoke test whose numbers mean nothing" if quick else "run"
    return write_docs_section(docs, "status", (
        f"> **Status: {status}.** Last update {time.strftime('%Y-%m-%d')} by `{command}` (wall time "
        f"{format_duration(wall)}). Verdicts of the published studies: {verdicts}. Each section below "
        f"states its own run."))
