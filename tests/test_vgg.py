"""bidsnet_lib.vgg: VGG-19 against torchvision's indices, loading ImageNet weights (cache, download,
files) and its errors, the random backbone."""

import socket
import time
import urllib.request

import pytest
import torch
from torchvision.models import vgg as tv_vgg

from bidsnet_lib import losses, plumbing, vgg
from bidsnet_lib.losses import GeneratorLoss, LossConfig
from bidsnet_lib.vgg import VGG19_FILE, RandomWeightsWarning, load_vgg19_features


@pytest.fixture
def torchvision_features():
    """torchvision's own VGG-19 ``features`` (random init), the reference for keys and indices."""
    torch.manual_seed(1)
    return tv_vgg.make_layers(tv_vgg.cfgs["E"])


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch.hub cache in tmp_path, no network, and a trap on any download attempt."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise OSError("offline (test)")

    def trap(*args, **kwargs):
        pytest.fail("load_vgg19_features tried to download while offline")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", trap)  # plumbing.download_file's opener
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    return tmp_path / "hub" / "checkpoints"


# ---------------------------------------------------------------------------------------------
# The network


def test_vgg_matches_torchvision_indices(torchvision_features, tmp_path):
    path = tmp_path / "features.pth"
    torch.save(torchvision_features.state_dict(), path)  # bare "N.weight" keys
    ours = load_vgg19_features(path)
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x = (target - ours.mean) / ours.std
    reference = torchvision_features[:30](x)  # index 29 = relu5_1
    torch.testing.assert_close(ours(target)["relu5_1"], reference)


def test_vgg_unknown_layer_is_named():
    with pytest.raises(ValueError, match=r"layers: got \['relu9_1'\]"):
        load_vgg19_features("random", layers=("relu9_1",))


# ---------------------------------------------------------------------------------------------
# Loading VGG-19 weights


def test_imagenet_offline_fails_fast_naming_file_dir_and_flags(offline):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load_vgg19_features("imagenet")
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert VGG19_FILE in message and VGG19_FILE == "vgg19-dcbb9e9d.pth"
    assert str(offline) in message
    assert "vgg_weights='random'" in message and "vgg_weights='/path/to/vgg19.pth'" in message
    assert info.value.__cause__ is None and info.value.__context__ is None  # no urllib traceback


def test_imagenet_failed_download_hides_urllib(offline, monkeypatch):
    import urllib.error

    def failing(*args, **kwargs):
        raise urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(plumbing, "reachable", lambda url, timeout=2.0: True)
    monkeypatch.setattr(urllib.request, "urlopen", failing)  # plumbing.download_file's opener
    with pytest.raises(FileNotFoundError, match="download failed") as info:
        load_vgg19_features("imagenet")
    assert VGG19_FILE in str(info.value) and info.value.__suppress_context__


def test_imagenet_uses_cached_file_without_network(offline, torchvision_features):
    offline.mkdir(parents=True)
    full = {f"features.{k}": v for k, v in torchvision_features.state_dict().items()}
    full["classifier.0.weight"] = torch.zeros(3)  # a classifier head is ignored
    torch.save(full, offline / VGG19_FILE)
    model = load_vgg19_features("imagenet")
    assert model.weights_source == "imagenet"
    torch.testing.assert_close(model.body[0].weight, torchvision_features[0].weight)


def test_state_dict_path_full_and_features_only(tmp_path, torchvision_features):
    features_only = {f"features.{k}": v for k, v in torchvision_features.state_dict().items()}
    for name, state in (
        ("features.pth", features_only),
        ("full.pth", {**features_only, "classifier.6.bias": torch.zeros(1000)}),
    ):
        torch.save(state, tmp_path / name)
        model = load_vgg19_features(str(tmp_path / name))
        assert model.weights_source == f"file:{(tmp_path / name).resolve()}"
        torch.testing.assert_close(model.body[28].weight, torchvision_features[28].weight)
        assert not any(p.requires_grad for p in model.parameters())


def test_bad_paths_and_bad_state_dicts_name_the_file(tmp_path, torchvision_features):
    with pytest.raises(
        FileNotFoundError, match="'imagnet' is neither 'imagenet', 'random' nor an existing file"
    ):
        load_vgg19_features("imagnet")
    wrong_keys = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong_keys)
    with pytest.raises(ValueError, match=f"{wrong_keys}: not a torchvision vgg19.*conv1.weight"):
        load_vgg19_features(wrong_keys)
    state = torchvision_features.state_dict()
    state["10.weight"] = torch.zeros(256, 128, 1, 1)
    wrong_shape = tmp_path / "shape.pth"
    torch.save(state, wrong_shape)
    with pytest.raises(
        ValueError, match=rf"{wrong_shape}: key features.10.weight has shape \(256, 128, 1, 1\)"
    ):
        load_vgg19_features(wrong_shape)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{garbage}: cannot be read as a torch state dict"):
        load_vgg19_features(garbage)
    with pytest.raises(TypeError, match="weights: got int"):
        load_vgg19_features(3)


def test_random_backbone_warns_records_and_is_reproducible():
    before = torch.get_rng_state()
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights"):
        a = load_vgg19_features("random")
    assert torch.equal(before, torch.get_rng_state())  # the caller's RNG is untouched
    assert a.weights_source == "random"
    with pytest.warns(RandomWeightsWarning):
        b = load_vgg19_features("random")
    torch.testing.assert_close(a.body[0].weight, b.body[0].weight)


def test_vgg_names_live_in_vgg_and_feed_the_losses():
    public = ("VGG19Features", "load_vgg19_features", "RandomWeightsWarning")
    assert all(getattr(vgg, name).__module__ == "bidsnet_lib.vgg" for name in public)
    assert not any(hasattr(losses, name) for name in
                   ("RandomWeightsWarning", "VGG19_FILE", "VGG19_URL", "IMAGENET_MEAN", "VGG19_LAYERS"))
    with pytest.warns(RandomWeightsWarning):
        loss = GeneratorLoss(LossConfig.small())  # loads its VGG-19 through bidsnet_lib.vgg
    assert isinstance(loss.vgg, vgg.VGG19Features) and loss.weights_source == "random"
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    feats = loss.vgg(images)
    assert set(feats) == set(vgg.PERCEPTUAL_LAYERS + vgg.STYLE_LAYERS)
    assert all(torch.isfinite(x).all() and x.abs().sum() > 0 for x in feats.values())
