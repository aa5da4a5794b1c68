"""The bundled corpus, the reference models, their training and the shipped checkpoints."""

import numpy as np
import pytest
import torch

from collapse_diag import analyze
from collapse_diag.diagnostics.probes import probe_factors
from collapse_diag.examples import DESCRIPTIONS, SHIPPED
from collapse_diag.examples.corpus import (
    DEFAULT_N,
    DEFAULT_SEED,
    FACTORS,
    generate_corpus,
    grammar_words,
    load_corpus,
)
from collapse_diag.examples.digits_vae import build_digits_vae, load_binary_digits
from collapse_diag.examples.text_vae import build_text_vae
from collapse_diag.io.checkpoint import load_checkpoint, resolve_factory
from collapse_diag.model.protocol import check_model

# Thresholds of the shipped-model checks.
COLLAPSED_MAX_KL = 0.05  # nats, mean total KL of the collapsed text VAE
ACTIVE_VAR = 0.01  # Burda et al. active-unit threshold on Var_x[mu_d]
HEALTHY_PROBE_GAIN = 0.2  # healthy: accuracy >= baseline + this on some factor
COLLAPSED_PROBE_MARGIN = 0.05  # collapsed: accuracy < baseline + this on every factor


# ---- corpus ------------------------------------------------------------------------


def test_corpus_is_deterministic_and_seeded():
    a, b = generate_corpus(300, seed=5), generate_corpus(300, seed=5)
    assert a == b
    assert generate_corpus(300, seed=6).sentences != a.sentences
    assert generate_corpus(100, seed=5).sentences == a.sentences[:100]


def test_corpus_labels_and_words():
    corpus = generate_corpus(500, seed=1)
    assert set(corpus.labels) == set(FACTORS)
    words = set(grammar_words())
    for name, values in corpus.labels.items():
        assert len(values) == 500 and set(values) == set(range(len(FACTORS[name])))
    for i, sentence in enumerate(corpus.sentences):
        tokens = sentence.split()
        assert set(tokens) <= words and tokens[-1] == "."
        assert ("because" in tokens) == (corpus.labels["length"][i] == 1)
        assert ("will" in tokens) == (corpus.labels["tense"][i] == 2)


def test_shipped_tsv_is_the_default_corpus():
    assert load_corpus() == generate_corpus(DEFAULT_N, DEFAULT_SEED)


# ---- reference models --------------------------------------------------------------


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(0)
    return build_text_vae(embed_dim=8, hidden_dim=16, latent_dim=4).eval()


@pytest.fixture(scope="module")
def digits_model():
    torch.manual_seed(0)
    return build_digits_vae(hidden_dim=16, latent_dim=3).eval()


def test_tokenize_round_trip(text_model):
    lines = generate_corpus(20, seed=3).sentences
    x = text_model.tokenize(lines)
    assert x.dtype == torch.long and x.shape[0] == 20
    assert text_model.detokenize(x) == lines
    assert text_model.num_tokens(x).tolist() == [len(s.split()) + 1 for s in lines]
    assert text_model.detokenize(text_model.tokenize(["The zebra ."])) == ["the <unk> ."]


def test_text_model_follows_the_protocol(text_model):
    x = text_model.tokenize(generate_corpus(6, seed=0).sentences)
    info = check_model(text_model, x)
    assert info.latent_dim == 4 and info.has_num_tokens


def test_digits_model_follows_the_protocol(digits_model):
    x, y = load_binary_digits()
    assert x.shape == (1797, 64) and set(x.unique().tolist()) == {0.0, 1.0}
    assert y.dtype == torch.long
    info = check_model(digits_model, x[:8])
    assert info.latent_dim == 3 and not info.has_num_tokens


def test_padding_does_not_change_the_results(text_model):
    lines = ["the chef loved a fresh soup .",
             "yesterday the chef loved a fresh soup because it was very great ."]
    alone = text_model.tokenize(lines[:1])
    batch = text_model.tokenize(lines)
    z = torch.randn(1, 4)
    with torch.no_grad():
        for a, b in zip(text_model.encode(alone), text_model.encode(batch)):
            torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(text_model.log_likelihood(alone, z),
                                   text_model.log_likelihood(batch[:1], z))


@pytest.mark.parametrize("which", ["text", "digits"])
def test_log_likelihood_many_z_and_gradient(which, text_model, digits_model):
    if which == "text":
        model, latent = text_model, 4
        x = text_model.tokenize(generate_corpus(3, seed=0).sentences)
    else:
        model, latent = digits_model, 3
        x = load_binary_digits()[0][:3]
    reps = 200  # the decoder-side diagnostics stack hundreds of z variants per call
    xs = x.repeat(reps, *([1] * (x.dim() - 1)))
    z = torch.randn(3 * reps, latent, requires_grad=True)
    ll = model.log_likelihood(xs, z)
    assert ll.shape == (3 * reps,) and bool(torch.isfinite(ll).all()) and bool((ll < 0).all())
    (grad,) = torch.autograd.grad(ll.sum(), z)
    assert grad.shape == z.shape and float(grad.abs().sum()) > 0
    torch.testing.assert_close(ll.detach(), model.log_likelihood(xs, z.detach()))


# ---- shipped checkpoints -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    """name -> (model, data, labels, mu, logvar) of every shipped checkpoint."""
    out = {}
    for name, path in SHIPPED.items():
        loaded = load_checkpoint(path)
        with torch.no_grad():
            mu, logvar = loaded.model.encode(loaded.data)
        out[name] = (loaded.model, loaded.data, loaded.labels, mu.double(), logvar.double())
    return out


def test_shipped_files_load_with_weights_only():
    assert set(SHIPPED) == set(DESCRIPTIONS) == {"text_collapsed", "text_healthy", "digits"}
    for path in SHIPPED.values():
        assert path.stat().st_size < 2_000_000
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert payload["collapse_diag"] == 1
        model = resolve_factory(payload["factory"], from_file=True)(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        n = payload["data"].shape[0]
        assert n >= 500
        for values in payload["labels"].values():
            assert values.dtype == torch.long and values.shape == (n,)
        check_model(model.eval(), payload["data"])


def test_shipped_data_are_the_held_out_corpus(shipped):
    model, data, labels, _, _ = shipped["text_healthy"]
    corpus = load_corpus()
    assert model.detokenize(data) == corpus.sentences[-len(data):]
    assert labels["topic"].tolist() == corpus.labels["topic"][-len(data):]


def _kl(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def test_shipped_encoders_collapsed_and_healthy(shipped):
    _, _, _, mu, logvar = shipped["text_collapsed"]
    assert float(_kl(mu, logvar).sum(1).mean()) < COLLAPSED_MAX_KL
    assert int((mu.var(0, unbiased=False) >= ACTIVE_VAR).sum()) == 0
    for name in ("text_healthy", "digits"):
        _, _, _, mu, logvar = shipped[name]
        assert int((mu.var(0, unbiased=False) >= ACTIVE_VAR).sum()) >= 2, name


def _probes(entry):
    _, _, labels, mu, logvar = entry
    return probe_factors(mu.numpy(), {k: v.numpy() for k, v in labels.items()}, seed=0,
                         logvar=logvar.numpy()).factors


def test_shipped_probes(shipped):
    healthy = _probes(shipped["text_healthy"])
    assert max(p.accuracy - p.baseline for p in healthy.values()) >= HEALTHY_PROBE_GAIN
    assert healthy["topic"].dimensions
    collapsed = _probes(shipped["text_collapsed"])
    for name, p in collapsed.items():
        assert p.accuracy < p.baseline + COLLAPSED_PROBE_MARGIN, name
        assert p.dimensions == [], name
    digits = _probes(shipped["digits"])["digit"]
    assert digits.accuracy >= digits.baseline + HEALTHY_PROBE_GAIN


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_properties(tmp_path):
    from collapse_diag.examples.train import main

    main(["--out", str(tmp_path)])
    for name in SHIPPED:
        loaded = load_checkpoint(tmp_path / f"{name}.pt")
        with torch.no_grad():
            mu, logvar = (t.double() for t in loaded.model.encode(loaded.data))
        entry = (loaded.model, loaded.data, loaded.labels, mu, logvar)
        probes = _probes(entry)
        gains = np.array([p.accuracy - p.baseline for p in probes.values()])
        verdict = analyze(loaded.model, loaded.data, labels=loaded.labels).summary["verdict"]
        if name == "text_collapsed":
            assert float(_kl(mu, logvar).sum(1).mean()) < COLLAPSED_MAX_KL
            assert (gains < COLLAPSED_PROBE_MARGIN).all()
            assert verdict == "collapsed"
        else:
            assert int((mu.var(0, unbiased=False) >= ACTIVE_VAR).sum()) >= 2
            assert gains.max() >= HEALTHY_PROBE_GAIN
            assert verdict != "collapsed"
