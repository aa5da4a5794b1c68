"""The command line through click's CliRunner: exit codes, messages, files."""

import json

import pytest
import torch
from click.testing import CliRunner
from toy_models import MaliciousPickle, ToyVAE

from collapse_diag import save_checkpoint
from collapse_diag_cli.main import main

FAST = ["--per-dim-swap-examples", "20", "--prior-samples", "4", "--format", "json"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_documents_every_option_and_exit_codes():
    result = run("analyze", "--help")
    assert result.exit_code == 0
    for text in ("--data", "--out", "--batch-size", "--max-examples", "--device", "--seed",
                 "--factory", "--config", "--trust-checkpoint", "--quiet", "--debug",
                 "--fail-on-collapse", "--format", "Exit codes", "4  a part failed"):
        assert text in result.output
    assert "Exit codes" in run("--help").output


def test_analyze_writes_report_and_prints_table(toy_checkpoint, user_dir):
    result = run("analyze", toy_checkpoint, "--out", user_dir / "rep", *FAST)
    assert result.exit_code == 0, result.output
    payload = json.loads((user_dir / "rep" / "report.json").read_text())
    assert payload["checkpoint"]["path"] == str(toy_checkpoint)
    assert len(payload["checkpoint"]["sha256"]) == 64
    assert "status" in result.output and "verdict partial" in result.output
    assert [p.name for p in (user_dir / "rep").iterdir()] == ["report.json"]


def test_quiet_prints_only_the_summary(toy_checkpoint, user_dir):
    result = run("analyze", toy_checkpoint, "--out", user_dir / "q", "--quiet", *FAST)
    assert result.exit_code == 0
    assert "collapse rate" not in result.output and "verdict" in result.output


def _collapsed_checkpoint(user_dir):
    model = ToyVAE(weights=(0.0, 0.0), noise=0.5)
    return save_checkpoint(user_dir / "c.pt", model, "models:ToyVAE",
                           {"weights": [0.0, 0.0], "noise": 0.5}, data=model.sample(200))


def test_fail_on_collapse_exit_code(user_dir):
    path = _collapsed_checkpoint(user_dir)
    assert run("analyze", path, "--out", user_dir / "a", *FAST).exit_code == 0
    result = run("analyze", path, "--out", user_dir / "b", "--fail-on-collapse", *FAST)
    assert result.exit_code == 1 and "verdict collapsed" in result.output


def _exit(result, code, message):
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_file(user_dir):
    _exit(run("analyze", user_dir / "nope.pt"), 3, "does not exist")


def test_truncated_file(toy_checkpoint):
    raw = toy_checkpoint.read_bytes()
    toy_checkpoint.write_bytes(raw[:100])
    _exit(run("analyze", toy_checkpoint), 3, "truncated, corrupt or not a torch file")


def test_malicious_pickle_exit_3_and_runs_nothing(user_dir):
    marker = user_dir / "pwned"
    path = user_dir / "evil.pt"
    torch.save({"model": MaliciousPickle(marker)}, path)
    _exit(run("analyze", path), 3, "--trust-checkpoint")
    assert not marker.exists()


def test_wrong_keys(user_dir):
    path = user_dir / "w.pt"
    torch.save({"collapse_diag": 1, "config": {}}, path)
    _exit(run("analyze", path), 3, "lacks the key(s)")
    torch.save({"epoch": 1}, path)
    _exit(run("analyze", path), 3, "--factory module:callable")


def test_factory_not_importable(user_dir):
    path = user_dir / "f.pt"
    torch.save({"collapse_diag": 1, "factory": "nowhere:build", "state_dict": {}}, path)
    _exit(run("analyze", path), 3, "no Python source of module 'nowhere'")


def test_state_dict_with_factory_and_config(user_dir):
    model = ToyVAE()
    path = user_dir / "plain.pt"
    torch.save({"model_state_dict": {"module." + k: v for k, v in model.state_dict().items()}},
               path)
    torch.save(model.sample(100), user_dir / "x.pt")
    (user_dir / "cfg.json").write_text(json.dumps({"noise": 0.5}))
    result = run("analyze", path, "--factory", "models:build_toy", "--config",
                 user_dir / "cfg.json", "--data", user_dir / "x.pt", "--out", user_dir / "o",
                 *FAST)
    assert result.exit_code == 0, result.output


def test_protocol_violation(user_dir):
    (user_dir / "badmodels.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Bad(nn.Module):\n"
        "    def encode(self, x):\n        return x\n"
        "    def log_likelihood(self, x, z):\n        return x.sum(1)\n")
    torch.save({"collapse_diag": 1, "factory": "badmodels:Bad", "state_dict": {},
                "data": torch.zeros(5, 2)}, user_dir / "bad.pt")
    _exit(run("analyze", user_dir / "bad.pt"), 3, "encode(x) must return a pair (mu, logvar)")


def test_no_data(user_dir):
    save_checkpoint(user_dir / "nodata.pt", ToyVAE(), "models:ToyVAE", {})
    _exit(run("analyze", user_dir / "nodata.pt"), 3, "pass the evaluation inputs with --data")


def test_empty_data(user_dir, toy_checkpoint):
    torch.save(torch.zeros(0, 3), user_dir / "empty.pt")
    _exit(run("analyze", toy_checkpoint, "--data", user_dir / "empty.pt"), 3, "no examples")


def test_missing_data_file(toy_checkpoint, user_dir):
    _exit(run("analyze", toy_checkpoint, "--data", user_dir / "none.pt"), 3, "does not exist")


@pytest.mark.parametrize(
    "args",
    [["--batch-size", "0"], ["--seed", "-1"], ["--format", "pdf"], ["--kl-eps", "0"],
     ["--no-such-option"]],
)
def test_bad_usage_exit_2(toy_checkpoint, args):
    result = run("analyze", toy_checkpoint, *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_bad_device_exit_2(toy_checkpoint, user_dir):
    _exit(run("analyze", toy_checkpoint, "--device", "nonsense", "--out", user_dir / "d"), 2,
          "'device' parameter")
    for device in ("xla", "vulkan", "meta"):  # torch parses them; this machine cannot use them
        _exit(run("analyze", toy_checkpoint, "--device", device, "--out", user_dir / "d"), 2,
              "'device' parameter")


def test_failed_diagnostic_exit_4_report_still_written(user_dir):
    (user_dir / "nanmodels.py").write_text(
        "from models import ToyVAE\n"
        "class NaNDecoder(ToyVAE):\n"
        "    def log_likelihood(self, x, z):\n"
        "        ll = super().log_likelihood(x, z)\n"
        "        return ll if len(z) <= 4 else ll * float('nan')\n")
    model = ToyVAE()
    torch.save({"collapse_diag": 1, "factory": "nanmodels:NaNDecoder", "config": {},
                "state_dict": model.state_dict(), "data": model.sample(50)}, user_dir / "n.pt")
    result = run("analyze", user_dir / "n.pt", "--out", user_dir / "r", *FAST)
    assert result.exit_code == 4
    assert "diagnostic sensitivity failed" in result.output
    payload = json.loads((user_dir / "r" / "report.json").read_text())
    assert "sensitivity" in payload["errors"] and payload["summary"]["kl"] > 0


def test_debug_shows_traceback(user_dir):
    result = run("analyze", user_dir / "nope.pt", "--debug")
    assert result.exit_code == 3 and "Traceback" in result.output


def test_render_missing_report(user_dir):
    _exit(run("render", user_dir / "empty"), 3, "does not exist")


def test_render_reproduces_documents_from_report_json(toy_checkpoint, user_dir):
    out = user_dir / "rr"
    assert run("analyze", toy_checkpoint, "--out", out, *FAST).exit_code == 0
    assert not (out / "report.html").exists()
    result = run("render", out)
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "partial" in html and (out / "report.md").is_file()
    assert run("render", out, "--format", "json").exit_code == 2
