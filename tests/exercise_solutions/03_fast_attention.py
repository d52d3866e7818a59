"""Solutions to the exercises of notebooks/03_fast_attention.ipynb (tests/test_exercises.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: the paper preset trains on a 16 GB T4. Find the side S of the largest square feature
# map (N = S * S tokens) whose exact N x N attention matrix, for ONE head in fp32 (4 bytes a
# number), fits in 16 GiB = 16 * 2**30 bytes. Assign the integer to `largest_side`.
# S**4 * 4 <= 2**34, so S <= (2**32) ** (1/4) = 2**8: exactly 256 x 256 fits, 257 x 257 does not.
largest_side = 1
while ((largest_side + 1) ** 2) ** 2 * 4 <= 16 * 2**30:
    largest_side += 1
''',
    2: '''# Exercise 2: write favor_row(q, keys, w), FAVOR+'s estimate of one query's attention row: the N
# weights phi(q).phi(k_j) / sum_l phi(q).phi(k_l), for q (d,), keys (N, d) and features w (m, d).
# Use positive_features from section 3.
def favor_row(q, keys, w):
    weights = positive_features(keys, w) @ positive_features(q, w)  # (N,) estimated kernel values
    return weights / weights.sum()
''',
    3: '''# Exercise 3: a FastAttention in training mode with redraw_interval=5 is called 12 times. How many
# different projections does it use over these calls? Reason it out from section 8 and assign
# the number to `n_projections`; the check runs it.
# Calls 1-5 use the first draw; call 6 redraws (calls 6-10), call 11 redraws again (calls 11-12).
n_projections = 3
''',
}
