"""Issue 13: Lightning files, wrapper prefixes, TorchScript archives, labels, CLI = library."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from toy_models import ToyVAE

import collapse_diag
from collapse_diag import CheckpointError, DataError, load_checkpoint, save_checkpoint
from collapse_diag.io.prefixes import strip_wrapper_prefixes
from collapse_diag_cli.main import main

FAST = ["--per-dim-swap-examples", "8", "--prior-samples", "2", "--format", "json", "-q"]
LIB = {"per_dim_swap_examples": 8, "prior_samples": 2}


def run(*args):
    return CliRunner().invoke(main, [os.fsdecode(a) if isinstance(a, Path) else str(a)
                                     for a in args])


def _trained_toy():
    model = ToyVAE(weights=(1.0, 3.0), noise=0.2)
    with torch.no_grad():
        model.scale.fill_(0.5)
    return model


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod.", "_orig_mod.module.",
                                    "model._orig_mod."])
def test_compile_and_ddp_prefixes_are_stripped_in_any_combination(user_dir, prefix):
    model = _trained_toy()
    path = user_dir / "c.pt"
    torch.save({"model_state_dict": {prefix + k: v for k, v in model.state_dict().items()}},
               path)
    (user_dir / "cfg.json").write_text(json.dumps({"weights": [1.0, 3.0], "noise": 0.2}))
    loaded = load_checkpoint(path, factory="models:build_toy", config=user_dir / "cfg.json")
    assert torch.equal(loaded.model.scale, torch.full((2,), 0.5))
    x = model.sample(30)
    assert run("analyze", path, "--factory", "models:build_toy", "--config",
               user_dir / "cfg.json", "--data", _save(user_dir / "x.pt", x),
               "--out", user_dir / "r", *FAST).exit_code == 0


def _save(path, value):
    torch.save(value, path)
    return path


def test_mixed_prefixes_are_left_alone_and_the_error_names_them(user_dir):
    own = ToyVAE(weights=(1.0, 3.0)).state_dict()
    state = {**{"model." + k: v for k, v in own.items()}, "loss.weight": torch.ones(1)}
    assert strip_wrapper_prefixes(state) == state
    path = _save(user_dir / "m.pt", {"state_dict": state})
    with pytest.raises(CheckpointError, match=r"start with \['model\.', 'loss\.'\].*"
                                              r"--state-dict-prefix"):
        load_checkpoint(path, factory="models:build_toy", config={"weights": [1.0, 3.0]})
    loaded = load_checkpoint(path, factory="models:build_toy", config={"weights": [1.0, 3.0]},
                             state_dict_prefix="model.")
    assert torch.equal(loaded.model.scale, own["scale"])
    with pytest.raises(CheckpointError, match=r"prefix 'nope\.'.*\['model\.', 'loss\.'\]"):
        load_checkpoint(path, factory="models:build_toy", state_dict_prefix="nope.")


def test_not_in_format_message_lists_every_key_and_the_weights(user_dir):
    keys = {f"k{i}": i for i in range(12)}
    path = _save(user_dir / "n.pt", {**keys, "state_dict": ToyVAE().state_dict()})
    with pytest.raises(CheckpointError, match=r"k9.*'state_dict'.*weights are under "
                                              r"'state_dict'"):
        load_checkpoint(path)


def _lightning_checkpoint(user_dir, extra_key=True):
    """A real Lightning .ckpt of a LightningModule holding the VAE as self.model."""
    lightning = pytest.importorskip("lightning.pytorch")
    # the user's models.py (user_dir), imported from its file: the test does not depend on
    # an earlier test having put the working folder on sys.path
    spec = importlib.util.spec_from_file_location("models", user_dir / "models.py")
    models = sys.modules["models"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)

    class Module(lightning.LightningModule):
        def __init__(self, weights=(1.0, 3.0), noise=0.2, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.model = models.ToyVAE(weights=weights, noise=noise)
            if extra_key:
                self.head = torch.nn.Linear(1, 1)  # a key outside self.model

        def training_step(self, batch, _):
            return (self.model.encode(batch)[0] ** 2).mean() + 0 * self.head.weight.sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    module = Module(weights=[1.0, 3.0], noise=0.2)
    with torch.no_grad():
        module.model.scale.fill_(0.5)
    trainer = lightning.Trainer(max_steps=0, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(user_dir / "run.ckpt")
    return user_dir / "run.ckpt"


def test_a_real_lightning_checkpoint_loads_with_factory_and_prefix(user_dir):
    path = _lightning_checkpoint(user_dir)
    with pytest.raises(CheckpointError, match="Lightning checkpoint.*--factory"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"start with \['model\.', 'head\.'\]"):
        load_checkpoint(path, factory="models:ToyVAE")
    loaded = load_checkpoint(path, factory="models:ToyVAE", state_dict_prefix="model.")
    assert loaded.adapter == "lightning"
    assert loaded.config == {"weights": [1.0, 3.0], "noise": 0.2}  # lr dropped by signature
    assert torch.equal(loaded.model.scale, torch.full((2,), 0.5))
    x = _save(user_dir / "x.pt", ToyVAE(weights=(1.0, 3.0), noise=0.2).sample(30))
    result = run("analyze", path, "--factory", "models:ToyVAE", "--state-dict-prefix",
                 "model.", "--data", x, "--out", user_dir / "r", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((user_dir / "r" / "report.json").read_text())
    assert report["checkpoint"]["adapter"] == "lightning"


def test_track_and_compare_read_the_lightning_file_with_the_same_input_options(user_dir):
    """--factory, --state-dict-prefix, --adapter and --labels reach every loading command."""
    path = _lightning_checkpoint(user_dir)
    model = ToyVAE(weights=(1.0, 3.0), noise=0.2)
    x = model.sample(60)
    _save(user_dir / "x.pt", x)
    labels = user_dir / "labels.csv"
    labels.write_text("sign\n" + "\n".join(str(int(v > 0)) for v in x[:, 0].tolist()) + "\n")
    load = ["--factory", "models:ToyVAE", "--state-dict-prefix", "model.", "--adapter",
            "lightning", "--data", user_dir / "x.pt", "--labels", labels]
    without = run("track", path, "--factory", "models:ToyVAE", "--data", user_dir / "x.pt",
                  "--out", user_dir / "t0", *FAST)
    assert without.exit_code == 3 and "--state-dict-prefix" in without.output, without.output
    result = run("track", path, *load, "--full", "--out", user_dir / "t", "--format", "json",
                 *FAST)
    assert result.exit_code == 0, result.output
    (cached,) = (user_dir / "t" / "cache").glob("*.json")  # the step's full report
    assert json.loads(cached.read_text())["summary"]["probes"]["sign"]["baseline"] > 0  # labels
    (user_dir / "copy.ckpt").write_bytes(path.read_bytes())
    result = run("compare", path, user_dir / "copy.ckpt", *load, "--out", user_dir / "c",
                 *FAST)
    assert result.exit_code == 0, result.output
    rows = json.loads((user_dir / "c" / "comparison.json").read_text())["rows"]
    assert len(rows) == 2 and rows[0]["kl"] == pytest.approx(rows[1]["kl"], rel=1e-9)


def test_torchscript_archive_gets_the_right_message_and_loads_when_trusted(user_dir):
    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([2.0, 1.0]))

        @torch.jit.export
        def encode(self, x: torch.Tensor):
            return x * self.w, torch.full_like(x, -1.0)

        @torch.jit.export
        def log_likelihood(self, x: torch.Tensor, z: torch.Tensor):
            return -0.5 * ((x - z / self.w) ** 2).sum(-1)

        def forward(self, x: torch.Tensor):
            return self.encode(x)[0]

    eager = Scripted()
    path = user_dir / "model.ts"
    torch.jit.save(torch.jit.script(eager), path)
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    data = _save(user_dir / "x.pt", x)
    result = run("analyze", path, "--data", data, "--out", user_dir / "r", *FAST)
    assert result.exit_code == 3 and "is a TorchScript archive" in result.output
    assert "corrupt" not in result.output and "--trust-checkpoint" in result.output
    result = run("analyze", path, "--data", data, "--trust-checkpoint",
                 "--out", user_dir / "r", *FAST)
    assert result.exit_code == 0, result.output
    scripted = collapse_diag.analyze(eager, x, **LIB)
    report = json.loads((user_dir / "r" / "report.json").read_text())
    assert report["summary"]["kl"] == pytest.approx(scripted.summary["kl"], rel=1e-6)


def test_labels_file_formats_and_which_labels_are_used(toy_checkpoint, user_dir):
    from collapse_diag.io.labels import load_labels

    k = np.arange(400) % 3
    (user_dir / "l.csv").write_text("k,j\n" + "".join(f"{a},{a % 2}\n" for a in k))
    (user_dir / "l.tsv").write_text("k\n" + "".join(f"{a}\n" for a in k))
    np.savez(user_dir / "l.npz", k=k)
    torch.save({"k": torch.as_tensor(k)}, user_dir / "l.pt")
    for name in ("l.csv", "l.tsv", "l.npz", "l.pt"):
        assert np.array_equal(load_labels(user_dir / name, 400)["k"], k)
    with pytest.raises(DataError, match="one value per input"):
        load_labels(user_dir / "l.npz", 300)
    (user_dir / "bad.csv").write_text("k\n1\nx\n")
    with pytest.raises(DataError, match="'k' mixes integers and text .input 1: 'x'"):
        load_labels(user_dir / "bad.csv", 2)
    result = run("analyze", toy_checkpoint, "--labels", user_dir / "l.csv",
                 "--out", user_dir / "r", *FAST[:-1])
    assert result.exit_code == 0, result.output
    assert "labels: from the labels file" in result.output
    report = json.loads((user_dir / "r" / "report.json").read_text())
    assert "l.csv" in report["provenance"]["labels"]
    result = run("analyze", toy_checkpoint, "--labels", user_dir / "bad.csv", *FAST)
    assert result.exit_code == 3 and "mixes integers and text" in result.output


def test_labels_as_people_store_them(toy_checkpoint, user_dir):
    """.npy (plain and structured), .jsonl, FILE:field, and text classes encoded with a note."""
    from collapse_diag.io.labels import load_labels, read_labels

    k = np.arange(400) % 3
    np.save(user_dir / "k.npy", k)
    assert list(load_labels(user_dir / "k.npy", 400)) == ["k"]
    structured = np.zeros(400, dtype=[("k", "i8"), ("j", "i4")])
    structured["k"], structured["j"] = k, k % 2
    np.save(user_dir / "s.npy", structured)
    assert sorted(load_labels(user_dir / "s.npy", 400)) == ["j", "k"]
    topics = np.array(["news", "sports", "arts"])[k]
    (user_dir / "l.jsonl").write_text("".join(
        json.dumps({"text": f"sentence {i}", "topic": str(t), "k": int(a)}) + "\n"
        for i, (t, a) in enumerate(zip(topics, k))))
    labels, notes = read_labels(f"{user_dir / 'l.jsonl'}:topic,k", 400)
    assert sorted(labels) == ["k", "topic"] and np.array_equal(labels["k"], k)
    # sorted text classes: arts 0, news 1, sports 2
    assert np.array_equal(labels["topic"], np.array([1, 2, 0])[k])
    assert notes == ["topic: text classes encoded 0 = 'arts', 1 = 'news', 2 = 'sports'"]
    with pytest.raises(DataError, match="has no factor \\['nope'\\]"):
        load_labels(f"{user_dir / 'l.jsonl'}:nope", 400)
    (user_dir / "t.csv").write_text("topic\n" + "".join(f"{t}\n" for t in topics))
    result = run("analyze", toy_checkpoint, "--labels", user_dir / "t.csv",
                 "--out", user_dir / "r", *FAST[:-1])
    assert result.exit_code == 0, result.output
    report = json.loads((user_dir / "r" / "report.json").read_text())
    assert "text classes encoded 0 = 'arts'" in report["provenance"]["labels"]
    assert "topic" in report["summary"]["probes"]


def test_stored_labels_are_kept_with_data_only_when_sizes_match(user_dir):
    model = ToyVAE()
    x = model.sample(40)
    path = save_checkpoint(user_dir / "s.pt", model, "models:ToyVAE", {}, data=x,
                           labels={"k": torch.arange(40) % 2})
    loaded = load_checkpoint(path)
    same = collapse_diag.analyze(loaded, x.clone(), **LIB)
    assert same.provenance["labels"].startswith("stored in the checkpoint, kept")
    other = collapse_diag.analyze(loaded, x[:30], **LIB)
    assert other.provenance["labels"].startswith("none: the checkpoint's labels are for 40")
    assert "probes" not in other.timings or not other.summary.get("probes")
    stored = collapse_diag.analyze(loaded, **LIB)
    assert stored.provenance["labels"] == "stored in the checkpoint"


def test_cli_and_library_give_the_same_report(user_dir):
    model = ToyVAE()
    path = save_checkpoint(user_dir / "s.pt", model, "models:ToyVAE", {}, data=model.sample(40),
                           labels={"k": torch.arange(40) % 2})
    assert run("analyze", path, "--out", user_dir / "r", *FAST).exit_code == 0
    cli = json.loads((user_dir / "r" / "report.json").read_text())
    library = json.loads(json.dumps(collapse_diag.analyze(
        load_checkpoint(path), seed=0, batch_size=64, **LIB).to_dict(), default=str))
    for key in ("summary", "dimensions", "checkpoint", "n_examples"):
        assert cli[key] == library[key], key
    for key in ("labels", "data_sha256", "model"):
        assert cli["provenance"][key] == library["provenance"][key], key


def test_wrap_maps_foreign_methods_to_the_protocol():
    from models_for_tests import LinearVAE

    reference = LinearVAE(W=np.eye(2), sigma=0.5, A=0.8 * np.eye(2), logvar=[-1.0, -1.0])

    class Foreign(torch.nn.Module):  # same model, other method names and return shapes
        def __init__(self):
            super().__init__()
            self.ref = reference

        def posterior(self, x):
            mu, logvar = self.ref.encode(x)
            return {"mean": mu, "log_var": logvar, "extra": None}

        def score(self, z, x):
            return self.ref.log_likelihood(x, z)

    wrapped = collapse_diag.wrap(
        Foreign(), encode=lambda m, x: (m.posterior(x)["mean"], m.posterior(x)["log_var"]),
        log_likelihood=lambda m, x, z: m.score(z, x))
    assert not hasattr(wrapped, "prior") and not hasattr(wrapped, "num_tokens")
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, b = collapse_diag.analyze(wrapped, x, **LIB), collapse_diag.analyze(reference, x, **LIB)
    assert a.summary["kl"] == pytest.approx(b.summary["kl"], rel=1e-12)
    assert a.summary["verdict"] == b.summary["verdict"]
    with pytest.raises(collapse_diag.InvalidParameterError):
        collapse_diag.wrap(Foreign(), encode=1, log_likelihood=lambda m, x, z: z)
