"""``dtype``: decoder passes in bfloat16 under autocast agree with float32; bad values rejected."""

import numpy as np
import pytest
import torch
from models_for_tests import LinearVAE, exact_linear_gaussian, sample_linear_data

from collapse_diag import analyze
from collapse_diag.exceptions import InvalidParameterError


class _Recording(LinearVAE):
    """A LinearVAE that records the dtype of its decoder's matrix product."""

    seen: set

    def log_likelihood(self, x, z):
        self.seen.add((z @ self.W.T).dtype)
        return super().log_likelihood(x, z)


def _model_and_data():
    base = exact_linear_gaussian([2.0, 1.0, 0.5, 0.0], sigma=0.5, obs_dim=6, seed=0)
    model = _Recording(base.W, base.sigma, base.A, base.lv).float()  # float32 buffers
    model.seen = set()
    return model, sample_linear_data(base, 300, seed=1).float()


def test_bfloat16_figures_agree_with_float32():
    model, data = _model_and_data()
    ref = analyze(model, data, seed=0, batch_size=50)
    model.seen.clear()
    low = analyze(model, data, seed=0, batch_size=50, dtype="bfloat16")
    assert torch.bfloat16 in model.seen  # the decoder's matmul really ran in bfloat16
    assert not ref.errors and not low.errors
    assert low.settings["dtype"] == "bfloat16"
    # Encoder-side figures do not use the decoder: identical.
    assert low.summary["kl"] == ref.summary["kl"]
    assert low.summary["mutual_information"] == ref.summary["mutual_information"]
    # Decoder-side figures: bfloat16 keeps 8 significant bits (relative rounding 2^-9 ~ 0.2%)
    # in z @ W; the residuals and their sums stay float32, accumulated in float64. Stated
    # tolerance: 2% relative (+ 0.05 nats absolute) on swap deltas and Fisher diagonals
    # (measured: at most 0.22%).
    for key in ("swap_delta", "fisher"):
        a = np.array([row[key] for row in ref.dimensions], dtype=float)
        b = np.array([row[key] for row in low.dimensions], dtype=float)
        np.testing.assert_allclose(b, a, rtol=0.02, atol=0.05)
    assert low.summary["swap_delta"] == pytest.approx(ref.summary["swap_delta"], rel=0.02)
    assert [r["status"] for r in low.dimensions] == [r["status"] for r in ref.dimensions]


def test_float32_runs_without_autocast():
    model, data = _model_and_data()
    analyze(model, data, seed=0, batch_size=50, diagnostics=["kl", "activity", "sensitivity"])
    assert model.seen == {torch.float32}


@pytest.mark.parametrize("bad", ["float64", "int8", "", None, 16])
def test_unknown_dtype_is_rejected(bad):
    model, data = _model_and_data()
    with pytest.raises(InvalidParameterError, match="'dtype' parameter"):
        analyze(model, data, dtype=bad)


def test_cli_dtype_option():
    from click.testing import CliRunner

    from collapse_diag_cli.main import main

    runner = CliRunner()
    assert "--dtype [float32|bfloat16|float16]" in runner.invoke(main, ["analyze", "--help"]).output
    bad = runner.invoke(main, ["analyze", "missing.pt", "--dtype", "float64"])
    assert bad.exit_code == 2 and "float64" in bad.output
