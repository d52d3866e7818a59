"""Solutions to the exercises of notebooks/06_training.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: write warmup_decay(step, decay) = the EMA decay the library uses at `step`
# (section 3: the smaller of `decay` and (1 + step) / (10 + step)), without calling ema_decay.
# Then find the first step at which it reaches 0.99 for decay=0.999; assign it to reach_099.
def warmup_decay(step, decay):
    return min(decay, (1 + step) / (10 + step))


# (1 + s) / (10 + s) >= 0.99  <=>  1 + s >= 9.9 + 0.99 s  <=>  0.01 s >= 8.9  <=>  s >= 890
reach_099 = next(s for s in itertools.count() if warmup_decay(s, 0.999) >= 0.99)
''',
    2: '''# Exercise 2: a run with 17 photos, batch size 4 per process and 1 process is killed and resumed
# from a checkpoint at step 30. Write resume_key(step, batch_size, n_photos) returning the first
# (epoch, index) key the resumed run draws: the sample number is step * batch_size; an epoch
# holds n_photos samples. Build it with EpochSampler(n_photos, seed=0, start=...) and next(iter(...)).
def resume_key(step, batch_size, n_photos):
    return next(iter(EpochSampler(n_photos, seed=0, start=step * batch_size)))
''',
    3: '''# Exercise 3: write checkpoint_step(path) returning the step stored in a training checkpoint, or
# None when the file is missing or is not one of ours (truncated, someone else's, ...). Use
# load_checkpoint and catch only the errors it raises for those cases (FileNotFoundError and
# CheckpointError): a bug elsewhere must still surface.
def checkpoint_step(path):
    try:
        return load_checkpoint(path, TRAIN_FORMAT, mmap=True)["step"]
    except (FileNotFoundError, CheckpointError):
        return None
''',
}
