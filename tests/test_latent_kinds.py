"""Latent kinds: a point-mass 'VAE' and mixed kinds are refused with one line that says why."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from discrete_models import MixedKinds, PointMassVAE
from toy_models import ToyVAE

import collapse_diag
from collapse_diag import save_checkpoint
from collapse_diag.analysis import model_info
from collapse_diag.exceptions import EXIT_UNUSABLE, ProtocolError
from collapse_diag.model.latent_kinds import detect_kind
from collapse_diag.model.protocol import POINT_MASS_FRACTION, POINT_MASS_LOGVAR
from collapse_diag_cli.main import main

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("logvar", [-30.0, float("-inf"), -25.0])
def test_a_point_mass_posterior_is_refused_with_the_reason(logvar):
    x = ToyVAE().sample(40)
    with pytest.raises(ProtocolError, match="point-mass posterior") as err:
        collapse_diag.analyze(PointMassVAE(logvar), x)
    message = str(err.value)
    assert "\n" not in message and "encode_codes" in message and "autoencoder" in message
    assert err.value.exit_code == EXIT_UNUSABLE


def test_a_mostly_deterministic_posterior_is_refused_a_partly_one_is_not():
    class Partly(ToyVAE):
        def __init__(self, share):
            super().__init__()
            self.share = share

        def encode(self, x):
            mu, logvar = super().encode(x)
            pinned = torch.arange(len(x))[:, None] < self.share * len(x)
            return mu, torch.where(pinned, torch.full_like(logvar, -30.0), logvar)

    x = ToyVAE().sample(40)
    with pytest.raises(ProtocolError, match="point-mass"):
        model_info(Partly(1.0), x)
    # below the declared share, the model is a VAE with a few sharp posteriors: accepted
    assert POINT_MASS_FRACTION == 0.5 and POINT_MASS_LOGVAR == pytest.approx(-18.4207, abs=1e-4)
    model_info(Partly(0.25), x)


def test_the_point_mass_refusal_is_exit_3_on_the_command_line(tmp_path, monkeypatch):
    shutil.copy(TESTS / "discrete_models.py", tmp_path / "kinds.py")
    shutil.copy(TESTS / "toy_models.py", tmp_path / "toy_models.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kinds", raising=False)
    path = save_checkpoint(tmp_path / "p.pt", PointMassVAE(), "kinds:PointMassVAE", {},
                           data=ToyVAE().sample(60))
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "r")])
    sys.modules.pop("kinds", None)
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if "point-mass" in line]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r" / "report.json").exists()


def test_mixing_kinds_is_refused_naming_both():
    assert detect_kind(ToyVAE()) == "gaussian"
    with pytest.raises(ProtocolError, match=r"defines encode\(x\).*and encode_codes\(x\)"):
        collapse_diag.analyze(MixedKinds(), ToyVAE().sample(40))


def test_a_code_map_beyond_the_latent_limit_is_refused_before_any_report():
    """One report row per code position: analyze applies the limit every report reader
    applies (collapse_diag/config/limits.py), so it never writes a report render refuses."""
    from discrete_models import IdentityCodes

    from collapse_diag.config.limits import MAX_LATENT_DIM

    positions = MAX_LATENT_DIM + 1
    model = IdentityCodes(weights=(1.0,) * positions, codes=4)
    x = torch.randint(0, 4, (40, positions), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ProtocolError, match=rf"{positions} latent dimensions.*at most "
                                            rf"{MAX_LATENT_DIM}"):
        model_info(model, x)
