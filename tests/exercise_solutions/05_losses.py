"""Solutions to the exercises of notebooks/05_losses.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: return the mean |pred - target| over the hole's elements only
def hole_mean(pred, target, mask):
    error = (pred - target).abs() * mask                  # (B, 3, H, W), zero outside the hole
    return error.sum() / (mask.sum() * pred.shape[1])     # hole pixels x 3 channels
''',
    2: '''# Exercise 2: permute the spatial positions of a feature map, the same way in every channel
def shuffle_positions(features, seed=0):
    b, c, h, w = features.shape
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(h * w, generator=generator).to(features.device)
    return features.reshape(b, c, h * w)[:, :, order].reshape(b, c, h, w)
''',
    3: '''# Exercise 3: the mask-aware hinge loss of the critic (no R1)
def hinge_d_loss(logits_real, logits_fake, mask):
    y = fake_labels(mask, logits_fake)                    # (B, 1, h, w), 1 = fake
    real_term = F.relu(1 - logits_real).mean()
    fake_term = (y * F.relu(1 + logits_fake) + (1 - y) * F.relu(1 - logits_fake)).mean()
    return real_term + fake_term
''',
}
