"""Issue 14: each failure route found by feeding bad inputs, pinned by one test.

Library-level checks (protocol additions, minimum inputs, settings, labels,
data formats) and the CLI exit codes they map to: 2 for option values, 3 for
unusable inputs (no report written), 4 only when a report was written.
"""

import json
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from models_for_tests import LinearVAE
from toy_models import ToyVAE

import collapse_diag
from collapse_diag import (
    CheckpointError,
    DataError,
    InvalidParameterError,
    ProtocolError,
    check_model,
    load_checkpoint,
)
from collapse_diag.config.settings import MAX_SEED
from collapse_diag.diagnostics.minimums import MIN_INPUTS
from collapse_diag.io.data import load_data
from collapse_diag_cli.main import main

TESTS = Path(__file__).parent
FAST = ["--per-dim-swap-examples", "8", "--prior-samples", "2", "--format", "json", "-q"]


@pytest.fixture
def hostile_dir(user_dir, monkeypatch):
    shutil.copy(TESTS / "hostile_models.py", user_dir / "hostile.py")
    monkeypatch.delitem(sys.modules, "hostile", raising=False)
    monkeypatch.syspath_prepend(str(user_dir))
    yield user_dir
    sys.modules.pop("hostile", None)


@contextmanager
def time_limit(seconds):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    class Hung(BaseException):  # not an OSError: no reader's except clause may eat it
        pass

    fired = []

    def fire(signum, frame):
        fired.append(signum)  # seen even if the CLI turns the exception into an exit code
        raise Hung(f"still running after {seconds} s: it hangs")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if fired:
        pytest.fail(f"still running after {seconds} s: it hangs")


def run(*args):
    return CliRunner().invoke(main, [os.fsdecode(a) if isinstance(a, Path) else str(a)
                                     for a in args])


def exits(result, code, message=""):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == 3:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in result.output, result.output


def save(path, factory="models:ToyVAE", config=None, state=None, data=None, **extra):
    torch.save({"collapse_diag": 1, "factory": factory, "config": config or {},
                "state_dict": ToyVAE().state_dict() if state is None else state,
                "data": ToyVAE().sample(40) if data is None else data, **extra}, path)
    return path


def hostile(name, x=None):
    import hostile as module

    return getattr(module, name)(), (ToyVAE().sample(40) if x is None else x)


# ---- protocol: gradient reaches z, rows independent, deterministic, logvar bounds -------

@pytest.mark.parametrize("name", ["DetachZ", "ItemZ", "NumpyZ"])
def test_no_gradient_to_z_is_a_protocol_error_not_a_silent_fisher_zero(hostile_dir, name):
    model, x = hostile(name)
    with pytest.raises(ProtocolError, match="no gradient reaches z"):
        check_model(model, x)
    with pytest.raises(ProtocolError, match="no gradient reaches z"):
        collapse_diag.analyze(model, x, per_dim_swap_examples=4, prior_samples=2)


def test_rows_mixing_is_a_protocol_error(hostile_dir):
    with pytest.raises(ProtocolError, match=r"mixes rows.*input\(s\) \[1, 2, 3\]"):
        check_model(*hostile("MixRows"))


def test_nondeterministic_decoder_is_a_protocol_error(hostile_dir):
    with pytest.raises(ProtocolError, match="deterministic"):
        check_model(*hostile("Noisy"))


def _late_marked(n=60):
    """Inputs whose first four look ordinary and the rest carry the 'late' mark."""
    x = ToyVAE().sample(n)
    x[4:, 2] = 5.0
    return x


@pytest.mark.parametrize(("name", "message"), [("MixRowsLater", "mixes rows"),
                                               ("NoisyLater", "deterministic")])
def test_a_protocol_break_after_the_first_inputs_is_caught(hostile_dir, name, message):
    """check_model alone sees the first four inputs; analyze checks a seeded random batch too."""
    model, x = hostile(name, _late_marked())
    check_model(model, x)  # the first four inputs are fine
    with pytest.raises(ProtocolError, match=message):
        collapse_diag.analyze(model, x, diagnostics=["kl", "activity"])


def test_encoder_batch_statistics_are_a_protocol_error(hostile_dir):
    with pytest.raises(ProtocolError, match=r"encode\(x\) mixes rows"):
        check_model(*hostile("EncoderBatchStats"))


def test_a_model_writing_into_its_input_is_named_and_the_callers_data_is_safe(hostile_dir):
    model, x = hostile("WritesIntoX")
    kept = x.clone()
    with pytest.raises(ProtocolError, match="writes into its input x"):
        collapse_diag.analyze(model, x, diagnostics=["kl", "activity"])
    assert torch.equal(x, kept)  # the model ran on a copy


def test_discrete_inputs_with_a_positive_log_likelihood_are_refused(hostile_dir):
    class LossNotLogProb(torch.nn.Module):
        """Token inputs; returns the cross-entropy (a loss, > 0) as 'log p(x|z)'."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def encode(self, x):
            return torch.zeros(len(x), 2) + self.w * 0, torch.zeros(len(x), 2)

        def log_likelihood(self, x, z):
            return 2.0 + (z * self.w).sum(dim=1) * 0.1 + x.float().sum(dim=1) * 0

    with pytest.raises(ProtocolError, match=r"> 0 for discrete \(integer\) inputs"):
        check_model(LossNotLogProb(), torch.randint(0, 5, (8, 6)))


def test_a_decoder_ignoring_z_is_legitimate(hostile_dir):
    assert check_model(*hostile("IgnoresZ")).latent_dim == 3


@pytest.mark.parametrize("name", ["TinyLogvar", "HugeLogvar"])
def test_logvar_outside_bounds_is_refused(hostile_dir, name):
    model, x = hostile(name)
    with pytest.raises(ProtocolError, match=r"outside the supported range \[-30, 30\]"):
        collapse_diag.analyze(model, x)


def test_logvar_bounds_are_checked_on_every_batch_not_only_the_first_four(hostile_dir):
    class LateTiny(ToyVAE):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return mu, logvar - 1000.0 * (len(x) > 4)

    with pytest.raises(ProtocolError, match="outside the supported range"):
        collapse_diag.analyze(LateTiny(), ToyVAE().sample(40))


def test_encoder_values_are_checked_over_all_rows_once_not_per_batch():
    # The encoder pass checks finiteness and the logvar range once on all its rows (no device
    # sync per batch): a NaN in a late batch is still found, and counted over every row.
    class LateNaN(ToyVAE):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return torch.where((x[:, :1] > 1.0) & (len(x) > 4), float("nan"), mu), logvar

    x = ToyVAE().sample(300, seed=1)
    expected = int((x[:, 0] > 1.0).sum()) * 3  # every row with x_0 > 1: all of its 3 dims
    with pytest.raises(ProtocolError, match=rf"encode\(x\) mu contains {expected} NaN"):
        collapse_diag.analyze(LateNaN(), x, batch_size=16)


def test_late_prior_and_token_count_values_are_still_refused():
    base = LinearVAE(W=np.eye(2), sigma=0.5, A=0.8 * np.eye(2), logvar=[-1.0, -1.0])

    class LatePrior(LinearVAE):
        def prior(self, x):
            mu = torch.zeros(len(x), 2, dtype=x.dtype)
            return mu, mu + 100.0 * (len(x) > 4)  # prior logvar 100 beyond the first four

    class LateTokens(LinearVAE):
        def num_tokens(self, x):
            return torch.full((len(x),), 0 if len(x) > 4 else 3)

    x = torch.randn(60, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    args = dict(W=base.W, sigma=0.5, A=base.A, logvar=base.lv)
    with pytest.raises(ProtocolError, match=r"prior\(x\) returned logvar in \[100, 100\]"):
        collapse_diag.analyze(LatePrior(**args), x, batch_size=16)
    with pytest.raises(ProtocolError, match="must be positive for every example"):
        collapse_diag.analyze(LateTokens(**args), x, batch_size=16)


def test_float_data_is_cast_to_the_model_dtype():
    model = LinearVAE(W=np.eye(2), sigma=0.5, A=0.8 * np.eye(2), logvar=[-1.0, -1.0])
    x32 = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    report = collapse_diag.analyze(model, x32, per_dim_swap_examples=4, prior_samples=2)
    reference = collapse_diag.analyze(model, x32.double(), per_dim_swap_examples=4,
                                      prior_samples=2)
    assert not report.errors
    assert report.summary["kl"] == pytest.approx(reference.summary["kl"], rel=1e-12)


def test_encoder_failing_after_the_first_batch_is_exit_3(hostile_dir):
    model, x = hostile("EncodeFailsLater")
    with pytest.raises(ProtocolError, match="encode.*failed with RuntimeError"):
        collapse_diag.analyze(model, x)
    path = save(hostile_dir / "e.pt", "hostile:EncodeFailsLater")
    exits(run("analyze", path, "--out", hostile_dir / "r", *FAST), 3, "encode(x) failed")
    assert not (hostile_dir / "r").exists()


# ---- SystemExit from user code -------------------------------------------------------------

@pytest.mark.parametrize("name", ["ExitsInFactory", "ExitsInEncode"])
def test_sys_exit_in_user_code_is_exit_3_without_report(hostile_dir, name):
    path = save(hostile_dir / "x.pt", f"hostile:{name}")
    exits(run("analyze", path, "--out", hostile_dir / "r", *FAST), 3, "SystemExit")
    assert not (hostile_dir / "r").exists()


@pytest.mark.parametrize(("name", "raised"), [("BaseExceptionInFactory", "Abort"),
                                              ("GeneratorExitInEncode", "GeneratorExit")])
def test_base_exceptions_from_user_code_are_exit_3_one_line(hostile_dir, name, raised):
    path = save(hostile_dir / "x.pt", f"hostile:{name}")
    exits(run("analyze", path, "--out", hostile_dir / "r", *FAST), 3,
          f"raised {raised}")
    assert not (hostile_dir / "r").exists()


def test_sys_exit_in_the_decoder_during_a_diagnostic_is_recorded(hostile_dir):
    path = save(hostile_dir / "x.pt", "hostile:ExitsInDecoder")
    result = run("analyze", path, "--out", hostile_dir / "r", *FAST)
    assert result.exit_code == 4, result.output
    payload = json.loads((hostile_dir / "r" / "report.json").read_text())
    assert "SystemExit" in payload["errors"]["sensitivity"]


# ---- minimum inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, MIN_INPUTS["verdict"] - 1])
def test_too_few_inputs_for_a_verdict_is_refused(n):
    model = ToyVAE(weights=(2.0, 1.5))
    with pytest.raises(DataError, match=f"{n} input\\(s\\) are too few: the verdict needs at "
                                        f"least {MIN_INPUTS['verdict']}"):
        collapse_diag.analyze(model, model.sample(n))


def test_too_few_inputs_through_the_cli_is_exit_3(toy_checkpoint, user_dir):
    for n in (1, 2, 3, 4):
        exits(run("analyze", toy_checkpoint, "--max-examples", n, "--out", user_dir / "r",
                  *FAST), 3, "needs at least 20")
    assert not (user_dir / "r").exists()


def test_at_the_minimum_a_healthy_model_is_not_called_collapsed():
    model = ToyVAE(weights=(2.0, 1.5))
    for seed in range(3):
        x = model.sample(MIN_INPUTS["verdict"], seed=seed)
        report = collapse_diag.analyze(model, x, seed=seed, per_dim_swap_examples=8)
        assert report.summary["verdict"] != "collapsed" and not report.errors


def test_diagnostics_with_lower_minimums_run_on_fewer_inputs():
    report = collapse_diag.analyze(ToyVAE(), ToyVAE().sample(1), diagnostics=["kl"])
    assert report.summary["kl"] > 0 and not report.errors


# ---- settings: finite and in range ---------------------------------------------------------

@pytest.mark.parametrize("setting", [
    {"kl_eps": float("inf")}, {"kl_eps": 1e300}, {"kl_eps": float("nan")},
    {"active_threshold": float("inf")}, {"flatness_threshold": float("nan")},
    {"fisher_rank_atol": float("nan")}, {"fisher_rank_atol": float("inf")},
    {"seed": 2**32}, {"seed": 2**70}, {"prior_samples": 10**9}, {"swap_bootstrap": 10**12},
])
def test_settings_must_be_finite_and_in_range(setting):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(setting))}' parameter"):
        collapse_diag.analyze(ToyVAE(), ToyVAE().sample(30), **setting)


@pytest.mark.parametrize("args", [
    ["--kl-eps", "inf"], ["--kl-eps", "1e300"], ["--kl-eps", "nan"],
    ["--active-threshold", "inf"], ["--active-threshold", "nan"], ["--seed", str(2**32)],
    ["--prior-samples", str(10**9)],
])
def test_cli_option_values_out_of_range_are_exit_2(toy_checkpoint, user_dir, args):
    result = run("analyze", toy_checkpoint, "--out", user_dir / "r", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (user_dir / "r").exists()


def test_the_largest_seed_runs_every_diagnostic_including_the_probes():
    model = ToyVAE()
    x = model.sample(60)
    report = collapse_diag.analyze(model, x, labels={"sign": (x[:, 0] > 0).long().numpy()},
                                   seed=MAX_SEED, per_dim_swap_examples=4, prior_samples=2)
    assert not report.errors


# ---- labels --------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [np.linspace(0, 1, 30), np.arange(30) % 2 == 0,
                                    np.array(["a", "b"] * 15)])
def test_non_integer_labels_are_a_data_error_up_front(values):
    with pytest.raises(DataError, match="integer array"):
        collapse_diag.analyze(ToyVAE(), ToyVAE().sample(30), labels={"f": values})


@pytest.mark.parametrize("labels", [torch.linspace(0, 1, 40), torch.arange(40) % 2 == 0])
def test_float_or_bool_labels_in_a_checkpoint_are_exit_3(user_dir, labels):
    path = save(user_dir / "l.pt", labels={"f": labels})
    exits(run("analyze", path, "--out", user_dir / "r", *FAST), 3, "integer (not bool)")


# ---- checkpoint contents -------------------------------------------------------------------

@pytest.mark.parametrize("config", [[1, 2], "abc", 5, 2.5, True, {"1bad": 1}])
def test_config_that_is_not_keyword_arguments_is_exit_3(user_dir, config):
    path = _with_config(save(user_dir / "c.pt"), config)
    exits(run("analyze", path, "--out", user_dir / "r", *FAST), 3, "must be a JSON object")
    (user_dir / "cfg.json").write_text(json.dumps(config))
    exits(run("analyze", user_dir / "c.pt", "--config", user_dir / "cfg.json", "--out",
              user_dir / "r", *FAST), 3, "must be a JSON object")


def _with_config(path, config):
    payload = torch.load(path, weights_only=True)
    payload["config"] = config
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(("state", "message"), [
    ({**ToyVAE().state_dict(), "scale": torch.zeros(5)}, "size mismatch"),
    ({**ToyVAE().state_dict(), "scale": torch.zeros(3, dtype=torch.complex64)}, "complex64"),
    ({**ToyVAE().state_dict(), "scale": torch.zeros(3, dtype=torch.bool)}, "dtype torch.bool"),
    ({"scale": torch.ones(3)}, "missing keys ['w']"),
    ({**ToyVAE().state_dict(), "extra": torch.ones(1)}, "unexpected keys ['extra']"),
    ({1: torch.ones(1)}, "non-string names"),
])
def test_weights_that_do_not_fit_are_exit_3(user_dir, state, message):
    result = run("analyze", save(user_dir / "w.pt", state=state), "--out", user_dir / "r", *FAST)
    exits(result, 3, message)
    assert "[]" not in result.output  # no empty "missing keys []"


def test_factory_that_fails_to_build_is_exit_3(hostile_dir):
    exits(run("analyze", save(hostile_dir / "f.pt", "hostile:RaisesInFactory"), *FAST), 3,
          "failed with RuntimeError: factory exploded")


@pytest.mark.parametrize("version", [2, "1", 1.0, True, None])
def test_odd_format_versions_are_exit_3(user_dir, version):
    path = save(user_dir / "v.pt")
    payload = torch.load(path, weights_only=True)
    payload["collapse_diag"] = version if version is not None else torch.ones(2)
    torch.save(payload, path)
    exits(run("analyze", path, *FAST), 3, "format version")


# ---- data formats --------------------------------------------------------------------------

@pytest.mark.parametrize("array", [
    np.array([["a", "b", "c"]] * 30), np.zeros((30, 3), "M8[s]"), np.zeros((30, 3), "m8[s]"),
    np.zeros(30, dtype=[("a", "f4"), ("b", "f4")]), np.zeros((30, 3), "S3"),
])
def test_non_numeric_arrays_are_exit_3(toy_checkpoint, user_dir, array):
    np.save(user_dir / "x.npy", array)
    np.savez(user_dir / "x.npz", a=array)
    for name in ("x.npy", "x.npz"):
        exits(run("analyze", toy_checkpoint, "--data", user_dir / name, "--out", user_dir / "r",
                  *FAST), 3, "not numbers")


def test_big_endian_arrays_are_read(toy_checkpoint, user_dir):
    x = ToyVAE().sample(40).numpy().astype(">f8")
    np.save(user_dir / "be.npy", x)
    exits(run("analyze", toy_checkpoint, "--data", user_dir / "be.npy", "--out", user_dir / "r",
              *FAST), 0)


def test_an_npy_header_claiming_more_than_the_file_holds_is_exit_3(toy_checkpoint, user_dir):
    np.save(user_dir / "x.npy", np.zeros((1000, 3)))
    raw = (user_dir / "x.npy").read_bytes()
    (user_dir / "x.npy").write_bytes(raw[:400])
    exits(run("analyze", toy_checkpoint, "--data", user_dir / "x.npy", *FAST), 3,
          "is truncated: its header claims shape (1000, 3)")


def test_a_zip_claiming_too_much_is_refused_before_reading(user_dir, monkeypatch):
    import collapse_diag.io.files as files

    path = save(user_dir / "z.pt")
    monkeypatch.setattr(files, "MAX_UNPACKED_BYTES", 100)
    with pytest.raises(CheckpointError, match="claims .* bytes once unpacked"):
        load_checkpoint(path)
    np.savez_compressed(user_dir / "z.npz", a=np.zeros((100, 3)))
    with pytest.raises(DataError, match="decompression bomb"):
        load_data(user_dir / "z.npz")


def test_an_oversized_config_is_refused(toy_checkpoint, user_dir, monkeypatch):
    import collapse_diag.io.model_building as model_building

    (user_dir / "cfg.json").write_text(json.dumps({"noise": 0.5, "pad": "x" * 500}))
    monkeypatch.setattr(model_building, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(CheckpointError, match="at most 100 are read"):
        load_checkpoint(toy_checkpoint, config=user_dir / "cfg.json")


# ---- files and paths -----------------------------------------------------------------------

@pytest.mark.parametrize("role", ["checkpoint", "--config", "--data", "report"])
def test_a_fifo_is_refused_without_blocking(toy_checkpoint, user_dir, role):
    fifo = user_dir / "fifo"
    os.mkfifo(fifo)
    args = {"checkpoint": ["analyze", fifo], "--config": ["analyze", toy_checkpoint, "--config",
                                                         fifo],
            "--data": ["analyze", toy_checkpoint, "--data", fifo],
            "report": ["render", user_dir / "rep"]}[role]
    if role == "report":
        (user_dir / "rep").mkdir()
        os.mkfifo(user_dir / "rep" / "report.json")
    with time_limit(20):
        exits(run(*args, *([] if role == "report" else FAST)), 3, "not a regular file")


def test_a_trailing_slash_or_a_folder_is_exit_3(toy_checkpoint, user_dir):
    exits(run("analyze", f"{toy_checkpoint}/", "--out", user_dir / "r", *FAST), 3,
          "names a folder")
    # a folder may be a pythae model folder (issue 13); any other folder is unusable input
    exits(run("analyze", user_dir, "--out", user_dir / "r", *FAST), 3, "is a folder")
    assert not (user_dir / "r").exists()


def test_non_utf8_file_names(toy_checkpoint, user_dir):
    odd = user_dir / os.fsdecode(b"mod\xffel.pt")
    shutil.copy(toy_checkpoint, odd)
    result = run("analyze", odd, "--out", user_dir / os.fsdecode(b"r\xfe"), *FAST)
    exits(result, 0)
    report = json.loads((user_dir / os.fsdecode(b"r\xfe") / "report.json").read_text())
    assert report["checkpoint"]["path"].endswith("mod\\xffel.pt")
    exits(run("analyze", user_dir / os.fsdecode(b"gone\xff.pt"), *FAST), 3, "gone\\\\xff.pt")


def test_an_unwritable_out_is_exit_3(toy_checkpoint, user_dir):
    (user_dir / "file").write_text("x")
    exits(run("analyze", toy_checkpoint, "--out", user_dir / "file" / "sub", *FAST), 3,
          "cannot write the report")


# ---- corrupt vs unsafe ---------------------------------------------------------------------

def test_corrupt_and_unsafe_files_get_different_messages(toy_checkpoint, user_dir):
    from toy_models import MaliciousPickle

    (user_dir / "garbage.pt").write_bytes(b"\x80\x02" + b"\xff" * 50)
    (user_dir / "rawtrunc.pt").write_bytes(b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01")
    torch.save({"a": MaliciousPickle(user_dir / "pwned")}, user_dir / "evil.pt")
    for name in ("garbage.pt", "rawtrunc.pt"):
        result = run("analyze", user_dir / name, *FAST)
        exits(result, 3, "corrupt")
        assert "pickled Python objects" not in result.output
    exits(run("analyze", user_dir / "evil.pt", *FAST), 3, "contains pickled Python objects")
    assert not (user_dir / "pwned").exists()


def test_data_files_get_the_same_corrupt_vs_unsafe_messages(toy_checkpoint, user_dir):
    from toy_models import MaliciousPickle

    torch.save({"x": MaliciousPickle(user_dir / "pwned")}, user_dir / "evil.pt")
    (user_dir / "bad.pt").write_bytes(b"\x80\x02" + b"\xff" * 50)
    result = run("analyze", toy_checkpoint, "--data", user_dir / "evil.pt", *FAST)
    exits(result, 3, "data file")
    assert "contains pickled Python objects" in result.output
    assert "--trust-checkpoint" not in result.output  # data files are never unpickled
    exits(run("analyze", toy_checkpoint, "--data", user_dir / "bad.pt", *FAST), 3, "corrupt")
    assert not (user_dir / "pwned").exists()


def test_a_flat_region_at_the_codes_is_not_mistaken_for_a_detached_z():
    class DeadAtZero(ToyVAE):  # relu(z + 0.5) - 0.5: zero gradient for z < -0.5
        def log_likelihood(self, x, z):
            return super().log_likelihood(x, torch.relu(z + 0.5) - 0.5)

    class FarNegative(DeadAtZero):
        def encode(self, x):
            mu, logvar = super().encode(x)
            return mu.clamp(max=0) - 1.0, logvar  # every code in the flat region

    assert check_model(FarNegative(), ToyVAE().sample(8)).latent_dim == 3
