"""bidsnet_lib.train (utils): the EMA and its warm-up, RNG states, weight digests, sample grids, the
validation picks, the metrics log and the attention redraw counters."""

import io
import json
import random

import numpy as np
import pytest
import torch

from bidsnet_lib.attention import FastAttention
from bidsnet_lib.train import (
    ema_decay,
    read_metrics,
    redraw_counters,
    rng_state,
    sample_grid,
    set_rng_state,
    spread_items,
    update_ema,
    weights_digest,
)

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------ moved from test_train.py
def test_ema_decay_warms_up_and_the_update_is_a_lerp():
    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(8, 0.999) == pytest.approx(0.5)
    assert ema_decay(10**6, 0.999) == 0.999
    ema, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.9 * ema.weight.detach().clone() + 0.1 * model.weight.detach()
    update_ema(ema, model, 0.9)
    torch.testing.assert_close(ema.weight.detach(), expected)


def test_weights_digest_sees_one_changed_bit():
    model = torch.nn.Linear(3, 2)
    before = weights_digest(model)
    with torch.no_grad():
        model.bias[0] = torch.nextafter(model.bias[0], torch.tensor(1.0))
    assert weights_digest(model) != before and len(before) == 64


def test_validation_picks_show_every_photo_with_masks_from_across_the_set():
    picks = spread_items(110, 4, 8)
    assert [k % 4 for k in picks] == [0, 1, 2, 3, 0, 1, 2, 3] and len(set(picks)) == 8
    assert max(picks) > 90 and all(0 <= k < 110 for k in picks)
    assert spread_items(5, 5, 8) == [0, 1, 2, 3, 4]


def test_sample_grid_has_four_columns():
    model = lambda image, mask: torch.zeros_like(image)  # noqa: E731
    grid = sample_grid(model, torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16))
    assert grid.shape == (3, 2 * 18 + 2, 4 * 18 + 2)


# ------------------------------------------------------------------------------ EMA, digests, grids
def test_ema_copies_buffers_and_a_small_decay_follows_the_model():
    ema, model = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(5.0)
    update_ema(ema, model, 0.0)
    torch.testing.assert_close(ema.weight.detach(), model.weight.detach())
    assert torch.equal(ema.running_mean, model.running_mean)  # a buffer: copied, not averaged
    assert ema_decay(0, 0.05) == 0.05  # the warm-up never raises a decay above the one asked for


def test_weights_digest_covers_every_module_in_order():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert weights_digest(a, b) not in (weights_digest(a), weights_digest(b))
    assert weights_digest(a, b) != weights_digest(b, a)
    twin = torch.nn.Linear(2, 2)
    twin.load_state_dict(a.state_dict())
    assert weights_digest(twin) == weights_digest(a)


def test_sample_grid_rows_are_input_mask_output_target():
    image = torch.full((1, 3, 4, 4), 0.25)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    grid = sample_grid(lambda i, m: torch.full_like(i, 0.75), image, mask)  # (3, 8, 26): padding 2
    tiles = [grid[:, 2:6, 2 + 6 * c:6 + 6 * c] for c in range(4)]
    assert (tiles[0][:, :2] == 1).all() and (tiles[0][:, 2:] == 0.25).all()  # hole painted white
    assert (tiles[1][:, :2] == 1).all() and (tiles[1][:, 2:] == 0).all()  # the mask
    assert (tiles[2][:, :2] == 0.75).all() and (tiles[2][:, 2:] == 0.25).all()  # output composited
    assert (tiles[3] == 0.25).all()  # the target


def test_spread_items_with_one_photo_and_no_picks():
    assert spread_items(10, 1, 5) == [0, 2, 4, 6, 8]
    assert spread_items(10, 3, 0) == []


# ------------------------------------------------------------------------------ RNG states
def test_rng_state_restores_torch_python_and_numpy_streams():
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    state = rng_state(CPU)
    first = (torch.rand(3), random.random(), np.random.rand(3))
    set_rng_state(state, CPU)
    again = (torch.rand(3), random.random(), np.random.rand(3))
    assert torch.equal(first[0], again[0]) and first[1] == again[1] and np.array_equal(first[2], again[2])
    assert "cuda" not in state


def test_rng_state_is_loadable_with_weights_only():
    state = rng_state(CPU)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    np.random.rand(5)  # move the numpy stream on
    set_rng_state(loaded, CPU)
    expected = np.random.rand(2)
    set_rng_state(state, CPU)
    assert np.array_equal(np.random.rand(2), expected)


# ------------------------------------------------------------------------------ logs and counters
def test_read_metrics_reads_every_row_and_skips_blank_lines(tmp_path):
    rows = [{"step": 2, "g_total": 1.5}, {"step": 3, "val_psnr": 20.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_metrics(tmp_path) == rows
    with pytest.raises(FileNotFoundError, match=r"run_dir: .*nowhere.metrics.jsonl does not exist"):
        read_metrics(tmp_path / "nowhere")


def test_redraw_counters_name_every_fast_attention():
    model = torch.nn.ModuleDict({"a": FastAttention(4, 8, redraw_interval=5),
                                 "b": torch.nn.Sequential(FastAttention(4, 8, redraw_interval=5)),
                                 "c": torch.nn.Linear(2, 2)}).train()
    q = torch.rand(1, 1, 6, 4)
    for _ in range(3):
        model["a"](q, q, q)
    model["b"][0](q, q, q)
    assert redraw_counters(model) == {"a": 3, "b.0": 1}
    assert redraw_counters(torch.nn.Linear(2, 2)) == {}
