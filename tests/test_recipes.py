"""Issue 25: every recipe of docs/adapters.md, run as written there (tests/doc_recipes.py).

The Optimus recipe is run in tests/test_huggingface.py."""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from doc_recipes import compiled, console, recipe

from collapse_diag_cli.main import main

FAST = ["--per-dim-swap-examples", "8", "--prior-samples", "2", "--format", "json", "-q"]


def _cli(name, out):
    result = CliRunner().invoke(main, [*console(name), "--out", os.fsdecode(out), *FAST])
    assert result.exit_code == 0, result.output
    return json.loads((Path(out) / "report.json").read_text())


def test_pythae_recipe(user_dir):
    pythae = pytest.importorskip("pythae.models")
    torch.manual_seed(0)
    pythae.VAE(pythae.VAEConfig(input_dim=(1, 4, 4), latent_dim=3)).save("my_pythae_vae")
    np.save("x_valid.npy", np.random.default_rng(0).random((30, 1, 4, 4)))
    assert _cli("pythae", user_dir / "r")["checkpoint"]["adapter"] == "pythae"


def test_lightning_compiled_recipe(user_dir, monkeypatch):
    L = pytest.importorskip("lightning")
    monkeypatch.syspath_prepend(str(user_dir))
    with open("models.py", "a") as handle:
        handle.write("\nVAE = ToyVAE\n")
    sys.modules.pop("models", None)
    import models

    class LitVAE(L.LightningModule):
        def __init__(self, weights=(1.0, 3.0), noise=0.2, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.model = compiled(models.VAE(weights=weights, noise=noise))

    lit = LitVAE(weights=[1.0, 3.0], noise=0.2)
    lit.loss_scale = torch.nn.Parameter(torch.ones(1))  # a key outside self.model
    with torch.no_grad():
        lit.model._orig_mod.scale.fill_(0.5)
    assert any(k.startswith("model._orig_mod.") for k in lit.state_dict())
    folder = user_dir / "lightning_logs" / "version_0" / "checkpoints"
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(lit)
    trainer.save_checkpoint(folder / "last.ckpt")
    torch.save(models.ToyVAE(weights=(1.0, 3.0), noise=0.2).sample(400), "valid.pt")
    report = _cli("lightning", user_dir / "r")
    assert report["checkpoint"]["adapter"] == "lightning"
    assert report["checkpoint"]["factory"] == "models:VAE"
    assert report["checkpoint"]["config_source"] == (
        "the checkpoint's hyper_parameters, as they fit the factory's signature "
        "(dropped ['lr'])")
    # the weights reached the model (_orig_mod. stripped below model.): the known answer
    # (toy_models.py) at scale c = 0.5: mu_d = c w_d x_d / (s^2 + w_d^2), mean KL_d =
    # 0.5 (Var_x[mu_d] + var_d - 1 - log var_d), Var_x[mu_d] = c^2 w_d^2 / (s^2 + w_d^2)
    w, s2 = torch.tensor([1.0, 3.0]), 0.04
    var = s2 / (s2 + w**2)
    kl = 0.5 * (0.25 * w**2 / (s2 + w**2) + var - 1 - torch.log(var))
    for row, expected in zip(report["dimensions"], kl.tolist()):
        # the sample variance of mu over 400 inputs: relative sd sqrt(2 / 400) = 0.07 of
        # the Var_x[mu_d] term (at most the whole KL here); 0.25 is 3.5 sd
        assert row["kl"] == pytest.approx(expected, rel=0.25)


def test_torchscript_recipe(user_dir):
    from toy_models import ToyVAE

    class Scripted(ToyVAE):  # the protocol methods exported, as the recipe says
        @torch.jit.export
        def encode(self, x: torch.Tensor):
            denom = self.noise**2 + self.w**2
            return self.scale * self.w * x / denom, torch.log(self.noise**2 / denom).expand_as(x)

        @torch.jit.export
        def log_likelihood(self, x: torch.Tensor, z: torch.Tensor):
            resid = x - self.w * z
            return (-0.5 * resid**2 / self.noise**2
                    - 0.5 * math.log(2 * math.pi * self.noise**2)).sum(dim=1)

        def forward(self, x: torch.Tensor):
            return self.encode(x)[0]

    torch.jit.save(torch.jit.script(Scripted(weights=(2.0, 0.0))), "model.ts")
    torch.save(ToyVAE(weights=(2.0, 0.0)).sample(30), "valid.pt")
    assert _cli("torchscript", user_dir / "r")["checkpoint"]["adapter"] == "torchscript"


def test_he_recipe(user_dir):
    from collapse_diag.examples.he_text_vae import HeVAE

    torch.manual_seed(0)
    words = [f"w{i}" for i in range(12)]
    Path("vocab.txt").write_text("".join(f"{w} 1\n" for w in
                                         ["<pad>", "<s>", "</s>", "<unk>", *words]))
    rng = np.random.default_rng(0)
    Path("valid.txt").write_text("\n".join(" ".join(rng.choice(words, rng.integers(2, 7)))
                                           for _ in range(24)))
    namespace = {"vae": HeVAE(vocab_size=4 + len(words)).eval()}
    exec(recipe("he"), namespace)  # noqa: S102 - the documented code, as written
    report = namespace["report"]
    assert report.n_examples == 24 and report.verdict is not None and not report.errors


def test_transformer_decoder_text_vae_recipe(user_dir):
    with open("models.py", "a") as handle:
        handle.write("\nfrom recipe_models import TextVAE  # noqa: E402,F401\n")
    sys.modules.pop("models", None)
    from recipe_models import TextVAE

    torch.manual_seed(0)
    model = TextVAE(vocab_size=20, d_model=16, latent_dim=3)
    torch.save({"hparams": {"vocab_size": 20, "d_model": 16, "latent_dim": 3, "lr": 3e-4,
                            "batch_size": 32},
                "model": model.state_dict(), "epoch": 4}, "textvae.pt")
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 8, (30,), generator=gen)
    x = torch.zeros(30, 9, dtype=torch.long)  # <s>=1 w.. </s>=2, right-padded with 0
    for i, n in enumerate(lengths.tolist()):
        x[i, 0], x[i, n + 1] = 1, 2
        x[i, 1:n + 1] = torch.randint(3, 20, (n,), generator=gen)
    torch.save(x, "valid.pt")
    report = _cli("textvae", user_dir / "r")
    assert report["checkpoint"]["config_source"] == (
        "the checkpoint's hparams, as they fit the factory's signature "
        "(dropped ['batch_size', 'lr'])")
    assert report["provenance"]["method_map"] == {"encode": "encode_stats:mu_std",
                                                  "log_likelihood": "-recon_loss"}
    # the map's forms: logvar = 2 log std, log p(x|z) = -recon_loss
    mu, std = model.encode_stats(x[:4])
    z = torch.randn(4, 3, generator=gen)
    with torch.no_grad():
        from collapse_diag import map_methods

        mapped = map_methods(model, {"encode": "encode_stats:mu_std",
                                     "log_likelihood": "-recon_loss"})
        got_mu, got_logvar = mapped.encode(x[:4])
        torch.testing.assert_close(got_logvar, 2 * std.log(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mapped.log_likelihood(x[:4], z), -model.recon_loss(x[:4], z))
