"""Issue 13: a real pythae model folder, He et al.-style padding, the padding self-check."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import collapse_diag
from collapse_diag import CheckpointError, ProtocolError, check_model, load_checkpoint
from collapse_diag.examples.he_text_vae import PAD_ID, HeTextVAEAdapter, HeVAE
from collapse_diag_cli.main import main

FAST = ["--per-dim-swap-examples", "8", "--prior-samples", "2", "--format", "json", "-q"]


def run(*args):
    return CliRunner().invoke(main, [os.fsdecode(a) if isinstance(a, Path) else str(a)
                                     for a in args])


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_a_real_pythae_folder_analyses_with_one_command(tmp_path, loss):
    pythae = pytest.importorskip("pythae.models")
    torch.manual_seed(0)
    vae = pythae.VAE(pythae.VAEConfig(input_dim=(1, 4, 4), latent_dim=3,
                                      reconstruction_loss=loss))
    vae.save(str(tmp_path / "pythae_vae"))
    x = np.random.default_rng(0).random((40, 1, 4, 4))  # float64, the model is float32
    np.save(tmp_path / "x.npy", x)
    result = run("analyze", tmp_path / "pythae_vae", "--data", tmp_path / "x.npy",
                 "--out", tmp_path / "r", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["checkpoint"]["adapter"] == "pythae"

    # known answer: log_likelihood = -(pythae's reconstruction loss term) - c
    model = load_checkpoint(tmp_path / "pythae_vae").model
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        mu, logvar = model.encode(xt)
        out = vae.encoder(xt)
        assert torch.equal(mu, out.embedding) and torch.equal(logvar, out.log_covariance)
        recon = vae.decoder(mu)["reconstruction"]
        _, recon_loss, _ = vae.loss_function(recon, xt, mu, logvar, mu)  # batch mean
        const = 0.5 * 16 * math.log(2 * math.pi) if loss == "mse" else 0.0
        ll = model.log_likelihood(xt, mu)
    assert float(ll.mean()) == pytest.approx(-float(recon_loss) - const, rel=1e-6)


def test_compare_analyses_pythae_folders_as_checkpoints(tmp_path):
    # A model folder given to compare is a checkpoint, not a report folder (it has no
    # report.json): both are analysed on the same inputs.
    pythae = pytest.importorskip("pythae.models")
    for seed in (0, 1):
        torch.manual_seed(seed)
        pythae.VAE(pythae.VAEConfig(input_dim=(1, 4, 4), latent_dim=3)).save(
            str(tmp_path / f"vae{seed}"))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 1, 4, 4)))
    result = run("compare", tmp_path / "vae0", tmp_path / "vae1", "--data",
                 tmp_path / "x.npy", "--out", tmp_path / "cmp", *FAST)
    assert result.exit_code == 0, result.output
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [r["name"] for r in comparison["rows"]] == ["vae0", "vae1"]
    assert len(comparison["data_groups"]) == 1  # the same inputs


def test_pythae_custom_networks_need_trust(tmp_path):
    pytest.importorskip("pythae.models")
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps(
        {"name": "VAEConfig", "input_dim": [4], "latent_dim": 2, "reconstruction_loss": "mse",
         "uses_default_encoder": False, "uses_default_decoder": True}))
    torch.save({"model_state_dict": {}}, folder / "model.pt")
    (folder / "encoder.pkl").write_bytes(b"never read")
    with pytest.raises(CheckpointError, match="cloudpickle.*--trust-checkpoint"):
        load_checkpoint(folder)
    (folder / "model_config.json").write_text(json.dumps({"name": "VQVAEConfig"}))
    with pytest.raises(CheckpointError, match="this adapter reads"):
        load_checkpoint(folder)


SENTENCES = [[5, 6, 7], [8, 9], [5, 6, 7, 8, 9, 10], [11], [6, 7], [10, 9, 8, 7, 6]]


def _padded(sentences):
    rows = [[1, *s, 2] for s in sentences]  # <s> ... </s>
    x = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        x[i, : len(row)] = torch.tensor(row)
    return x


def test_he_adapter_on_padded_batches_equals_equal_length_batching():
    torch.manual_seed(0)
    vae = HeVAE(vocab_size=12).eval()
    adapter = HeTextVAEAdapter(vae)
    x = _padded(SENTENCES)
    z = torch.randn(len(SENTENCES), 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, logvar = adapter.encode(x)
        ll = adapter.log_likelihood(x, z)
        for i, sentence in enumerate(SENTENCES):  # each sentence in its own equal-length batch
            alone = torch.tensor([[1, *sentence, 2]])
            ref_mu, ref_logvar = vae.encoder(alone)
            assert torch.allclose(mu[i], ref_mu.reshape(-1), atol=1e-6)
            assert torch.allclose(logvar[i], ref_logvar.reshape(-1), atol=1e-6)
            ref_ll = -vae.decoder.reconstruct_error(alone, z[i : i + 1, None, :])[0, 0]
            assert float(ll[i]) == pytest.approx(float(ref_ll), abs=1e-4)
    assert adapter.num_tokens(x).tolist() == [len(s) + 1 for s in SENTENCES]
    check_model(adapter, x)  # passes the padding self-check


class NaiveEncoder(HeTextVAEAdapter):
    """Pads without masking: the encoder's last state is read after the pad tokens."""

    def encode(self, x):
        return self.vae.encoder(x)


class NaiveLoss(HeTextVAEAdapter):
    """Pads without masking in the loss: pad targets are scored."""

    def log_likelihood(self, x, z):
        logits = self.vae.decoder.decode(x[:, :-1], z.unsqueeze(1))
        return -torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), x[:, 1:], reduction="none").sum(-1)


@pytest.mark.parametrize("cls, method", [(NaiveEncoder, "encode"),
                                         (NaiveLoss, "log_likelihood")])
def test_the_padding_self_check_catches_an_adapter_that_pads_without_masking(cls, method):
    torch.manual_seed(0)
    adapter = cls(HeVAE(vocab_size=12).eval())
    with pytest.raises(ProtocolError, match=rf"{method}.*depends on the padding"):
        check_model(adapter, _padded(SENTENCES))
    with pytest.raises(ProtocolError, match="depends on the padding"):
        collapse_diag.analyze(adapter, _padded(SENTENCES * 5), per_dim_swap_examples=4,
                              prior_samples=2)
