"""Solutions to the exercises of notebooks/03_fast_attention.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: Colab's T4 is sold as "16 GB" but exposes about 15 GiB to PyTorch. Find the side
# S of the largest square feature map (N = S * S tokens) whose exact N x N attention matrix, for
# ONE head in fp32 (4 bytes a number), fits in 15 GiB = 15 * 2**30 bytes. Assign the integer to
# `largest_side`.
# S**4 * 4 <= 15 * 2**30, so S <= (15 * 2**28) ** (1/4) = 251.9...: 251 x 251 fits, 252 x 252 does not.
largest_side = 1
while ((largest_side + 1) ** 2) ** 2 * 4 <= 15 * 2**30:
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
    4: '''# Exercise 4: write favorpp_a(q, k), FAVOR++'s optimal A for ONE head: q (N, d) queries and
# k (M, d) keys, unscaled (x' = x d^-1/4 inside). Compute rho = mean over all N * M pairs of
# |q'_i + k'_j|^2 / d in O(N + M) (no N x M tensor), then the closed form of section 5. Return a
# Python float.
def favorpp_a(q, k):
    d = q.shape[-1]
    x, y = q.double() * d**-0.25, k.double() * d**-0.25
    # mean |x_i + y_j|^2 = mean |x_i|^2 + mean |y_j|^2 + 2 mean(x) . mean(y)
    rho = (x.square().sum(-1).mean() + y.square().sum(-1).mean() + 2 * x.mean(0) @ y.mean(0)) / d
    rho = float(rho)
    return (1 - 2 * rho - math.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16
''',
}
