"""bidsnet_lib.ablate (studies): the studies as data (variants, claims, rivals), choosing them by
name, and the settings every run of an invocation shares."""

import dataclasses
import json

import pytest
import torch

from bidsnet_lib.ablate import (
    DEFAULT_STEPS,
    LPIPS_MODES,
    STUDIES,
    STUDY_NAMES,
    TRAIN_IMAGES,
    AblationSettings,
    Study,
    Variant,
    ablation_variants,
    reference_model,
    resolve_studies,
    study_variants,
)
from bidsnet_lib.baselines import make_baseline
from bidsnet_lib.model import (
    BIDSNet,
    BIDSNetConfig,
    SingleStream,
    UnifiedNet,
    build_model,
    composite,
    count_parameters,
)
from bidsnet_lib.train import TrainConfig

# Two scales, a few channels (as in test_model.py): the variants are configs, no model is built.
TINY = BIDSNetConfig(width=8, channel_mults=(1, 2, 2), cnn_depths=(1, 1), trans_depths=(1, 1),
                     cnn_bottleneck_depth=1, trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=16)


# ------------------------------------------------------------------------------ moved from test_model.py, test_ablate.py
def test_ablation_variants_are_the_studies_variants():
    """#13: the ablations are defined once, in bidsnet_lib.ablate (studies)."""
    variants = ablation_variants(TINY)
    expected = {v.name for study in STUDIES.values() for v in study.variants if v.config(TINY) != TINY}
    assert set(variants) == expected
    assert {"fusion=add", "interaction=none", "cnn_share=0.25", "attention=favor++", "nb_features=256"} <= expected
    for name, config in variants.items():
        assert config != TINY, name
        differing = {f.name for f in dataclasses.fields(TINY) if getattr(config, f.name) != getattr(TINY, f.name)}
        assert differing <= {"fusion", "interaction", "cnn_share", "attention", "nb_features", "input_fill", "streams",
                             "output"}, name


def test_settings_validate():
    for changes, match in (({"seeds": 1}, "seeds: got 1, expected an int >= 2"),
                           ({"steps": 0}, "steps: got 0"), ({"limit": 0}, "limit: got 0"),
                           ({"lpips": "vgg"}, r"expected one of \['off', 'alex', 'random'\]"),
                           ({"lpips": "random", "lpips_weights": "x.pth"}, "lpips_weights")):
        with pytest.raises(ValueError, match=match):
            AblationSettings(**changes)
    quick = AblationSettings.quick_preset()
    assert (quick.steps, quick.seeds, quick.batch_size, quick.size, quick.limit, quick.quick) == (2, 2, 2, 64, 1, True)
    assert AblationSettings(lpips="random").metrics == ["psnr", "ssim", "lpips"]



# ------------------------------------------------------------------------------ variants and studies
def test_a_variant_changes_only_its_fields_and_is_labelled_by_its_values():
    variant = Variant("input_fill=telea, output=residual", (("input_fill", "telea"), ("output", "residual")))
    config = variant.config(TINY)
    assert (config.input_fill, config.output) == ("telea", "residual")
    assert dataclasses.replace(config, input_fill=TINY.input_fill, output=TINY.output) == TINY
    assert variant.label == "telea, residual" and Variant("reference", ()).config(TINY) == TINY
    with pytest.raises(ValueError, match="fusion: got 'mean'"):
        Variant("fusion=mean", (("fusion", "mean"),)).config(TINY)


def test_the_reference_is_the_default_recipes_model_and_every_studys_winner():
    """#26 §1: the studies vary the shipped configuration, not the paper's zero-filled start."""
    reference = reference_model()
    assert reference == TrainConfig.small().model
    assert (reference.input_fill, reference.output) == ("telea", "residual")
    assert dataclasses.replace(reference, input_fill="zeros", output="image") == BIDSNetConfig.small()
    for study in STUDIES.values():
        winner = next(v for v in study.variants if v.name == study.winner)
        assert winner.config(reference) == reference, study.name
        assert all(v.config(reference) != reference for v in study.variants if v is not winner), study.name


def test_every_study_is_well_formed_and_every_variant_builds_a_valid_config():
    assert STUDY_NAMES == (*STUDIES, "all") and all(name == study.name for name, study in STUDIES.items())
    for study in STUDIES.values():
        names = [v.name for v in study.variants]
        assert len(set(names)) == len(names) and study.winner in names, study.name
        assert study.title and study.claim, study.name
        for variant in study.variants:
            assert isinstance(variant.config(reference_model()), BIDSNetConfig)


def test_every_variant_starts_as_the_reference_does_but_the_start_studys_rivals():
    """A fair comparison: the rival networks (SingleStream, UnifiedNet) honour the reference's
    Telea fill and residual head, so every variant, untrained, returns the Telea fill exactly;
    only the start study's rivals start otherwise."""
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32)
    mask = (torch.rand(2, 1, 32, 32) > 0.7).float()
    telea = make_baseline("telea", radius=3)(image, mask)
    other_starts = set()
    for study in STUDIES.values():
        for variant in study.variants:
            config = variant.config(reference_model())
            with torch.no_grad():
                out = composite(build_model(config).eval()(image, mask), image, mask)
            if (config.input_fill, config.output) == ("telea", "residual"):
                torch.testing.assert_close(out, telea, msg=variant.name)
            else:
                assert not torch.allclose(out, telea), variant.name
                other_starts.add(variant.name)
    assert other_starts == {"input_fill=zeros, output=image", "input_fill=telea, output=image"}


def test_the_rivals_at_equal_parameters_are_variants_like_the_others():
    """#26: the one-stream rivals (streams) and the unified path (interaction) are a config value
    each, which build_model turns into their own network at about the reference's parameter count."""
    assert [v.changes for v in STUDIES["interaction"].variants] == [
        (("interaction", value),) for value in ("bidirectional", "cnn_to_trans", "trans_to_cnn", "none", "unified")]
    assert [v.changes for v in STUDIES["streams"].variants] == [
        (("streams", value),) for value in ("dual", "cnn", "transformer")]
    reference = count_parameters(build_model(reference_model()))["total"]
    rivals = {"streams=cnn": SingleStream, "streams=transformer": SingleStream, "interaction=unified": UnifiedNet}
    for study in ("streams", "interaction"):
        for variant in STUDIES[study].variants:
            model = build_model(variant.config(reference_model()))
            assert type(model) is rivals.get(variant.name, BIDSNet), variant.name
            if variant.name in rivals:
                assert abs(count_parameters(model)["total"] - reference) <= 0.1 * reference, variant.name
            if type(model) is SingleStream:
                assert variant.changes == (("streams", model.kind),)


def test_a_study_must_name_its_winner_and_matches_among_its_variants():
    variants = (Variant("a", ()), Variant("b", (("fusion", "add"),)))
    with pytest.raises(ValueError, match=r"study 'x': \['c'\] are not among its variants \['a', 'b'\]"):
        Study("x", "X", "claim", variants, winner="c")
    with pytest.raises(ValueError, match=r"study 'x': \['d'\] are not among its variants"):
        Study("x", "X", "claim", variants, winner="a", match=("d",))


def test_rivals_split_into_those_to_beat_and_those_to_match():
    study = STUDIES["nb_features"]
    present = ["nb_features=16", "nb_features=72", "nb_features=256", "attention=softmax"]
    assert study.rivals(present) == (["nb_features=16"], ["nb_features=256", "attention=softmax"])
    assert STUDIES["fusion"].rivals(["fusion=sff", "fusion=add", "fusion=concat"]) == (["fusion=add", "fusion=concat"], [])


def test_resolve_studies_by_name_or_all():
    assert resolve_studies("all") == list(STUDIES.values())
    assert resolve_studies("start") == [STUDIES["start"]]
    with pytest.raises(ValueError, match=r"study: got 'all ', expected one of \['start', 'streams', .*, 'all'\]"):
        resolve_studies("all ")


def test_study_variants_in_quick_mode_are_the_winner_and_the_first_rival():
    study = STUDIES["interaction"]
    assert study_variants(study, quick=False) == list(study.variants)
    assert [v.name for v in study_variants(study, quick=True)] == ["interaction=bidirectional", "interaction=cnn_to_trans"]
    start = STUDIES["start"]  # the winner (the reference) last: the paper's start and it, in study order
    assert [v.name for v in study_variants(start, quick=True)] == ["input_fill=zeros, output=image",
                                                                    "input_fill=telea, output=residual"]


def test_ablation_variants_leave_out_unchanged_configs_and_keep_the_first_of_a_name():
    variants = ablation_variants(reference_model())
    assert "fusion=sff" not in variants and "input_fill=telea, output=residual" not in variants
    assert variants["input_fill=zeros, output=image"] == BIDSNetConfig.small()
    assert variants["attention=softmax"].attention == "softmax"  # in two studies, one entry
    assert ablation_variants(dataclasses.replace(TINY, fusion="add"))["fusion=sff"].fusion == "sff"


# ------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("changes,error,message", [
    ({"batch_size": 0}, ValueError, "batch_size: got 0, expected an int >= 1"),
    ({"size": 16}, ValueError, "size: got 16, expected an int >= 32"),
    ({"steps": True}, TypeError, "steps: got True, expected an int >= 1"),
    ({"seeds": 2.0}, TypeError, "seeds: got 2.0, expected an int >= 2"),
    ({"limit": True}, TypeError, r"limit: got True, expected None or an int >= 1"),
    ({"lpips": "vgg"}, ValueError, r"lpips: got 'vgg', expected one of \['off', 'alex', 'random'\]"),
    ({"lpips_weights": "x.pth"}, ValueError,
     "lpips_weights: got weights for lpips='off', expected them only with lpips='alex'"),
])
def test_bad_settings_are_named(changes, error, message):
    with pytest.raises(error, match=message):
        AblationSettings(**changes)


def test_settings_defaults_paths_and_metrics(tmp_path, monkeypatch):
    settings = AblationSettings()
    assert settings.steps == DEFAULT_STEPS and settings.lpips == "off" and settings.lpips in LPIPS_MODES
    assert settings.train_images == str(TRAIN_IMAGES) and TRAIN_IMAGES.parts[-2:] == ("images", "train")
    assert settings.metrics == ["psnr", "ssim"]
    assert AblationSettings(lpips="alex", lpips_weights="alex.pth").metrics == ["psnr", "ssim", "lpips"]
    monkeypatch.chdir(tmp_path)
    relative = AblationSettings(train_images="train", test_images="test", masks="m")
    assert (relative.train_images, relative.test_images, relative.masks) == tuple(
        str(tmp_path / name) for name in ("train", "test", "m"))
    assert AblationSettings.quick_preset(steps=5, lpips="random").steps == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.steps = 3


def test_train_config_is_the_small_preset_with_the_settings():
    settings = AblationSettings(steps=7, size=96, batch_size=2, train_images="/photos")
    config = settings.train_config(TINY, seed=3)
    assert isinstance(config, TrainConfig) and config.model == TINY
    assert (config.steps, config.size, config.batch_size, config.seed, config.data) == (7, 96, 2, 3, ("/photos",))
    assert config.validate_every == config.sample_every == 0
    preset = TrainConfig.small()
    assert dataclasses.replace(config, model=preset.model, steps=preset.steps, size=preset.size,
                               batch_size=preset.batch_size, seed=preset.seed, data=(),
                               validate_every=preset.validate_every, sample_every=preset.sample_every) == preset


def test_fingerprints_hold_what_a_runs_numbers_depend_on():
    settings = AblationSettings(limit=3, size=64, eval_size=96)
    assert settings.eval_fingerprint() == {"images": settings.test_images, "masks": settings.masks, "size": 96,
                                           "limit": 3, "lpips": "off"}
    assert AblationSettings().eval_size == 256  # scored at the model card's size, whatever the crops'
    assert AblationSettings.quick_preset().eval_size == 64
    fingerprint = settings.fingerprint(TINY, 0)
    assert fingerprint == json.loads(json.dumps(fingerprint))  # plain JSON, as read back from a file
    assert fingerprint["train"]["model"]["width"] == 8 and fingerprint["train"]["seed"] == 0
    assert fingerprint["train"]["betas"] == [0.5, 0.999]  # lists, as JSON reads tuples back
    assert settings.fingerprint(TINY, 1) != fingerprint
    assert AblationSettings(limit=4, size=64).fingerprint(TINY, 0)["eval"]["limit"] == 4
    # Folders in the repository are stored relative to it: a run committed from one clone is reused by another.
    assert fingerprint["eval"]["images"] == "data/images/test" and fingerprint["train"]["data"] == ["data/images/train"]
    outside = AblationSettings(test_images="/elsewhere/photos").fingerprint(TINY, 0)
    assert outside["eval"]["images"] == "/elsewhere/photos"
