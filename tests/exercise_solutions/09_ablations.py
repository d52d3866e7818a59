"""Solutions to the exercises of notebooks/09_ablations.ipynb (full source of each answer cell)."""

SOLUTIONS = {
    1: '''\
# Exercise 1: train and score the variant `fusion=add` with seed 0, as the runner does: build its
# model config (the studies' reference model, `ablate.reference_model()`, with fusion="add"), an
# `ablate.RunTask` with the key "fusion=add", `ablate.AblationSettings(**EXERCISE_SETTINGS)` and the
# folder EXERCISE_DIR / "fusion=add" / "seed0", run it with `ablate.execute` and put the run's PSNR
# score (mean over the mask groups) in `answer`.
model = dataclasses.replace(ablate.reference_model(), fusion="add")
task = ablate.RunTask("fusion=add", model, 0, ablate.AblationSettings(**EXERCISE_SETTINGS),
                      EXERCISE_DIR / "fusion=add" / "seed0")
record = ablate.execute(task)
answer = ablate.seed_scores(record, ["psnr"])["psnr"]
''',
    2: '''\
# Exercise 2: the pooled std keeps the margin from collapsing when two seeds agree by luck. Which
# comparisons would change outcome without it? For every study, compare the paper's choice with
# each rival on PSNR using `ablate.compare(..., pooled_std=0.0)`, and put in `answer` the set of
# (study name, rival name) pairs whose outcome differs from the published one (report.verdicts()).
answer = set()
for name, report in reports.items():
    scores = report.scores("psnr")
    published = report.verdicts()[1]["psnr"][1]  # rival -> (outcome, delta, margin)
    for rival, (outcome, _, _) in published.items():
        if ablate.compare(scores[report.study.winner], scores[rival], pooled_std=0.0)[0] != outcome:
            answer.add((name, rival))
''',
    3: '''\
# Exercise 3: a textbook alternative to the runner's margin is twice the standard error of the
# difference of two means, 2 * sqrt(s_a**2 / n_a + s_b**2 / n_b) (s: sample stds, n: seeds). Write
# se_margin(a, b) for two lists of per-seed scores. With 2 seeds each and equal stds it equals the
# runner's 2 * s; unlike the runner's, it shrinks as seeds are added.
def se_margin(a, b):
    return float(2 * np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)))
''',
}
