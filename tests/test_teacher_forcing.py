"""The teacher-forcing contract of posterior(x, z) and prior(x, z): step t reads z[:, :t]."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from vrnn_models import PeekingVRNN, TinyVRNN

from collapse_diag import save_checkpoint
from collapse_diag.analysis import model_info
from collapse_diag.exceptions import EXIT_UNUSABLE, ProtocolError
from collapse_diag.model.causality import check_teacher_forcing
from collapse_diag.runtime.rng import generator_for
from collapse_diag_cli.main import main

TESTS = Path(__file__).resolve().parent


def test_a_model_keeping_the_contract_passes_at_every_step():
    model = TinyVRNN(steps=6)
    x = model.sample(4)
    info = model_info(model, x)
    assert info.has_posterior and info.has_prior
    for seed in range(4):  # different steps t drawn each time
        check_teacher_forcing(model, x, info, generator_for(seed, "teacher_forcing"))


@pytest.mark.parametrize(("peeks", "lag", "step", "reads"),
                         [("posterior", 0, 0, 0), ("posterior", 1, 0, 1), ("prior", 0, 0, 0)])
def test_a_model_reading_the_future_is_refused_naming_the_step(peeks, lag, step, reads):
    model = PeekingVRNN(peeks=peeks, lag=lag, steps=6)
    with pytest.raises(ProtocolError) as err:
        model_info(model, model.sample(20))
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == EXIT_UNUSABLE
    # the first output step that moves is found, and the first later code that moves it
    assert f"{peeks}(x, z) reads the future: its step {step} changes with z[:, {reads}]" \
        in message


def test_a_peek_only_at_the_last_step_is_found_when_that_step_is_drawn():
    class LastPeeks(TinyVRNN):
        def posterior(self, x, z):
            mu, logvar = super().posterior(x, z)
            late = torch.zeros_like(mu)
            late[:, -1] = z[:, -1]
            return mu + late, logvar

    model = LastPeeks(steps=3)  # 3 steps: all of them are drawn
    x = model.sample(4)
    with pytest.raises(ProtocolError, match=r"its step 2 changes with z\[:, 2\]"):
        check_teacher_forcing(model, x, model_info(TinyVRNN(steps=3), x),
                              generator_for(0, "teacher_forcing"))


def test_the_refusal_is_exit_3_on_the_command_line(tmp_path, monkeypatch):
    shutil.copy(TESTS / "vrnn_models.py", tmp_path / "peeking.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "peeking", raising=False)
    model = PeekingVRNN()
    path = save_checkpoint(tmp_path / "p.pt", model, "peeking:PeekingVRNN", {},
                           data=model.sample(40))
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "r")])
    sys.modules.pop("peeking", None)
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if "reads the future" in line]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r" / "report.json").exists()
