"""Solutions to the exercises of notebooks/07_evaluation.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: a method fills every hole pixel with a constant error, so the mean squared error
# *inside the hole* is `hole_mse`. Write the PSNR (dB) of its composited output for a mask whose
# hole ratio is `ratio` (known pixels have zero error). Return a float.
def psnr_from_hole_mse(hole_mse, ratio):
    # Known pixels add zero error, so the whole-image MSE is the hole's MSE times the hole ratio.
    return float(10 * np.log10(1 / (ratio * hole_mse)))
''',
    2: '''# Exercise 2: for Gaussians with diagonal covariances (variances var1, var2, each a vector (D,)),
# the matrix square root is elementwise. Write the closed-form Fréchet distance.
def frechet_diagonal(mu1, var1, mu2, var2):
    # tr(S1 + S2 - 2 (S1 S2)^1/2) = sum of (sqrt(var1) - sqrt(var2))^2 for diagonal S1, S2.
    mu1, var1, mu2, var2 = map(np.asarray, (mu1, var1, mu2, var2))
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum())
''',
    3: '''# Exercise 3: reproduce scikit-image's *default* SSIM for two uint8 (H, W, 3) images: a uniform
# 7x7 window (every weight 1/49), SAMPLE covariances (divide by 48, not 49: multiply the
# population variances and covariance by 49/48), data range L = 255, the map cropped by 3 px per
# side and averaged over pixels and channels. Start from `my_ssim_map` in section 3.
def ssim_skimage_default(x, y):
    x, y = x / 255.0, y / 255.0  # data range 255 -> 1: C1, C2 scale with it
    w = np.full(7, 1 / 7)  # the 7x7 uniform window, separable

    def mean(a):
        return correlate1d(correlate1d(a, w, axis=0), w, axis=1)[3:-3, 3:-3]

    mu_x, mu_y = mean(x), mean(y)
    unbias = 49 / 48
    var_x = unbias * (mean(x * x) - mu_x**2)
    var_y = unbias * (mean(y * y) - mu_y**2)
    cov = unbias * (mean(x * y) - mu_x * mu_y)
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())
''',
}
