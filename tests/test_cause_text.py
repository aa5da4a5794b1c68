"""The cause on small text VAEs built here (GRU decoders), and its sentences in the report.

* ``reads``: a GRU decoder whose initial state is ``tanh(W z)`` with a large W, on
  sentences drawn from the model itself (z ~ N(0, I), then tokens ancestrally), so the
  decoder's own posterior p(z|x) is far from the prior in every dimension; the encoder
  is zeroed (q(z|x) = N(0, I): inference collapse by construction) -> ``inference``.
* ``flat``: the same decoder with W = 0 (it ignores z, like a plain-ELBO model whose
  decoder learnt to do without z) and the same zeroed encoder -> ``model``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from collapse_diag import analyze
from collapse_diag.render.cause_text import REMEDIES, cause_text, remedies_text

VOCAB, LENGTH, DIM, HIDDEN = 12, 8, 4, 16
SETTINGS = dict(swap_bootstrap=100, per_dim_swap_examples=40, fisher_bootstrap=50,
                mi_bootstrap=50, prior_samples=8, nll_samples=10, nll_examples=60,
                refine_examples=40, max_examples=120)


class TinyTextVAE(nn.Module):
    """Zeroed encoder; GRU decoder p(x|z) = prod_t softmax(out(GRU(emb(x_<t), tanh(W z))))."""

    def __init__(self, scale: float, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)  # weights only; the analysis never uses the global RNG
        self.emb = nn.Embedding(VOCAB + 1, HIDDEN)  # token VOCAB is <bos>
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, VOCAB)
        self.w = nn.Linear(DIM, HIDDEN, bias=False)
        with torch.no_grad():
            self.w.weight.mul_(scale)
            self.out.weight.mul_(3.0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(x.shape[0], DIM)
        return zeros, zeros

    def _logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        bos = torch.full((x.shape[0], 1), VOCAB, dtype=torch.long)
        h0 = torch.tanh(self.w(z))[None]
        states, _ = self.gru(self.emb(torch.cat([bos, x[:, :-1]], dim=1)), h0)
        return self.out(states)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self._logits(x, z), dim=-1)
        return logp.gather(-1, x[..., None])[..., 0].sum(dim=1)

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> torch.Tensor:
        """Sentences drawn from the model (z ~ N(0, I), tokens ancestrally), seeded."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, DIM, generator=g)
        x = torch.zeros(n, LENGTH, dtype=torch.long)
        for t in range(LENGTH):
            probs = torch.softmax(self._logits(x, z)[:, t], dim=-1)
            x[:, t] = torch.multinomial(probs, 1, generator=g)[:, 0]
        return x


@pytest.fixture(scope="module")
def reports():
    out = {}
    for name, scale in (("reads", 4.0), ("flat", 0.0)):
        model = TinyTextVAE(scale).eval()
        out[name] = analyze(model, model.sample(120, seed=1), **SETTINGS)
    return out


def test_a_zeroed_encoder_under_a_reading_decoder_is_inference_collapse(reports):
    r = reports["reads"]
    causes = [d["cause"] for d in r.dimensions]
    assert causes.count("inference") >= DIM - 1, causes
    assert r.summary["collapse_cause"] == "inference"
    assert r.summary["amortization_gap_ci"][0] > 0
    assert all(d["kl_refined"] > 0.05 for d in r.dimensions)
    assert "Cause of collapse: inference" in cause_text(r)
    assert REMEDIES["inference"] in remedies_text(r)


def test_a_decoder_flat_in_z_is_model_collapse(reports):
    r = reports["flat"]
    assert r.summary["verdict"] == "collapsed"
    assert [d["cause"] for d in r.dimensions] == ["model"] * DIM
    assert r.summary["collapse_cause"] == "model"
    assert np.allclose([d["kl_refined"] for d in r.dimensions], 0.0, atol=1e-6)
    assert REMEDIES["model"] in remedies_text(r) and "inference" not in remedies_text(r)


def test_a_trajectory_row_and_the_monitor_keep_the_refinement(reports):
    """Issue 21 item 6: track --full / the monitor record kl_refined and the gap."""
    from collapse_diag.runs.monitor import scalars
    from collapse_diag.runs.trajectory import row_from_report

    r = reports["reads"]
    row = row_from_report(r.to_dict(), step=7)
    assert row["summary"]["amortization_gap"] == pytest.approx(r.summary["amortization_gap"])
    assert row["summary"]["collapse_cause"] == "inference"
    assert [d["kl_refined"] for d in row["dimensions"]] == \
        pytest.approx([d["kl_refined"] for d in r.dimensions])
    logged = scalars(row)
    assert logged["collapse/amortization_gap"] == pytest.approx(r.summary["amortization_gap"])
    assert logged["collapse/kl_refined_z0"] == pytest.approx(r.dimensions[0]["kl_refined"])
