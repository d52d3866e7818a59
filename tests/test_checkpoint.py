"""bidsnet_lib.checkpoint: atomic writes, tagged formats, foreign files refused, export, inference load."""

import pickle
from pathlib import Path

import pytest
import torch

from bidsnet_lib import checkpoint as ck
from bidsnet_lib.checkpoint import (
    FORMAT_VERSION,
    INFERENCE_FORMAT,
    TRAIN_FORMAT,
    CheckpointError,
    export_inference,
    load_checkpoint,
    load_inference_model,
    save_checkpoint,
)
from bidsnet_lib.commands.export import main
from bidsnet_lib.model import BIDSNet, BIDSNetConfig
from bidsnet_lib.plumbing import atomic_save

TINY = BIDSNetConfig(width=8, channel_mults=(1, 2), cnn_depths=(1,), trans_depths=(1,),
                     cnn_bottleneck_depth=1, trans_bottleneck_depth=1, heads=1, dim_head=8, nb_features=8)


def train_payload(config: BIDSNetConfig = TINY, seed: int = 0) -> dict:
    """A training checkpoint's payload whose EMA differs from the raw weights."""
    torch.manual_seed(seed)
    model, ema = BIDSNet(config), BIDSNet(config)
    return {"step": 7, "model": model.state_dict(), "ema": ema.state_dict(), "discriminator": None,
            "opt_g": {}, "opt_d": None, "scaler": {}, "config": {"model": config.to_dict(), "size": 64},
            "rng": [], "redraw_calls": {}, "meta": {"vgg_weights": "random", "data": ["photos"], "image_size": 64}}


@pytest.fixture
def train_file(tmp_path) -> Path:
    return save_checkpoint(train_payload(), tmp_path / "run" / "latest.pt", TRAIN_FORMAT)


def inputs(size=32):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, size, size, generator=g)
    mask = (torch.rand(2, 1, size, size, generator=g) > 0.7).float()
    return image, mask


# ------------------------------------------------------------------------------ writing


def test_save_tags_format_and_version_and_round_trips(train_file):
    data = load_checkpoint(train_file, TRAIN_FORMAT)
    assert data["format"] == TRAIN_FORMAT and data["version"] == FORMAT_VERSION
    assert data["step"] == 7 and data["meta"]["vgg_weights"] == "random"
    torch.testing.assert_close(data["ema"], train_payload()["ema"], rtol=0, atol=0)


def test_save_checks_format_and_keys(tmp_path):
    with pytest.raises(ValueError, match="format: got 'nope', expected one of .*'bidsnet-train'"):
        save_checkpoint(train_payload(), tmp_path / "x.pt", "nope")
    with pytest.raises(ValueError, match=r"misses keys \['ema'\]"):
        save_checkpoint({k: v for k, v in train_payload().items() if k != "ema"}, tmp_path / "x.pt", TRAIN_FORMAT)
    with pytest.raises(TypeError, match="payload: got list, expected a dict"):
        save_checkpoint([], tmp_path / "x.pt", INFERENCE_FORMAT)
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_the_old_file_whole_and_no_temp_file(tmp_path, monkeypatch):
    path = atomic_save({"value": torch.arange(10)}, tmp_path / "latest.pt")

    def dies_midway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"value": torch.zeros(10)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.arange(10))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


# ------------------------------------------------------------------------------ refusing


def one_line_error(path, format=TRAIN_FORMAT) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, format)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert isinstance(info.value, ValueError)
    return message


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent.pt', expected a bidsnet-train checkpoint file; there is no file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_truncated_and_corrupt_files_are_refused(train_file, tmp_path):
    data = train_file.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_line_error(tmp_path / "half.pt")
    damaged = bytearray(data)
    damaged[200:400] = bytes(200)
    (tmp_path / "damaged.pt").write_bytes(bytes(damaged))
    assert "truncated or corrupt" in one_line_error(tmp_path / "damaged.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "is empty" in one_line_error(tmp_path / "empty.pt")


def test_files_that_are_not_torch_files_are_refused(tmp_path):
    (tmp_path / "notes.pt").write_text("hello\n")
    assert "is not a PyTorch checkpoint (starts with b'hell')" in one_line_error(tmp_path / "notes.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    assert "is not a PyTorch checkpoint" in one_line_error(tmp_path / "raw.pkl")


def test_a_plain_state_dict_is_not_ours(tmp_path):
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), tmp_path / "resnet.pth")
    message = one_line_error(tmp_path / "resnet.pth")
    assert "without a 'format' tag" in message and "not a bidsnet checkpoint" in message
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    assert "got a list without" in one_line_error(tmp_path / "list.pt")


class Payload:
    """Unpickling this runs Path.touch: what weights_only=True loading must never do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_pickle_of_arbitrary_objects_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"format": TRAIN_FORMAT, "model": Payload(marker)}, tmp_path / "evil.pt")
    message = one_line_error(tmp_path / "evil.pt")
    assert "could run code" in message and "weights_only=True" in message
    assert not marker.exists()


def test_wrong_format_newer_version_and_missing_keys(train_file, tmp_path):
    message = one_line_error(train_file, INFERENCE_FORMAT)
    assert "got a bidsnet-train checkpoint, expected a bidsnet-inference checkpoint" in message
    assert "bidsnet export" in message
    atomic_save({"format": TRAIN_FORMAT, "version": FORMAT_VERSION + 1, **train_payload()}, tmp_path / "new.pt")
    assert "written by a newer bidsnet_lib" in one_line_error(tmp_path / "new.pt")
    atomic_save({"format": TRAIN_FORMAT, "version": FORMAT_VERSION, "step": 1}, tmp_path / "part.pt")
    assert "misses keys ['model'" in one_line_error(tmp_path / "part.pt")
    with pytest.raises(ValueError, match="format: got .*, expected one or more of"):
        load_checkpoint(train_file, "weights")


# ------------------------------------------------------------------------------ export and inference


def test_export_writes_a_smaller_float16_file_that_loads_as_the_ema(train_file, tmp_path):
    out = export_inference(train_file.parent, tmp_path / "model.pt")  # a run directory works
    assert out.stat().st_size < 0.75 * train_file.stat().st_size
    data = load_checkpoint(out, INFERENCE_FORMAT)
    assert {v.dtype for v in data["model"].values() if v.is_floating_point()} == {torch.float16}
    meta = data["meta"]
    assert meta["vgg_weights"] == "random" and meta["step"] == 7 and meta["data"] == ["photos"]
    assert meta["image_size"] == 64 and meta["dtype"] == "float16"

    model, meta = load_inference_model(out, device="cpu")
    assert not model.training and meta["step"] == 7
    ema = BIDSNet(TINY).eval()
    ema.load_state_dict(train_payload()["ema"])
    image, mask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(image, mask), ema(image, mask), rtol=0, atol=5e-3)


def test_float32_export_and_a_training_file_load_the_exact_ema(train_file, tmp_path):
    ema = BIDSNet(TINY).eval()
    ema.load_state_dict(train_payload()["ema"])
    image, mask = inputs()
    with torch.no_grad():
        expected = ema(image, mask)
        for path in (export_inference(train_file, tmp_path / "m32.pt", dtype=torch.float32), train_file):
            model, _ = load_inference_model(path, device="cpu")
            torch.testing.assert_close(model(image, mask), expected, rtol=0, atol=0)


def test_small_preset_export_is_small_enough_to_ship(tmp_path):
    source = save_checkpoint(train_payload(BIDSNetConfig.small()), tmp_path / "latest.pt", TRAIN_FORMAT)
    out = export_inference(source, tmp_path / "bidsnet_small.pt")
    assert out.stat().st_size < 20 * 2**20


def test_inference_load_refuses_a_config_or_weights_that_do_not_fit(tmp_path):
    payload = {"model": BIDSNet(TINY).state_dict(), "config": {**TINY.to_dict(), "width": -1}, "meta": {}}
    save_checkpoint(payload, tmp_path / "bad_config.pt", INFERENCE_FORMAT)
    with pytest.raises(CheckpointError, match="bad_config.pt: its model config is invalid: width"):
        load_inference_model(tmp_path / "bad_config.pt", device="cpu")
    payload = {"model": BIDSNet(TINY).state_dict(), "config": BIDSNetConfig.small().to_dict(), "meta": {}}
    save_checkpoint(payload, tmp_path / "mismatch.pt", INFERENCE_FORMAT)
    with pytest.raises(CheckpointError, match="mismatch.pt: weights do not fit the config"):
        load_inference_model(tmp_path / "mismatch.pt", device="cpu")


def test_export_refuses_a_bad_dtype(train_file, tmp_path):
    with pytest.raises(ValueError, match=r"dtype: got torch.int8, expected one of \['bfloat16'"):
        export_inference(train_file, tmp_path / "m.pt", dtype=torch.int8)


def test_export_command(train_file, tmp_path, capsys):
    assert main([str(train_file), str(tmp_path / "m.pt"), "--dtype", "float32"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "m.pt", INFERENCE_FORMAT)["meta"]["dtype"] == "float32"
    (tmp_path / "junk.pt").write_text("junk")
    assert main([str(tmp_path / "junk.pt"), str(tmp_path / "m2.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bidsnet export: error: ") and "junk.pt" in err and err.count("\n") == 1
    assert not (tmp_path / "m2.pt").exists()


def test_module_constants_match_the_formats():
    assert set(ck.REQUIRED_KEYS) == {TRAIN_FORMAT, INFERENCE_FORMAT}


# ------------------------------------------------------------------------------ issue 17
def test_export_never_overwrites_a_training_checkpoint_or_its_source(train_file, tmp_path, capsys):
    """#2: `bidsnet export RUN RUN/latest.pt` replaced the training checkpoint, exit 0."""
    before = train_file.read_bytes()
    assert main([str(train_file.parent), str(train_file)]) == 2
    assert "it is the checkpoint being exported" in capsys.readouterr().err
    other = save_checkpoint(train_payload(seed=1), tmp_path / "other" / "latest.pt", TRAIN_FORMAT)
    assert main([str(train_file), str(other)]) == 2
    assert "it is a training checkpoint, which an export would make impossible to resume" in capsys.readouterr().err
    assert main([str(train_file), str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert train_file.read_bytes() == before
    # An older inference file is replaced, as before.
    assert main([str(train_file), str(tmp_path / "m.pt")]) == 0
    assert main([str(train_file), str(tmp_path / "m.pt")]) == 0


def test_export_refuses_nan_weights(tmp_path):
    """#7's sibling: a diverged run is not exported into a file that paints black holes."""
    payload = train_payload()
    name = next(iter(payload["ema"]))
    payload["ema"][name].view(-1)[0] = float("inf")
    save_checkpoint(payload, tmp_path / "latest.pt", TRAIN_FORMAT)
    with pytest.raises(CheckpointError, match=f"EMA weights tensor '{name}' holds 1 NaN or infinite"):
        export_inference(tmp_path / "latest.pt", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_a_run_folder_as_checkpoint_says_to_pass_its_latest(train_file):
    """#14: a run folder was reported as "no such checkpoint file"."""
    with pytest.raises(CheckpointError, match="file, not a folder \\(a run folder: pass its latest.pt\\)"):
        load_checkpoint(train_file.parent)


def test_atomic_save_leaves_normal_permissions(tmp_path):
    """#17: temporary-file writes gave 0600 files whatever the umask."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = atomic_save({"x": torch.zeros(1)}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_export_sets_the_working_size_the_inpainter_uses(tmp_path):
    from bidsnet_lib.checkpoint import work_size
    from bidsnet_lib.inference import Inpainter

    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(train_payload(), run / "latest.pt", TRAIN_FORMAT)  # trained at 64 px
    assert work_size(load_checkpoint(export_inference(run, tmp_path / "a.pt"), INFERENCE_FORMAT)["meta"]) == 64
    wide = export_inference(run, tmp_path / "b.pt", work_size=256)
    assert Inpainter.from_checkpoint(wide, device="cpu").work_size == 256
    with pytest.raises(ValueError, match="work_size: got 16, expected an int from 32 to 2048"):
        export_inference(run, tmp_path / "c.pt", work_size=16)
