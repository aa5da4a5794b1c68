"""Issue 25: Lightning as it saves and trains (compiled modules, hyper_parameters, the callback
with a method map or an attribute path, stopping on collapse)."""

import json
import math

import pytest
import torch
from doc_recipes import compiled
from training_models import TinyVAE, tiny_data

L = pytest.importorskip("lightning")


class Foreign(torch.nn.Module):
    """TinyVAE under other names and return shapes: (mu, std) and a loss per example."""

    def __init__(self):
        super().__init__()
        self.inner = TinyVAE()

    def encode_stats(self, x):
        mu, logvar = self.inner.encode(x)
        return mu, (0.5 * logvar).exp()

    def recon_loss(self, x, z):
        return -self.inner.log_likelihood(x, z)


class Module(L.LightningModule):
    def __init__(self, switch_off_at=None):
        super().__init__()
        self.net = Foreign()
        self.switch_off_at = switch_off_at

    def training_step(self, batch, batch_idx):
        if self.global_step == self.switch_off_at:
            self.net.inner.switch_off(1)  # KL of z_1 exactly 0 from here on
        return self.net.inner.loss(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.001)


def _fit(callback, module, steps=6):
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(tiny_data(32 * steps, seed=1)), batch_size=32)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[callback])
    trainer.fit(module, loader)
    return trainer


def test_the_callback_takes_a_method_map_and_an_attribute_path_and_stops_on_collapse(tmp_path):
    from collapse_diag.integrations.lightning import CollapseCallback

    events = []
    callback = CollapseCallback(
        tiny_data(200), every_n_steps=1, out=tmp_path / "c.jsonl", model_attr="net",
        method_map={"encode": "encode_stats:mu_std", "log_likelihood": "-recon_loss"},
        stop_on="dimension", on_collapse=events.append, wandb=False)
    trainer = _fit(callback, Module(switch_off_at=2), steps=6)
    # measured at 0, 1, 2 (the step before the switch-off), then 3: dimension 1 collapsed
    assert [(e.step, e.kind, e.dimensions) for e in events] == [(3, "dimension", (1,))]
    assert trainer.global_step == 3  # stopped there, 3 steps before max_steps
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2, 3]
    # the method map saw the very model being trained: its KL is that of TinyVAE's encoder
    trainer.lightning_module.eval()  # dropout off for both calls
    with torch.no_grad():
        mu, logvar = callback.monitor.model.encode(callback.monitor.data)
        ref_mu, ref_logvar = trainer.lightning_module.net.inner.encode(callback.monitor.data)
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(logvar, ref_logvar, rtol=1e-6, atol=1e-6)  # log of exp


def test_a_compiled_vae_inside_a_lightning_checkpoint_loads_with_its_hyper_parameters(user_dir):
    import importlib.util
    import sys

    from collapse_diag import analyze, load_checkpoint

    spec = importlib.util.spec_from_file_location("models", user_dir / "models.py")
    models = sys.modules["models"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)

    class Lit(L.LightningModule):
        def __init__(self, weights=(1.0, 3.0), noise=0.2, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.model = compiled(models.ToyVAE(weights=weights, noise=noise))
            self.loss_scale = torch.nn.Parameter(torch.ones(1))  # a key outside self.model

    lit = Lit(weights=[1.0, 3.0], noise=0.2)
    with torch.no_grad():
        lit.model._orig_mod.scale.fill_(0.5)
    assert any(k.startswith("model._orig_mod.") for k in lit.state_dict())
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(lit)
    trainer.save_checkpoint(user_dir / "last.ckpt")
    loaded = load_checkpoint(user_dir / "last.ckpt", factory="models:ToyVAE",
                             state_dict_prefix="model.")
    assert torch.equal(loaded.model.scale, torch.full((2,), 0.5))  # _orig_mod. stripped too
    assert loaded.config == {"weights": [1.0, 3.0], "noise": 0.2}
    x = models.ToyVAE(weights=(1.0, 3.0), noise=0.2).sample(400)
    report = analyze(loaded, x, seed=0, diagnostics=["kl", "activity"]).to_dict()
    assert report["checkpoint"]["factory"] == "models:ToyVAE"
    assert report["checkpoint"]["config_source"] == (
        "the checkpoint's hyper_parameters, as they fit the factory's signature "
        "(dropped ['lr'])")
    # the known answer (toy_models.py) at scale c = 0.5: mu_d = c w_d x_d / (s^2 + w_d^2),
    # mean KL_d = 0.5 (Var_x[mu_d] + var_d - 1 - log var_d), Var_x[mu_d] = c^2 w_d^2 / (s^2 + w_d^2)
    w, s2 = torch.tensor([1.0, 3.0]), 0.04
    var = s2 / (s2 + w**2)
    var_mu = 0.25 * w**2 / (s2 + w**2)
    kl = 0.5 * (var_mu + var - 1 - torch.log(var))
    for row, expected in zip(report["dimensions"], kl.tolist()):
        # the sample variance of mu over 400 inputs: relative sd sqrt(2 / 400) = 0.07 of the
        # Var_x[mu_d] term (at most the whole KL here); 0.25 is 3.5 sd
        assert row["kl"] == pytest.approx(expected, rel=0.25)
    assert math.isfinite(report["summary"]["kl"])
