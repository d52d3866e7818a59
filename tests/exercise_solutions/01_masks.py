"""Solutions to the exercises of notebooks/01_masks.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: write bin_of(ratio) returning the bin of M.RATIO_BINS that holds `ratio`
# (low <= ratio < high), or None when no bin does.
def bin_of(ratio):
    for low, high in M.RATIO_BINS:
        if low <= ratio < high:
            return (low, high)
    return None
''',
    2: '''# Exercise 2: a downloaded mask set marks holes black (0) and known pixels white (255). The folder
# `inverted_dir` below holds such files. Load it with M.MaskFolder so that holes come out as 1,
# at 128 x 128, and assign it to `inverted_masks`.
inverted_dir = Path(tempfile.mkdtemp())
for i, m in enumerate(truth):
    cv2.imwrite(str(inverted_dir / f"{i}.png"), (1 - m) * 255)   # white = known

inverted_masks = M.MaskFolder(inverted_dir, size=128, invert=True)
''',
    3: '''# Exercise 3: LaMa's evaluation rejects masks covering more than half the image. Estimate, from
# 300 "thick" masks at 128 x 128 (no max_hole_ratio), the fraction that would be rejected, and
# assign it to `rejected_fraction`.
rng = np.random.default_rng(0)
rejected_fraction = np.mean([M.hole_ratio(M.large_mask(128, 128, "thick", rng)) > 0.5 for _ in range(300)])
''',
}
