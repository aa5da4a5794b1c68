"""Issue 25: the padding self-check without num_tokens, and batches against single inputs."""

import pytest
import torch

import collapse_diag
from collapse_diag import ProtocolError
from collapse_diag.examples.he_text_vae import PAD_ID, HeTextVAEAdapter, HeVAE
from collapse_diag.model.padding import alone, guess_pad, trailing_runs
from collapse_diag.model.protocol import check_model

SENTENCES = [[5, 6, 7], [8, 9], [5, 6, 7, 8, 9, 10], [11], [6, 7], [10, 9, 8, 7, 6]]


def _padded(sentences, extra=0):
    rows = [[1, *s, 2] for s in sentences]  # <s> ... </s>, then padding
    x = torch.full((len(rows), max(map(len, rows)) + extra), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        x[i, : len(row)] = torch.tensor(row)
    return x


def _no_count(adapter, encode=None):
    """The adapter through a method map that leaves num_tokens out (as a user's map would)."""
    return collapse_diag.wrap(adapter, encode=encode or (lambda m, x: m.encode(x)),
                              log_likelihood=lambda m, x, z: m.log_likelihood(x, z))


def test_the_pad_value_is_guessed_only_from_trailing_runs():
    x = _padded(SENTENCES)
    assert guess_pad(x) == PAD_ID
    assert trailing_runs(x, PAD_ID).tolist() == [3, 4, 0, 5, 4, 1]
    assert [(row, t.shape[1]) for row, t in alone(x, PAD_ID)] == [
        (0, 5), (1, 4), (3, 3), (4, 4), (5, 7)]
    equal = torch.tensor([[1, 5, 6, 2], [1, 7, 8, 2], [1, 9, 9, 2]])  # </s> closes every row
    assert guess_pad(equal) is None  # runs of one: an end token, not padding
    inside = x.clone()
    inside[0, 1] = PAD_ID  # the "pad" also inside a row: content, not padding
    assert guess_pad(inside) is None
    assert guess_pad(x.float()) is None and guess_pad(x[:, :2]) is None


class NaiveEncoder(HeTextVAEAdapter):
    """The trap of issue 25: the encoder's last LSTM state is read after the pad tokens."""

    def encode(self, x):
        return self.vae.encoder(x)


def test_codes_contaminated_by_padding_are_caught_without_num_tokens():
    torch.manual_seed(0)
    vae = HeVAE(vocab_size=12).eval()
    naive = _no_count(NaiveEncoder(vae))
    assert not hasattr(naive, "num_tokens")
    with pytest.raises(ProtocolError, match=r"encode\(x\) mu depends on the padding.*token "
                                            r"id 0 was taken for padding"):
        check_model(naive, _padded(SENTENCES))
    with pytest.raises(ProtocolError, match="depends on the padding"):
        collapse_diag.analyze(naive, _padded(SENTENCES * 5), per_dim_swap_examples=4,
                              prior_samples=2)
    check_model(_no_count(HeTextVAEAdapter(vae)), _padded(SENTENCES))  # masked: passes


def test_single_input_calls_catch_what_the_batch_variants_cannot_reach():
    torch.manual_seed(0)
    vae = HeVAE(vocab_size=12).eval()
    x = _padded(SENTENCES)  # row 2 has no padding: no common trailing column to trim
    width = x.shape[1]

    def encode(m, batch):  # refuses longer batches, so only the single inputs are compared
        if batch.shape[1] > width:
            raise ValueError("longer than the model's maximum length")
        return m.vae.encoder(batch)

    with pytest.raises(ProtocolError, match=r"for input 0 .* called alone"):
        check_model(_no_count(NaiveEncoder(vae), encode=encode), x)


def test_with_num_tokens_the_single_input_calls_run_too():
    torch.manual_seed(0)
    adapter = NaiveEncoder(HeVAE(vocab_size=12).eval())  # has num_tokens
    original = adapter.encode

    def capped(x):
        if x.shape[1] > 8:
            raise ValueError("too long")
        return original(x)

    adapter.encode = capped
    with pytest.raises(ProtocolError, match="called alone"):
        check_model(adapter, _padded(SENTENCES))
