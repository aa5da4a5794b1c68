"""Issue 25: the Lightning callback with a method map and an attribute path, stopping on
collapse. (A compiled VAE in a Lightning checkpoint: tests/test_recipes.py.)"""

import json

import pytest
import torch
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


@pytest.mark.parametrize("key", ["model._orig_mod.enc.weight", "module.model.enc.weight",
                                 "_orig_mod.model.module.enc.weight", "model.enc.weight"])
def test_wrapper_prefixes_around_and_inside_the_kept_prefix_come_off(key):
    from collapse_diag.io.prefixes import keep_prefix

    state = {key: torch.ones(1), key.replace("enc.weight", "dec.weight"): torch.zeros(1),
             key.replace("model.", "loss.").replace("enc.weight", "w"): torch.ones(1)}
    assert sorted(keep_prefix(state, "model.", "f")) == ["dec.weight", "enc.weight"]
