"""Tests of bidsnet_lib.model: the config, BIDS-Net end to end, input checks, composite, summary,
the single-stream networks."""

import dataclasses
import itertools
import json

import pytest
import torch

from bidsnet_lib.ablate import ablation_variants
from bidsnet_lib.attention import ATTENTIONS, FastAttention
from bidsnet_lib.commands.model import main
from bidsnet_lib.fusion import FUSIONS, INTERACTIONS, SFF
from bidsnet_lib.model import (
    STREAMS,
    BIDSNet,
    BIDSNetConfig,
    SingleStream,
    UnifiedNet,
    build_model,
    check_inputs,
    composite,
    count_parameters,
    single_stream,
)

# Two scales, a few channels: every code path of the full model at a fraction of small()'s cost.
TINY = BIDSNetConfig(width=8, channel_mults=(1, 2, 2), cnn_depths=(1, 1), trans_depths=(1, 1),
                     cnn_bottleneck_depth=1, trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=16)


def _inputs(batch=2, height=16, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g)
    mask = (torch.rand(batch, 1, height, width, generator=g) > 0.6).float()
    return image, mask


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return BIDSNet(TINY)


@pytest.mark.parametrize("height,width", [(67, 45), (16, 16), (8, 23)])
def test_output_shape_equals_input_shape_and_lies_in_unit_range(tiny_model, height, width):
    image, mask = _inputs(1, height, width)
    out = tiny_model(image, mask)
    assert out.shape == image.shape
    assert out.min() >= 0 and out.max() <= 1


def test_prediction_ignores_pixels_under_the_hole(tiny_model):
    image, mask = _inputs()
    tampered = torch.where(mask.bool(), torch.rand_like(image), image)
    tiny_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(image, mask), tiny_model(tampered, mask))


VARIANTS = list(itertools.product(FUSIONS, INTERACTIONS, (0.25, 0.5), ATTENTIONS))


@pytest.mark.parametrize("fusion,interaction,share,attention", VARIANTS)
def test_every_variant_runs_and_every_parameter_gets_a_gradient(fusion, interaction, share, attention):
    config = dataclasses.replace(TINY, fusion=fusion, interaction=interaction, cnn_share=share, attention=attention)
    model = BIDSNet(config)
    image, mask = _inputs(2, 16, 16)
    out = model(image, mask)
    assert out.shape == image.shape and torch.isfinite(out).all()
    out.mean().backward()
    stale = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert stale == []
    # A gradient that is exactly zero everywhere would mean a parameter cut off from the loss.
    assert [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0] == []


def test_composite_keeps_known_pixels_bit_exactly():
    image, mask = _inputs(2, 9, 11)
    pred = torch.rand_like(image)
    out = composite(pred, image, mask)
    known, hole = ~mask.bool().expand_as(image), mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])
    assert torch.equal(out[hole], pred[hole])
    assert torch.equal(composite(pred, image, mask.bool()), out)


def test_composite_rejects_mismatched_prediction():
    image, mask = _inputs()
    with pytest.raises(ValueError, match=r"pred: got shape \(2, 3, 8, 8\), expected the image shape \(2, 3, 16, 16\)"):
        composite(torch.rand(2, 3, 8, 8), image, mask)


def test_eval_mode_is_deterministic(tiny_model):
    image, mask = _inputs()
    tiny_model.eval()
    with torch.no_grad():
        assert torch.equal(tiny_model(image, mask), tiny_model(image, mask))


def test_batch_elements_do_not_interact(tiny_model):
    image, mask = _inputs(3)
    tiny_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(image, mask)[1:2], tiny_model(image[1:2], mask[1:2]))


def test_bf16_autocast_forward_is_finite(tiny_model):
    image, mask = _inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(image, mask)
    assert out.shape == image.shape and torch.isfinite(out.float()).all()


def test_sff_weights_are_kept_after_a_forward():
    model = BIDSNet(TINY)
    model(*_inputs(2))
    sffs = [m for m in model.modules() if isinstance(m, SFF)]
    assert len(sffs) == 2 * (TINY.num_scales + 1)  # both directions at every scale and the bottleneck
    assert all(m.last_weights is not None and m.last_weights.shape == (2, 2, m.channels) for m in sffs)


def test_redraw_features_reaches_every_fast_attention(monkeypatch):
    model = BIDSNet(TINY)
    count = sum(isinstance(m, FastAttention) for m in model.modules())
    assert count > 0
    calls = []
    monkeypatch.setattr(FastAttention, "redraw_features", lambda self: calls.append(self))
    model.redraw_features()
    assert len(calls) == count


def test_small_preset_runs():
    model = BIDSNet(BIDSNetConfig.small()).eval()
    image, mask = _inputs(1, 64, 64)
    with torch.no_grad():
        assert model(image, mask).shape == image.shape


def test_paper_preset_builds_runs_and_is_larger():
    paper = BIDSNet(BIDSNetConfig.paper()).eval()
    counts, small_counts = count_parameters(paper), count_parameters(BIDSNet(BIDSNetConfig.small()))
    assert counts["total"] == sum(p.numel() for p in paper.parameters())
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert 2e6 < counts["total"] < 50e6 and small_counts["total"] < counts["total"] / 4
    with torch.no_grad():
        assert paper(*_inputs(1, 64, 64)).shape == (1, 3, 64, 64)


def test_equal_split_balances_the_streams():
    config = BIDSNetConfig.paper()
    assert config.cnn_widths == config.trans_widths == (32, 64, 128, 256)
    skewed = dataclasses.replace(config, cnn_share=0.25)
    assert [c + t for c, t in zip(skewed.cnn_widths, skewed.trans_widths, strict=True)] == [64, 128, 256, 512]
    assert skewed.cnn_widths == (16, 32, 64, 128)


def test_stride_and_minimum_size(tiny_model):
    assert TINY.stride == 2**2 * 2 and BIDSNetConfig.paper().stride == 16
    assert tiny_model(*_inputs(1, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="image: got 7x12, expected both sides at least 8 pixels"):
        tiny_model(*_inputs(1, 7, 12))


@pytest.mark.parametrize("downsample", [1, 4])
def test_other_transformer_resolutions_and_bool_masks(downsample):
    model = BIDSNet(dataclasses.replace(TINY, trans_downsample=downsample))
    image, mask = _inputs(1, 19, 21)
    assert model(image, mask.bool()).shape == image.shape


def test_state_dict_and_config_rebuild_the_same_model(tiny_model):
    rebuilt = BIDSNet(BIDSNetConfig.from_dict(tiny_model.config.to_dict()))
    rebuilt.load_state_dict(tiny_model.state_dict())  # strict: same names and shapes, buffers too
    image, mask = _inputs()
    tiny_model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(image, mask), tiny_model(image, mask))


def _bad(**changes):
    image, mask = _inputs(2, 16, 16)
    return changes.get("image", image), changes.get("mask", mask)


BAD_INPUTS = {
    "rank": (_bad(image=torch.rand(3, 16, 16)), r"image: got shape \(3, 16, 16\), expected \(B, 3, H, W\)"),
    "channels": (_bad(image=torch.rand(2, 4, 16, 16)), r"image: got shape \(2, 4, 16, 16\), expected \(B, 3, H, W\)"),
    "mask channels": (_bad(mask=torch.zeros(2, 3, 16, 16)), r"mask: got shape \(2, 3, 16, 16\), expected \(B, 1, H, W\)"),
    "mismatch": (_bad(mask=torch.zeros(2, 1, 16, 8)), r"mask: got shape \(2, 1, 16, 8\) for image shape \(2, 3, 16, 16\), expected \(2, 1, 16, 16\)"),
    "batch": (_bad(mask=torch.zeros(1, 1, 16, 16)), r"mask: got shape \(1, 1, 16, 16\) for image shape"),
    "non-binary": (_bad(mask=torch.full((2, 1, 16, 16), 0.5)), r"mask: got values other than 0 and 1, expected 0 = known, 1 = hole"),
    "above 1": (_bad(image=torch.full((2, 3, 16, 16), 255.0)), r"image: got values in \[255, 255\], expected values in \[0, 1\]"),
    "below 0": (_bad(image=torch.full((2, 3, 16, 16), -0.5)), r"image: got values in \[-0.5, -0.5\]"),
    "nan": (_bad(image=torch.full((2, 3, 16, 16), float("nan"))), "image: got NaN, expected values in"),
    "integer": (_bad(image=torch.zeros(2, 3, 16, 16, dtype=torch.uint8)), "image: got dtype torch.uint8, expected a float tensor in \\[0, 1\\]"),
    "empty batch": ((torch.rand(0, 3, 16, 16), torch.zeros(0, 1, 16, 16)), r"image: got an empty batch, shape \(0, 3, 16, 16\), expected B >= 1"),
    "too small": ((torch.rand(1, 3, 4, 16), torch.zeros(1, 1, 4, 16)), "image: got 4x16, expected both sides at least 8"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_value_error_naming_the_problem(tiny_model, case):
    (image, mask), match = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=match):
        tiny_model(image, mask)


def test_non_tensor_inputs_raise_type_error():
    with pytest.raises(TypeError, match="mask: got list, expected a torch.Tensor"):
        check_inputs(torch.rand(1, 3, 8, 8), [[0]])
    with pytest.raises(TypeError, match="config: got dict, expected a BIDSNetConfig"):
        BIDSNet(TINY.to_dict())


@pytest.mark.parametrize("config", [BIDSNetConfig.paper(), BIDSNetConfig.small(), TINY], ids=["paper", "small", "tiny"])
def test_config_round_trips_through_plain_data(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert BIDSNetConfig.from_dict(data) == config


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"BIDSNetConfig keys: got unknown \['depth'\], expected some of \["):
        BIDSNetConfig.from_dict({**TINY.to_dict(), "depth": 3})
    with pytest.raises(TypeError, match="data: got list, expected a dict"):
        BIDSNetConfig.from_dict([])


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"width": 0}, "width: got 0, expected a positive int"),
        ({"cnn_share": 1.0}, r"cnn_share: got 1.0, expected a number in \(0, 1\)"),
        ({"cnn_share": 0.01}, "leaving a stream empty at scale 0"),
        ({"fusion": "mul"}, r"fusion: got 'mul', expected one of \['add', 'concat', 'sff'\]"),
        ({"interaction": "both"}, r"interaction: got 'both', expected one of \[.*'bidirectional'.*\]"),
        ({"attention": "linear"}, r"attention: got 'linear', expected one of \['favor', 'favor\+\+', 'softmax'\]"),
        ({"channel_mults": (1, 2)}, r"channel_mults: got 2 entries \(1, 2\), expected num_scales \+ 1 = 3"),
        ({"trans_depths": (1,)}, "cnn_depths, trans_depths: got 2 and 1 entries, expected one per scale each"),
        ({"cnn_depths": ()}, "cnn_depths: got \\(\\), expected a non-empty tuple of ints"),
        ({"cnn_depths": (1, 0)}, r"cnn_depths\[1\]: got 0, expected a positive int"),
        ({"redraw_interval": 0}, "redraw_interval: got 0, expected a positive int"),
        ({"ortho": "yes"}, "ortho: got 'yes', expected a bool"),
        ({"nb_features": 0}, "nb_features: got 0, expected a positive int"),
    ],
)
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **changes)


def test_config_is_frozen_and_takes_lists():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.width = 16
    assert dataclasses.replace(TINY, cnn_depths=[2, 2]).cnn_depths == (2, 2)


def test_summary_prints_every_preset_and_variant(capsys):
    assert main(["--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["config", "total", "cnn", "transformer", "fusion", "head"]
    names = [line.split()[0] + " " + line.split()[1] for line in lines[1:]]
    assert "paper interaction=none" in names and "small attention=softmax" in names
    # small is the ablations' reference (Telea fill, residual head): the paper's start is its variant.
    full_names = {line.rsplit(None, 5)[0] for line in lines[1:]}
    assert {"small input_fill=zeros, output=image", "paper input_fill=telea, output=residual"} <= full_names
    assert "small input_fill=telea, output=residual" not in full_names
    assert len(lines) == 1 + 2 * (1 + len(ablation_variants(TINY)))


def test_a_residual_model_starts_as_its_telea_fill_and_keeps_a_zeros_fill_exact():
    from bidsnet_lib.baselines import make_baseline

    config = dataclasses.replace(BIDSNetConfig.small(), input_fill="telea", output="residual")
    image = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.7).float()
    with torch.no_grad():
        out = BIDSNet(config).eval()(image, mask)
    telea = make_baseline("telea", radius=3)(image, mask)
    torch.testing.assert_close(composite(out, image, mask), telea)  # zero-initialised correction
    zeros = dataclasses.replace(config, input_fill="zeros")
    with torch.no_grad():
        torch.testing.assert_close(BIDSNet(zeros).eval()(image, mask), image * (1 - mask))


@pytest.mark.parametrize("fill, output, form", [("telea", "residual", "Telea fill + residual head"),
                                                ("zeros", "image", "zero fill + image head"),
                                                ("telea", "image", "Telea fill + image head")])
def test_form_names_the_input_fill_and_the_head(fill, output, form):
    assert dataclasses.replace(BIDSNetConfig.small(), input_fill=fill, output=output).form == form


@pytest.mark.parametrize("field, value", [("input_fill", "lama"), ("output", "delta")])
def test_input_fill_and_output_are_checked(field, value):
    with pytest.raises(ValueError, match=f"{field}: got .*, expected one of"):
        dataclasses.replace(BIDSNetConfig.small(), **{field: value})


def _size(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_single_streams_match_the_small_preset_within_ten_percent():
    config = BIDSNetConfig.small()
    target = _size(BIDSNet(config))
    image, mask = _inputs(2, 30, 28)
    models = {kind: single_stream(kind, config, target) for kind in STREAMS}
    for kind, model in models.items():
        assert abs(_size(model) - target) <= 0.1 * target, kind
        out = model(image, mask)  # padded inside to 32 x 32, cropped back
        assert out.shape == (2, 3, 30, 28) and 0 <= out.min() and out.max() <= 1
        out.mean().backward()
        assert all(p.grad is not None for p in model.parameters()), kind
    assert isinstance(models["cnn"].up, torch.nn.Identity) and models["transformer"].stream.patch == 2
    # The nearest base width: one step wider or narrower is further from the target.
    base = models["cnn"].stream.widths[0]
    for other in (base - 1, base + 1):
        neighbour = SingleStream("cnn", config, tuple(other * m for m in config.channel_mults))
        assert abs(_size(neighbour) - target) >= abs(_size(models["cnn"]) - target)


@pytest.mark.parametrize("kind", STREAMS)
def test_a_single_stream_shares_bidsnets_input_and_output(kind):
    """With a residual head (zero-initialised) both networks start as their input fill: the same
    checks, fill, padding, crop and head code; a zeros fill then keeps only the known pixels."""
    for fill in ("telea", "zeros"):
        config = dataclasses.replace(TINY, input_fill=fill, output="residual")
        image, mask = _inputs(2, 20, 27)
        with torch.no_grad():
            single = SingleStream(kind, config, (8, 16, 16)).eval()(image, mask)
            torch.testing.assert_close(single, BIDSNet(config).eval()(image, mask), rtol=0, atol=0)
    torch.testing.assert_close(single, image * (1 - mask))
    assert SingleStream.forward is BIDSNet.forward  # one implementation, not a copy
    with pytest.raises(ValueError, match="image: got 7x12, expected both sides at least 8 pixels"):
        SingleStream(kind, TINY, (8, 16, 16))(*_inputs(1, 7, 12))


def test_single_stream_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"kind: got 'both', expected one of \['cnn', 'transformer'\]"):
        SingleStream("both", TINY, (8, 8, 8))
    with pytest.raises(TypeError, match="config: got dict, expected a BIDSNetConfig"):
        SingleStream("cnn", {}, (8, 8, 8))
    for target in (0, True, 2.5):
        with pytest.raises(ValueError, match=f"target: got {target!r}, expected a positive int"):
            single_stream("cnn", TINY, target)


@pytest.mark.parametrize("changes", [{"streams": "cnn"}, {"streams": "transformer"}, {"interaction": "unified"}])
def test_build_model_sizes_each_rival_to_bidsnets_parameter_count(changes):
    """#26: the streams study and the unified-path rival are config values, at equal parameters."""
    config = dataclasses.replace(BIDSNetConfig.small(), **changes)
    target = _size(BIDSNet(BIDSNetConfig.small()))
    model = build_model(config)
    assert isinstance(model, UnifiedNet if "interaction" in changes else SingleStream)
    assert model.config == config and abs(_size(model) - target) <= 0.1 * target
    assert count_parameters(model) == {"total": _size(model)}
    image, mask = _inputs(2, 30, 28)
    out = model(image, mask)
    assert out.shape == (2, 3, 30, 28) and 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert type(build_model(BIDSNetConfig.small())) is BIDSNet


def test_a_unified_block_holds_a_convolution_and_an_attention_on_the_same_channels():
    model = build_model(dataclasses.replace(TINY, interaction="unified"))
    blocks = [m for m in model.modules() if type(m).__name__ == "UnifiedBlock"]
    assert len(blocks) == len(TINY.cnn_depths) * 2 + 1  # encoder and decoder stages, and the bottleneck
    for block in blocks:
        assert block.conv.conv1.in_channels == block.attention.dim  # one set of channels, two operations
    with torch.no_grad():  # the attention's change reaches the output: it is on the path, not beside it
        image, mask = _inputs(1, 16, 16)
        before = model(image, mask)
        for block in blocks:
            torch.nn.init.normal_(block.attention.out.weight)
        assert not torch.equal(before, model(image, mask))


def test_rival_configs_are_checked_and_bidsnet_refuses_them():
    with pytest.raises(ValueError, match=r"streams: got 'one', expected one of \['cnn', 'dual', 'transformer'\]"):
        dataclasses.replace(TINY, streams="one")
    with pytest.raises(ValueError, match="interaction: got 'unified' with streams='cnn', expected streams='dual'"):
        dataclasses.replace(TINY, streams="cnn", interaction="unified")
    with pytest.raises(ValueError, match="expected BIDS-Net's two streams; build_model"):
        BIDSNet(dataclasses.replace(TINY, streams="transformer"))


def test_a_rivals_inference_checkpoint_rebuilds_the_same_network(tmp_path):
    from bidsnet_lib.checkpoint import INFERENCE_FORMAT, load_inference_model, save_checkpoint

    config = dataclasses.replace(TINY, interaction="unified")
    model = build_model(config).eval()
    save_checkpoint({"model": model.state_dict(), "config": config.to_dict(), "meta": {}},
                    tmp_path / "unified.pt", INFERENCE_FORMAT)
    loaded, _ = load_inference_model(tmp_path / "unified.pt", device="cpu")
    image, mask = _inputs(1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, mask), model(image, mask), rtol=0, atol=0)


def test_a_given_fill_replaces_the_input_fill():
    """#28: coarse-to-fine inference hands a finer level the coarser level's fill."""
    config = dataclasses.replace(TINY, input_fill="telea", output="residual")  # zero head: out = the fill
    model = build_model(config).eval()
    image, mask = _inputs(2, 16, 16)
    given = torch.full_like(image, 0.25)
    with torch.no_grad():
        out = model(image, mask, fill=given)
        torch.testing.assert_close(out, image * (1 - mask) + 0.25 * mask)
        assert not torch.equal(out, model(image, mask))  # without it: Telea's fill
    with pytest.raises(ValueError, match=r"fill: got \(2, 3, 8, 8\), expected the image's shape \(2, 3, 16, 16\)"):
        model(image, mask, fill=given[..., :8, :8])
