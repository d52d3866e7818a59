"""Tests of bidsnet_lib.cnn: GroupNorm sizing, the pre-activation block, the generic U and the CNN stream."""

import pytest
import torch
from torch import nn

from bidsnet_lib.cnn import (
    CNNStream,
    Downsample,
    PreActResBlock,
    Upsample,
    UStream,
    group_norm,
    num_groups,
)
from bidsnet_lib.plumbing import check_positive_int


@pytest.mark.parametrize(
    "channels,expected", [(1, 1), (3, 1), (8, 2), (16, 4), (24, 6), (32, 8), (64, 16), (128, 32), (512, 32)]
)
def test_num_groups_keeps_four_channels_a_group_and_divides(channels, expected):
    assert num_groups(channels) == expected
    assert channels % num_groups(channels) == 0


def test_num_groups_handles_awkward_counts():
    assert num_groups(36) == 9  # the largest divisor of 36 not above 36 // 4
    assert num_groups(7) == 1  # a prime below 2 * 4 gets a single group


@pytest.mark.parametrize("bad", [0, -4, 2.0, True, "8"])
def test_check_positive_int_rejects(bad):
    with pytest.raises(ValueError, match=r"width: got .*, expected a positive int"):
        check_positive_int("width", bad)


def test_num_groups_rejects_zero():
    with pytest.raises(ValueError, match="channels: got 0, expected a positive int"):
        num_groups(0)


def test_group_norm_is_batch_independent():
    norm = group_norm(16)
    x = torch.randn(4, 16, 8, 8)
    torch.testing.assert_close(norm(x)[1:2], norm(x[1:2]))


def test_preact_block_keeps_shape_and_uses_identity_shortcut():
    block = PreActResBlock(16, 16)
    x = torch.randn(2, 16, 9, 7)
    y = block(x)
    assert y.shape == x.shape
    assert isinstance(block.shortcut, nn.Identity)
    assert not torch.allclose(y, x)  # the residual branch does something


def test_preact_block_projects_shortcut_when_width_changes():
    block = PreActResBlock(8, 24)
    assert isinstance(block.shortcut, nn.Conv2d) and block.shortcut.kernel_size == (1, 1)
    assert block(torch.randn(1, 8, 5, 5)).shape == (1, 24, 5, 5)


def test_preact_block_normalises_before_each_convolution():
    block = PreActResBlock(8, 8)
    seen = []
    for name in ("norm1", "conv1", "norm2", "conv2"):
        getattr(block, name).register_forward_hook(lambda *_, n=name: seen.append(n))
    block(torch.randn(1, 8, 4, 4))
    assert seen == ["norm1", "conv1", "norm2", "conv2"]


def test_preact_block_same_in_train_and_eval_and_batch_independent():
    block = PreActResBlock(8, 8)
    x = torch.randn(3, 8, 6, 6)
    train_out = block.train()(x)
    eval_out = block.eval()(x)
    torch.testing.assert_close(train_out, eval_out)
    torch.testing.assert_close(block(x[:1]), eval_out[:1])


def test_preact_block_rejects_bad_widths():
    with pytest.raises(ValueError, match="out_channels: got 0, expected a positive int"):
        PreActResBlock(8, 0)


def test_down_and_upsample_shapes():
    x = torch.randn(2, 8, 12, 16)
    assert Downsample(8, 16)(x).shape == (2, 16, 6, 8)
    assert Upsample(8, 4)(x).shape == (2, 4, 24, 32)


def _tiny_ustream(stem_stride: int = 1) -> UStream:
    stem = nn.Conv2d(3, 8, stem_stride, stride=stem_stride)
    return UStream(stem, [8, 16, 32], [1, 2, 1], lambda width: PreActResBlock(width, width))


def test_ustream_exposes_the_contract():
    u = _tiny_ustream()
    assert u.num_scales == 2 and u.widths == (8, 16, 32) and u.depths == (1, 2, 1)
    assert [len(stage) for stage in u.encoder] == [1, 2]
    assert [len(stage) for stage in u.decoder] == [1, 2]
    assert len(u.bottleneck) == 1
    assert len(u.downsample) == len(u.upsample) == len(u.merge) == 2
    x = torch.randn(1, 16, 8, 8)
    assert u.downsample[1](x).shape == (1, 32, 4, 4)
    assert u.upsample[0](x).shape == (1, 8, 16, 16)
    assert u.merge[1](torch.randn(1, 32, 4, 4)).shape == (1, 16, 4, 4)


def test_ustream_forward_matches_a_manual_walk_of_its_attributes():
    u = _tiny_ustream().eval()
    x = torch.randn(2, 3, 16, 24)
    h = u.stem(x)
    skips = []
    for s in range(2):
        h = u.encoder[s](h)
        skips.append(h)
        h = u.downsample[s](h)
    h = u.bottleneck(h)
    for s in (1, 0):
        h = u.decoder[s](u.merge[s](torch.cat([u.upsample[s](h), skips[s]], dim=1)))
    torch.testing.assert_close(u(x), h)


def test_ustream_output_follows_the_stem_stride():
    assert _tiny_ustream(stem_stride=2)(torch.randn(1, 3, 32, 16)).shape == (1, 8, 16, 8)


def test_ustream_with_no_scales_is_stem_and_bottleneck():
    u = UStream(nn.Conv2d(3, 4, 1), [4], [2], lambda w: PreActResBlock(w, w))
    assert u.num_scales == 0 and len(u.encoder) == 0
    assert u(torch.randn(1, 3, 5, 7)).shape == (1, 4, 5, 7)


@pytest.mark.parametrize(
    "widths,depths,match",
    [
        ([8, 16], [1], "widths, depths: got 2 widths and 1 depths, expected the same length >= 1"),
        ([], [], "same length >= 1"),
        ([8, 0], [1, 1], r"widths\[1\]: got 0, expected a positive int"),
        ([8, 16], [1, -1], r"depths\[1\]: got -1, expected a positive int"),
        ([8, 16.0], [1, 1], r"widths\[1\]: got 16.0, expected a positive int"),
    ],
)
def test_ustream_rejects_bad_sizes(widths, depths, match):
    with pytest.raises(ValueError, match=match):
        UStream(nn.Identity(), widths, depths, lambda w: nn.Identity())


def test_ustream_rejects_bad_stem_and_block_factory():
    with pytest.raises(TypeError, match="stem: got function, expected an nn.Module"):
        UStream(lambda x: x, [4], [1], lambda w: nn.Identity())
    with pytest.raises(TypeError, match="make_block: got int, expected a callable"):
        UStream(nn.Identity(), [4], [1], 3)


def test_ustream_rejects_sizes_not_divisible_by_its_stride():
    with pytest.raises(ValueError, match=r"x: got features of \(12, 10\) after the stem, expected both sides multiples of 2\*\*num_scales = 4"):
        _tiny_ustream()(torch.randn(1, 3, 12, 10))


def test_cnn_stream_is_full_resolution_and_trains():
    stream = CNNStream(4, [8, 16, 16], [1, 1, 1])
    x = torch.randn(2, 4, 16, 12)
    y = stream(x)
    assert y.shape == (2, 8, 16, 12)
    y.square().mean().backward()
    missing = [n for n, p in stream.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_cnn_stream_rejects_bad_arguments():
    with pytest.raises(ValueError, match="in_channels: got 0, expected a positive int"):
        CNNStream(0, [8], [1])
    with pytest.raises(ValueError, match=r"widths: got \[\], expected at least one width"):
        CNNStream(4, [], [])
