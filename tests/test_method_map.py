"""Issue 25: the method map: the protocol from a model's own methods, named in strings.

Known answer: ToyVAE (tests/toy_models.py) behind other names and return shapes must give
the same figures as ToyVAE itself (same seed, same inputs): KL and MI to float rounding.
"""

import json

import pytest
import torch
from click.testing import CliRunner
from toy_models import ToyVAE

import collapse_diag
from collapse_diag import InvalidParameterError, ProtocolError, analyze, save_checkpoint
from collapse_diag.model.method_map import parse_map
from collapse_diag_cli.main import main

FAST = {"diagnostics": ["kl", "activity", "information", "sensitivity"], "seed": 3,
        "per_dim_swap_examples": 16}


class OtherNames(torch.nn.Module):
    """ToyVAE's maths under other names: (mu, std), a dict, a Normal, a per-coordinate loss."""

    def __init__(self):
        super().__init__()
        self.vae = ToyVAE()

    def encode_stats(self, x):
        mu, logvar = self.vae.encode(x)
        return mu, torch.exp(0.5 * logvar)

    def encode_dict(self, x):
        mu, logvar = self.vae.encode(x)
        return {"mean": mu, "log_var": logvar, "other": 1}

    def encode_dist(self, x):
        mu, logvar = self.vae.encode(x)
        return torch.distributions.Independent(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                               1)

    def encode_var(self, x):
        mu, logvar = self.vae.encode(x)
        return [mu, logvar.exp(), "extra"]

    def recon_loss(self, x, z):
        """Per-coordinate negative log-likelihood, [batch, 3]."""
        resid = x - self.vae.w * z
        s2 = self.vae.noise**2
        return 0.5 * resid**2 / s2 + 0.5 * torch.log(torch.tensor(2 * torch.pi * s2))

    def mean_loss(self, x, z):
        return self.recon_loss(x, z).mean(dim=1)

    def count(self, x):
        return torch.full((len(x),), 3)


@pytest.mark.parametrize("encode", ["encode_stats:mu_std", "encode_dict:dict",
                                    "encode_dist:dist", "encode_var:mu_var", "vae.encode"])
def test_every_form_gives_the_protocol_models_figures(encode):
    model = OtherNames()
    x = model.vae.sample(120)
    reference = analyze(model.vae, x, **FAST)
    mapped = collapse_diag.map_methods(model, [f"encode={encode}",
                                               "log_likelihood=-recon_loss"])
    report = analyze(mapped, x, **FAST)
    for key in ("kl", "mutual_information", "swap_delta"):
        assert report.summary[key] == pytest.approx(reference.summary[key], rel=1e-5, abs=1e-6)
    assert report.provenance["method_map"] == {"encode": encode,
                                               "log_likelihood": "-recon_loss"}
    assert reference.provenance["method_map"] is None


def test_a_mean_per_token_is_summed_with_num_tokens():
    model = OtherNames()
    x = model.vae.sample(8)
    mapped = collapse_diag.map_methods(model, {"encode": "encode_stats:mu_std",
                                               "log_likelihood": "-mean_loss:mean",
                                               "num_tokens": "count"})
    z = torch.randn(8, 3)
    torch.testing.assert_close(mapped.log_likelihood(x, z), model.vae.log_likelihood(x, z))
    missing = collapse_diag.map_methods(model, {"encode": "encode_stats:mu_std",
                                                "log_likelihood": "-mean_loss:mean"})
    with pytest.raises(ProtocolError, match="needs num_tokens"):
        missing.log_likelihood(x, z)


def test_the_models_own_methods_fill_what_the_map_leaves_out():
    vae = ToyVAE()
    mapped = collapse_diag.map_methods(vae, ["log_likelihood=log_likelihood"])
    x = vae.sample(5)
    torch.testing.assert_close(mapped.encode(x)[0], vae.encode(x)[0])
    with pytest.raises(ProtocolError, match="has no encode and the method map names none"):
        collapse_diag.map_methods(torch.nn.Linear(2, 2), ["log_likelihood=forward"])


@pytest.mark.parametrize(("entries", "message"), [
    (["encode"], "NAME=\\[-\\]ATTRIBUTE"),
    (["decode=foo"], "one of encode, log_likelihood"),
    (["encode=a:mu_sigma"], "a form of encode"),
    (["encode=-a"], "only for log_likelihood"),
    (["log_likelihood=a:median"], "a form of log_likelihood from sum, mean"),
    (["encode=a", "encode=b"], "mapped once"),
    (["encode=a b"], "an attribute name or dotted path"),
])
def test_a_bad_map_is_one_clear_error(entries, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_map(entries)


def test_a_missing_attribute_names_it():
    with pytest.raises(ProtocolError, match="has no attribute 'nope'"):
        collapse_diag.map_methods(OtherNames(), ["encode=vae.nope", "log_likelihood=x"])


def test_the_cli_applies_and_records_the_map(user_dir):
    (user_dir / "renamed.py").write_text(
        "import torch\nfrom models import ToyVAE\n\n\n"
        "class Renamed(ToyVAE):\n"
        "    def encode_stats(self, x):\n"
        "        mu, logvar = ToyVAE.encode(self, x)\n"
        "        return mu, (0.5 * logvar).exp()\n\n"
        "    def nll(self, x, z):\n"
        "        return -ToyVAE.log_likelihood(self, x, z)\n\n"
        "    encode = None\n    log_likelihood = None\n")
    vae = ToyVAE()
    path = save_checkpoint(user_dir / "r.pt", vae, "renamed:Renamed",
                           {"weights": [2.0, 1.0, 0.0], "noise": 0.5}, data=vae.sample(60))
    args = ["analyze", str(path), "--format", "json", "-q", "--per-dim-swap-examples", "8",
            "--prior-samples", "2", "--seed", "3", "--out"]
    plain = CliRunner().invoke(main, args + [str(user_dir / "plain")])
    assert plain.exit_code == 3 and "encode" in plain.output
    result = CliRunner().invoke(main, args + [str(user_dir / "mapped"), "--map",
                                              "encode=encode_stats:mu_std", "--map",
                                              "log_likelihood=-nll"])
    assert result.exit_code == 0, result.output
    report = json.loads((user_dir / "mapped" / "report.json").read_text())
    assert report["provenance"]["method_map"] == {"encode": "encode_stats:mu_std",
                                                  "log_likelihood": "-nll"}
    reference = analyze(vae, vae.sample(60), seed=3, per_dim_swap_examples=8, prior_samples=2)
    assert report["summary"]["kl"] == pytest.approx(reference.summary["kl"], rel=1e-5)


def test_compare_and_track_take_the_map(user_dir):
    from collapse_diag.runs.track import track

    vae = ToyVAE()
    paths = [save_checkpoint(user_dir / f"c{i}.pt", vae, "models:ToyVAE",
                             {"weights": [2.0, 1.0, 0.0], "noise": 0.5}, data=vae.sample(60),
                             step=i) for i in (1, 2)]
    entries = ["log_likelihood=log_likelihood:sum", "encode=encode"]
    result = track(paths, user_dir / "t", method_map=entries)
    assert len(result.analysed) == 2
    again = track(paths, user_dir / "t")  # without the map: another cache key
    assert len(again.analysed) == 2
    comparison = collapse_diag.compare(paths, method_map=entries, per_dim_swap_examples=8)
    assert all(m.report.provenance["method_map"] for m in comparison.models)
