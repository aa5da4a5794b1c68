import json

import pytest
import torch
from toy_models import MaliciousPickle, ToyVAE

from collapse_diag import (
    CheckpointError,
    DataError,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from collapse_diag.io.checkpoint import file_sha256


def test_round_trip_unpacks_as_model_and_data(toy_checkpoint):
    loaded = load_checkpoint(toy_checkpoint)
    assert isinstance(loaded, LoadedCheckpoint)
    model, data = loaded
    assert type(model).__name__ == "ToyVAE" and not model.training
    assert data.shape == (400, 3)
    assert loaded.factory == "models:ToyVAE"
    assert loaded.sha256 == file_sha256(toy_checkpoint) and len(loaded.sha256) == 64
    assert loaded.labels is None


def test_labels_round_trip(user_dir):
    model = ToyVAE()
    path = save_checkpoint(user_dir / "l.pt", model, "models:ToyVAE", {},
                           data=model.sample(10), labels={"k": torch.arange(10) % 2})
    assert torch.equal(load_checkpoint(path).labels["k"], torch.arange(10) % 2)


def test_labels_of_wrong_length_are_rejected(user_dir):
    model = ToyVAE()
    path = save_checkpoint(user_dir / "l.pt", model, "models:ToyVAE", {},
                           data=model.sample(10), labels={"k": torch.arange(9)})
    with pytest.raises(DataError, match="one value per input"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_file(toy_checkpoint):
    raw = toy_checkpoint.read_bytes()
    toy_checkpoint.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch file"):
        load_checkpoint(toy_checkpoint)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_malicious_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"collapse_diag": 1, "payload": MaliciousPickle(marker)}, path)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pickled_model_needs_trust(user_dir):
    import models

    path = user_dir / "whole.pt"
    torch.save(models.ToyVAE(), path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    model, data = load_checkpoint(path, trust_checkpoint=True)
    assert type(model).__name__ == "ToyVAE" and data is None


def test_factory_from_file_cannot_name_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "os:system",
                "config": {"command": f"touch {marker}"}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path)
    assert not marker.exists()


def test_factory_from_file_cannot_name_a_stdlib_function(tmp_path):
    path = tmp_path / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "subprocess:call",
                "config": {"args": ["true"]}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path)


def test_factory_not_importable(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "no_such_module:build", "config": {},
                "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="no Python source of module .no_such_module."):
        load_checkpoint(path)


def test_factory_malformed_and_missing_attribute(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "models", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="package.module:callable"):
        load_checkpoint(path)
    torch.save({"collapse_diag": 1, "factory": "models:nothing", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="does not define 'nothing' at its top level"):
        load_checkpoint(path)


def test_wrong_keys_in_format(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "config": {}}, path)
    with pytest.raises(CheckpointError, match=r"lacks the key\(s\) \['factory', 'state_dict'\]"):
        load_checkpoint(path)


def test_wrong_format_version(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 99, "factory": "models:build_toy", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_weights_that_do_not_fit(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "models:ToyVAE", "config": {},
                "state_dict": {"bogus": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="do not fit.*missing keys.*unexpected keys"):
        load_checkpoint(path)


def test_factory_failure_is_reported(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "models:ToyVAE",
                "config": {"no_such_arg": 1}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"ToyVAE\(\*\*config\) failed"):
        load_checkpoint(path)


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", None])
@pytest.mark.parametrize("prefix", ["", "module.", "model."])
def test_plain_state_dict_with_factory_and_config(user_dir, key, prefix):
    model = ToyVAE(weights=(1.0, 3.0), noise=0.2)
    with torch.no_grad():
        model.scale.fill_(0.5)
    state = {prefix + k: v for k, v in model.state_dict().items()}
    path = user_dir / "plain.pt"
    torch.save(state if key is None else {key: state, "epoch": 3}, path)
    config = user_dir / "cfg.json"
    config.write_text(json.dumps({"weights": [1.0, 3.0], "noise": 0.2}))
    with pytest.raises(CheckpointError, match="--factory"):
        load_checkpoint(path)
    loaded, data = load_checkpoint(path, factory="models:build_toy", config=config)
    assert data is None
    assert torch.equal(loaded.scale, torch.full((2,), 0.5))


def test_state_dict_not_found(user_dir):
    path = user_dir / "f.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="has no weights"):
        load_checkpoint(path, factory="models:build_toy")


def test_empty_stored_data(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "models:ToyVAE", "config": {},
                "state_dict": ToyVAE().state_dict(), "data": torch.zeros(0, 3)}, path)
    with pytest.raises(DataError, match="no examples"):
        load_checkpoint(path)


def test_bad_config_file(user_dir, toy_checkpoint):
    bad = user_dir / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read config file"):
        load_checkpoint(toy_checkpoint, config=bad)


def test_errors_are_builtin_subclasses():
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(DataError, ValueError)
