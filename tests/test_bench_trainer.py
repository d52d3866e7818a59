"""bench/trainer.py: one variant timed in this process through Trainer.train_step, and its table."""


import pytest
import torch
from scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench/trainer.py", "bench_trainer")


@pytest.mark.parametrize("changes", [{}, {"channels_last": True}])
def test_a_worker_times_the_trainers_own_step_and_counts_its_flops(bench, changes):
    threads = torch.get_num_threads()
    spec = {"changes": changes, "threads": 1, "size": 32, "steps": 1, "warmup": 1, "data": str(bench.PHOTOS)}
    try:
        result = bench.worker(spec)
    finally:
        torch.set_num_threads(threads)
    assert result["seconds_per_step"] > 0 and result["samples_per_step"] == 4
    assert result["flops_per_step"] > 1e8  # the small generator's forward and backward at 32 px


def test_the_table_puts_each_setting_against_fp32(bench):
    runs = {("fp32, 1 thread", 128): [{"seconds_per_step": 2.0, "flops_per_step": 4e9, "samples_per_step": 4}],
            ("2 gloo processes x 1 thread", 128): [{"seconds_per_step": 2.5, "flops_per_step": 8e9,
                                                   "samples_per_step": 8}]}
    lines = bench.table(runs, ["fp32, 1 thread", "2 gloo processes x 1 thread"], [128], {1: 10.0, 2: 18.0})
    assert lines[2] == "| 128 | fp32, 1 thread | 2.000 | 2.00 | 1.00 | 20 % |"
    assert lines[3] == "| 128 | 2 gloo processes x 1 thread | 2.500 | 3.20 | 1.60 | 16 % |"
