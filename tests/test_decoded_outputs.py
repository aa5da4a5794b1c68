"""What the decoder makes of z (issue 24): known answers for the diversity figures and the views.

Models whose answers are known by construction:

* the linear Gaussian ToyVAE with ``generate(z) = w z`` (its decoder's mean): the
  exact posterior makes q(z) = p(z) = N(0, I), so the variance ratio is
  sum_d w_d^2 / sum_d (w_d^2 + s^2); all w_d = 0 (the decoder ignores z) gives 0;
* a token decoder writing one token, ``2 + [z_0 > 0]``: under q(z) = N(0, I) half
  the decodes differ from any fixed one; a decoder writing a constant sentence, 0;
* the digits MLP with the decoder's weights from z_5..z_7 zeroed: those rows of the
  traversal grid are constant, the others are not.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from scipy import stats
from toy_models import ToyVAE

from collapse_diag import analyze
from collapse_diag.diagnostics.estimators.diversity import (
    differ_fraction,
    distinct_n,
    token_change,
    token_distance,
    variance_ratio,
)
from collapse_diag.examples.digits_vae import DigitsVAE, load_binary_digits
from collapse_diag.examples.sequence_vae import build_sequence_vae, sample_inputs
from collapse_diag.examples.text_vae import build_text_vae
from collapse_diag.render.decoded_section import HOW_TO_ADD
from collapse_diag.render.document import build_document
from collapse_diag.render.markdown import render_markdown
from collapse_diag.render.plots_decoded import plot_decoded_traversal
from collapse_diag.report.schema import SUMMARY_KEY as S

DECODED = ("kl", "decoded")


class GeneratingToy(ToyVAE):
    """ToyVAE with ``generate(z)``: the decoder's mean w z."""

    def generate(self, z):
        return self.w * z


class OneTokenToy(ToyVAE):
    """ToyVAE whose ``generate`` writes one token, ``2 + [z_0 > threshold]``, then padding."""

    threshold = 0.0

    def generate(self, z):
        token = 2 + (z[:, :1] > self.threshold).long()
        return torch.cat([token, torch.zeros_like(token)], dim=1)


def _levenshtein(a, b):
    """Brute-force recursion (the independent reference)."""
    if not a or not b:
        return len(a) + len(b)
    return min(_levenshtein(a[1:], b) + 1, _levenshtein(a, b[1:]) + 1,
               _levenshtein(a[1:], b[1:]) + (a[0] != b[0]))


def test_token_distance_matches_a_brute_force_levenshtein():
    rng = random.Random(0)
    assert token_distance((), ()) == 0.0
    assert token_distance((1, 2, 3), (1, 9, 3)) == pytest.approx(1 / 3, abs=1e-12)
    for _ in range(200):
        a = tuple(rng.randrange(3) for _ in range(rng.randrange(6)))
        b = tuple(rng.randrange(3) for _ in range(rng.randrange(6)))
        if a or b:
            assert token_distance(a, b) == pytest.approx(
                _levenshtein(a, b) / max(len(a), len(b)), abs=1e-12)


def test_token_change_of_many_rows_matches_the_brute_force_row_by_row():
    # All rows at once (padded to the longest): each row's distance is the recursion's,
    # exactly (integer distances over integer lengths), whatever the other rows' lengths.
    rng = random.Random(1)
    for _ in range(60):
        reference = tuple(rng.randrange(3) for _ in range(rng.randrange(7)))
        rows = [tuple(rng.randrange(3) for _ in range(rng.randrange(9)))
                for _ in range(rng.randrange(1, 8))]
        expected = [_levenshtein(r, reference) / max(len(r), len(reference))
                    if r or reference else 0.0 for r in rows]
        assert token_change(rows, reference).tolist() == pytest.approx(expected, abs=1e-12)
    assert token_change([], (1, 2)).shape == (0,)


def test_differ_fraction_interval_is_clopper_pearson_and_distinct_n_counts():
    rows = [(1, 2)] * 7 + [(1, 3)] * 3
    fraction, (low, high), count = differ_fraction(rows, (1, 2), 0.95)
    assert (fraction, count) == (0.3, 3)
    # Clopper-Pearson from the beta quantiles (independent of scipy.stats.binomtest)
    assert low == pytest.approx(stats.beta.ppf(0.025, 3, 8), abs=1e-9)
    assert high == pytest.approx(stats.beta.ppf(0.975, 4, 7), abs=1e-9)
    assert distinct_n(rows, 1) == pytest.approx(3 / 20)  # tokens 1, 2, 3 of 20
    assert distinct_n(rows, 2) == pytest.approx(2 / 10)  # bigrams (1,2), (1,3) of 10
    assert distinct_n([()], 2) is None


def test_variance_ratio_of_a_scaled_copy_and_of_a_constant():
    g = torch.Generator().manual_seed(0)
    x = np.random.default_rng(0).normal(size=(300, 4))
    ratio, (low, high) = variance_ratio(0.5 * x, x, 200, 0.95, g)
    assert ratio == pytest.approx(0.25, abs=1e-12)  # the ratio of every resample too
    assert low == pytest.approx(0.25, abs=1e-9) and high == pytest.approx(0.25, abs=1e-9)
    assert variance_ratio(np.ones_like(x), x, 50, 0.95, g)[0] == 0.0
    assert variance_ratio(x, np.ones_like(x), 50, 0.95, g) == (None, None)


@pytest.mark.parametrize("weights", [(2.0, 1.0, 0.0), (0.0, 0.0, 0.0)])
def test_variance_ratio_of_the_linear_gaussian_decoder_matches_its_closed_form(weights):
    model, s = GeneratingToy(weights, 0.5), 0.5
    x = model.sample(3000, seed=1)
    report = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=3000,
                     decoded_bootstrap=200)
    w2 = float(np.sum(np.square(weights)))
    expected = w2 / (w2 + len(weights) * s * s)  # 5 / 5.75 = 0.870, and 0
    summary = report.summary
    assert summary[S.output_kind] == "continuous" and report.errors == {}
    # M = 3000 draws: the standard error of the ratio is about 0.03 here; 0.06 is 2 of them
    assert summary[S.output_diversity] == pytest.approx(expected, abs=0.06)
    low, high = summary[S.output_diversity_ci]
    assert low <= summary[S.output_diversity] <= high and high - low < 0.15
    if w2 == 0:
        assert summary[S.output_diversity] == 0.0 and high == 0.0


def test_token_diversity_is_a_half_for_a_sign_decoder_and_zero_for_a_constant_one():
    x = OneTokenToy((2.0, 1.0), 0.5).sample(400, seed=2)
    report = analyze(OneTokenToy((2.0, 1.0), 0.5), x, seed=0, diagnostics=DECODED,
                     decoded_samples=1000, decoded_bootstrap=200)
    summary = report.summary
    assert summary[S.output_kind] == "tokens"
    low, high = summary[S.differ_fraction_ci]
    assert low < 0.5 < high and high - low < 0.07  # exact interval at M = 1000: +-0.031
    # one token per decode: the share of tokens that change is the differ fraction
    assert summary[S.output_diversity] == pytest.approx(summary[S.differ_fraction], abs=1e-12)
    assert summary[S.distinct_1] == pytest.approx(2 / 1000)

    constant = OneTokenToy((2.0, 1.0), 0.5)
    constant.threshold = 1e9  # the decoder writes token 2 whatever z is
    summary = analyze(constant, x, seed=0, diagnostics=DECODED, decoded_samples=200,
                      decoded_bootstrap=100).summary
    assert summary[S.output_diversity] == 0.0 and summary[S.differ_fraction] == 0.0
    # exact upper end for 0 of 200: 1 - 0.025^(1/200)
    assert summary[S.differ_fraction_ci][1] == pytest.approx(1 - 0.025 ** (1 / 200), rel=1e-6)


def test_same_seed_same_figures_whatever_the_batch_size():
    model = GeneratingToy((2.0, 1.0, 0.0), 0.5)
    x = model.sample(200, seed=3)
    a, b = (analyze(model, x, seed=4, diagnostics=DECODED, batch_size=size,
                    decoded_samples=100, decoded_bootstrap=50).summary for size in (7, 64))
    for key in (S.output_diversity, S.output_diversity_ci, S.decoded_views):
        _close(a[key], b[key], key)  # batches of 7 or 64: equal up to float rounding


def _digits_with_ignored_dims() -> tuple[DigitsVAE, torch.Tensor]:
    torch.manual_seed(0)
    model = DigitsVAE(latent_dim=8).eval()
    with torch.no_grad():
        model.decoder[0].weight[:, 5:] = 0.0  # the decoder does not read z5, z6, z7
        model.decoder[0].weight[:, :5] *= 3.0
    return model, load_binary_digits()[0][:300]


def test_traversal_rows_of_ignored_dimensions_are_constant_in_the_pixels():
    model, x = _digits_with_ignored_dims()
    report = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=64,
                     decoded_bootstrap=0, decoded_steps=5)
    views = report.summary[S.decoded_views]
    assert views["shape"] == [8, 8] and report.summary[S.output_diversity_ci] is None
    rows = {row["dimension"]: np.array(row["decoded"]) for row in views["traversal"]}
    assert sorted(rows) == list(range(8)) and all(r.shape == (5, 64) for r in rows.values())
    for d, pixels in rows.items():
        spread = float(np.ptp(pixels, axis=0).max())  # largest change of a pixel along the row
        if d >= 5:
            assert spread <= 2e-4, d  # identical up to float32 rounding and the 4 decimals kept
        else:
            assert spread > 0.05, d
    # the figure draws exactly those pixels, on one grey scale
    fig = plot_decoded_traversal(report)
    images = [ax.get_images()[0] for ax in fig.axes]
    assert len({im.get_clim() for im in images}) == 1
    order = [row["dimension"] for row in views["traversal"]]
    for r, d in enumerate(order):
        drawn = [np.asarray(im.get_array()) for im in images[r * 5:(r + 1) * 5]]
        assert np.allclose(drawn[0], rows[d][0].reshape(8, 8))
        assert (max(float(np.ptp(np.stack(drawn), axis=0).max()), 0.0) <= 2e-4) == (d >= 5)


def test_sequential_latents_variance_ratio_closed_form():
    model = build_sequence_vae(weights=(2.0, 0.0), steps=16, used_steps=8, noise=0.5)
    model.generate(torch.zeros(1, 16, 2))  # defined on the example model
    x = sample_inputs(model, 1500, seed=0)
    summary = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=1500,
                      decoded_bootstrap=0).summary
    # Var g = 4 at the 8 used steps of z_0 (32); Var x = 8 * 4.25 + 8 * 0.25 (used steps, z_0
    # and z_1) + 8 * 2 * 0.25 (noise only after them) = 40. M = 1500: SE about 0.02
    assert summary[S.output_diversity] == pytest.approx(32 / 40, abs=0.05)
    assert summary[S.decoded_views]["shape"] == [16, 2]


SENTENCES = ["the sailor disliked a cold morning .", "our guide loved a scenic journey .",
             "the striker hates a sloppy season .", "next week my cousin will hate it ."]


def _text_model_and_inputs():
    torch.manual_seed(0)
    model = build_text_vae(embed_dim=8, hidden_dim=16, latent_dim=3, z_every_step=True).eval()
    return model, model.tokenize(SENTENCES * 3)


def _text_report(**settings):
    model, x = _text_model_and_inputs()
    return model, analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=16,
                          decoded_bootstrap=20, **settings)


def test_text_model_decodes_sentences_shown_as_tables():
    model, report = _text_report(decoded_examples=2, decoded_steps=3)
    summary = report.summary
    assert summary[S.output_kind] == "tokens" and report.errors == {}
    views = summary[S.decoded_views]
    assert views["reconstructions"][0]["text"] in SENTENCES
    assert [c["code"] for c in views["from_codes"]][:2] == ["mean of q(z)", "prior draw 1"]
    assert len(views["homotopy"]["decoded"]) == 3
    assert [len(e["decoded"]) for e in views["traversal"]] == [3, 3, 3]  # latent_dim 3
    ids = model.generate(torch.zeros(2, 3))  # greedy: ids, <eos>, then padding
    assert ids.dtype == torch.long and ids.shape == (2, 20)
    assert ids[0].tolist() == ids[1].tolist() and len(model.detokenize(ids)) == 2
    sampled = model.generate(torch.zeros(2, 3), sample=True,
                             generator=torch.Generator().manual_seed(1))
    again = model.generate(torch.zeros(2, 3), sample=True,
                           generator=torch.Generator().manual_seed(1))
    assert torch.equal(sampled, again)  # seeded sampling is reproducible
    document = build_document(report, drawn=())
    section = next(s for s in document.sections if s.title == "What the decoder makes of z")
    assert len(section.tables) == 5  # diversity, reconstructions, codes, homotopy, traversal
    text = render_markdown(document, {})
    assert "decoded from (1 - t) mu(x\\_" in text and "distinct-2" in text
    assert "Decoded from different codes" not in text  # no image plots for text


def test_without_generate_the_section_says_how_to_add_it_and_nothing_else_changes():
    model = ToyVAE((2.0, 1.0), 0.5)
    x = model.sample(50, seed=1)
    report = analyze(model, x, seed=0, diagnostics=("kl", "activity", "verdict", "decoded"))
    assert report.summary[S.output_kind] == "unavailable"
    assert all(report.summary[key] is None for key in (
        S.output_diversity, S.output_diversity_ci, S.decoded_views, S.differ_fraction))
    assert report.errors == {} and report.warnings == []
    document = build_document(report, drawn=())
    section = next(s for s in document.sections if s.title == "What the decoder makes of z")
    assert section.paragraphs == (HOW_TO_ADD,) and section.tables == ()
    plots = next(s for s in document.sections if s.title == "Plots")
    assert not any(f.name.startswith("decoded") for f in plots.figures)
    assert "generate(z)" in render_markdown(document, {})
    assert math.isfinite(report.summary[S.kl])


def test_wrap_gives_a_model_generate():
    from collapse_diag import wrap

    toy = ToyVAE((2.0, 0.0), 0.5)
    model = wrap(toy, encode=lambda m, x: m.encode(x),
                 log_likelihood=lambda m, x, z: m.log_likelihood(x, z),
                 generate=lambda m, z: m.w * z)
    x = toy.sample(400, seed=5)
    summary = analyze(model, x, seed=0, diagnostics=DECODED, decoded_bootstrap=0).summary
    # Var g = 4 (z_0), Var x = 4.25 + 0.25: 4 / 4.5 = 0.889; M = 256 codes: SE about 0.04
    assert summary[S.output_kind] == "continuous"
    assert summary[S.output_diversity] == pytest.approx(4 / 4.5, abs=0.1)


def _close(got, want, key):
    """Equal labels, texts and structure; numbers within 1e-4 (a unit of the 4th decimal)."""
    if isinstance(want, dict):
        assert set(got) == set(want), key
        for k in want:
            _close(got[k], want[k], f"{key}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), key
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{key}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-4), key
    else:
        assert got == want, key


def test_sharded_decodes_give_the_report_of_one_process(monkeypatch):
    """map_shard as 3 processes would run it (shards of 7 codes, not block-aligned)."""
    from collapse_diag.runtime import distributed

    def serial(n, compute, block=None):  # noqa: ARG001 - the simulated shards use their own
        parts = [tuple(compute(r.start, r.stop))
                 for r in (distributed.shard(n, rank, 3, block=7) for rank in range(3))]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))

    cases = [_text_model_and_inputs(), (GeneratingToy((2.0, 1.0, 0.0), 0.5),
                                        GeneratingToy((2.0, 1.0, 0.0), 0.5).sample(60, seed=1))]
    for model, x in cases:
        plain = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=40,
                        decoded_bootstrap=30, batch_size=5).summary
        with monkeypatch.context() as patch:
            patch.setattr(distributed, "map_shard", serial)
            sharded = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=40,
                              decoded_bootstrap=30, batch_size=5).summary
        # the encoder pass is sharded too: mu moves by float rounding (KL by ~1e-10 here), so
        # a value may move by as much (a pixel kept to 4 decimals by one unit), a decode not
        for key in (S.output_kind, S.decoded_samples, S.decoded_views, S.differ_fraction,
                    S.distinct_1, S.distinct_2):
            _close(sharded[key], plain[key], key)
        for key in (S.output_diversity, S.output_diversity_ci):
            assert np.allclose(sharded[key], plain[key], rtol=1e-6, atol=1e-12), key


def test_he_adapter_greedy_decode_is_the_argmax_of_its_teacher_forced_decoder():
    """Independent reference: fed its own output, the decoder's arg max is that output."""
    from collapse_diag.examples.he_text_vae import PAD_ID, HeTextVAEAdapter, HeVAE

    torch.manual_seed(0)
    vocab = ["<pad>", "<s>", "</s>", "<unk>", *(f"w{i}" for i in range(8))]
    adapter = HeTextVAEAdapter(HeVAE(vocab_size=len(vocab)).eval(), vocab)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    ids = adapter.generate(z, max_len=6)
    assert ids.shape == (5, 6) and ids.dtype == torch.long
    with torch.no_grad():
        inputs = torch.cat([torch.ones(5, 1, dtype=torch.long), ids[:, :-1]], dim=1)
        best = adapter.vae.decoder.decode(inputs, z[:, None, :]).argmax(dim=-1)
    for row, reference in zip(ids.tolist(), best.tolist()):
        end = row.index(2) + 1 if 2 in row else len(row)  # through </s>; padding after it
        assert row[:end] == reference[:end] and all(t == PAD_ID for t in row[end:])
    lines = adapter.detokenize(ids)
    assert len(lines) == 5 and all(w in vocab for line in lines for w in line.split())


def test_text_vae_greedy_decode_is_the_argmax_of_its_teacher_forced_decoder():
    model, _ = _text_model_and_inputs()
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(3)) * 3
    ids = model.generate(z, max_len=8)
    bos, eos = model.index["<bos>"], model.index["<eos>"]
    with torch.no_grad():  # the teacher-forced pass of log_likelihood, on the decodes
        emb = model.embed(torch.cat([torch.full((6, 1), bos), ids[:, :-1]], dim=1))
        emb = torch.cat([emb, z[:, None, :].expand(-1, emb.shape[1], -1)], dim=2)
        best = model.to_vocab(model.decoder(emb, model._initial_state(z))[0]).argmax(dim=2)
    for row, reference in zip(ids.tolist(), best.tolist()):
        end = row.index(eos) + 1 if eos in row else len(row)
        assert row[:end] == reference[:end] and all(t == 0 for t in row[end:])


def test_sequential_decoder_reading_z_early_has_zero_diversity_in_the_late_windows():
    """Known answer: generate(z) = w z_t for t < 8, 0 after; 4 windows of 4 steps.

    A late window's codes change only steps the decoder does not read: every decode equals
    the one at the mean of q(z), diversity exactly 0 (interval within rounding of 0). An
    early window holds 4 of the 8 read steps of z_0: sum_p Var g_p = 4 w^2 = 16 of the
    inputs' 40 (the closed form above), 0.4; M = 400 puts its SE near 0.03.
    """
    model = build_sequence_vae(weights=(2.0, 0.0), steps=16, used_steps=8, noise=0.5)
    x = sample_inputs(model, 400, seed=0)
    report = analyze(model, x, seed=0, diagnostics=DECODED, decoded_samples=400,
                     decoded_bootstrap=50, decoded_examples=3)
    windows = report.summary[S.output_diversity_by_window]
    assert [(w["start"], w["stop"]) for w in windows] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    early, late = windows[:2], windows[2:]
    for w in late:
        assert w["output_diversity"] == 0.0
        assert w["output_diversity_ci"] == pytest.approx([0.0, 0.0], abs=1e-12)
    for w in early:
        assert w["output_diversity"] == pytest.approx(16 / 40, abs=0.1)
        assert w["output_diversity_ci"][0] > 0.2
    views = report.summary[S.decoded_views]["windows"]
    for w in views[2:]:  # other inputs' codes in a late window: the decode at the mean
        assert all(d == w["decoded"][0] for d in w["decoded"])
    assert len({tuple(d) for d in views[0]["decoded"]}) == 3
    markdown = render_markdown(build_document(report, drawn=()), {})
    assert "here steps 8–11, steps 12–15 (the output is the same" in markdown
    assert "| steps 0–3 |" in markdown and "| steps 12–15 | 0" in markdown
    from collapse_diag.render.plots_decoded_windows import (
        plot_decoded_window_diversity,
        plot_decoded_window_grid,
    )
    assert plot_decoded_window_diversity(report) is not None
    assert plot_decoded_window_grid(report) is not None


def test_vector_latents_have_no_windows():
    model = GeneratingToy((2.0, 1.0, 0.0), 0.5)
    summary = analyze(model, model.sample(40, seed=1), seed=0, diagnostics=DECODED,
                      decoded_samples=8, decoded_bootstrap=0).summary
    assert summary[S.output_diversity_by_window] is None
    assert "windows" not in summary[S.decoded_views]


def test_sequential_token_decoder_reading_z_early_has_zero_token_change_late():
    """Tokens 2 + [z_t0 > 0] for the 8 read steps: late windows change no token."""
    base = build_sequence_vae(weights=(2.0, 0.0), steps=16, used_steps=8, noise=0.5)

    class Tokens(type(base)):
        def generate(self, z):
            return 2 + (z[:, :8, 0] > 0).long()

    model = Tokens((2.0, 0.0), 16, 8, 0.5, 0.0)
    report = analyze(model, sample_inputs(model, 120, seed=0), seed=0, diagnostics=DECODED,
                     decoded_samples=60, decoded_bootstrap=50, decoded_examples=3)
    windows = report.summary[S.output_diversity_by_window]
    assert [w["output_diversity"] for w in windows[2:]] == [0.0, 0.0]
    assert all(w["output_diversity"] > 0.1 for w in windows[:2])  # ~2 of 8 tokens: 0.25
    markdown = render_markdown(build_document(report, drawn=()), {})
    assert "code z put there (mean of q(z) elsewhere)" in markdown


def test_text_traversal_rows_of_a_dimension_the_decoder_ignores_are_one_sentence():
    """The one-token decoder reads z_0 only: z_1 and z_2 rows repeat one sentence, z_0's not."""

    class Worded(OneTokenToy):
        def detokenize(self, ids):
            words = {2: "no", 3: "yes"}
            return [" ".join(words[int(t)] for t in row if int(t)) for row in ids]

    model = Worded((2.0, 1.0, 0.0), 0.5)
    report = analyze(model, model.sample(200, seed=2), seed=0, diagnostics=DECODED,
                     decoded_samples=50, decoded_bootstrap=0, decoded_steps=5)
    traversal = report.summary[S.decoded_views]["traversal"]
    assert [e["dimension"] for e in traversal] == [0, 1, 2]  # largest KL first (w = 2, 1, 0)
    rows = {e["dimension"]: e["decoded"] for e in traversal}
    # z_0 goes over its 2.5..97.5 percentiles under q(z) = N(0, 1): about -2 to 2, across 0
    assert rows[0][0] == "no" and rows[0][-1] == "yes"
    for d in (1, 2):  # z_0 held at the mean of q(z): one sentence along the row
        assert len(set(rows[d])) == 1 and len(rows[d]) == 5
    markdown = render_markdown(build_document(report, drawn=()), {})
    assert "| dimension (range under q(z)) | 1 (low) | 2 | 3 | 4 | 5 (high) |" in markdown
