"""He et al. (2019)-style LSTM text VAE, and the adapter that analyses it on padded batches.

He, Spokoyny, Neubig & Berg-Kirkpatrick (2019), "Lagging Inference Networks
and Posterior Collapse in Variational Autoencoders" (ICLR; github.com/jxhe/
vae-lagging-encoder): the text-VAE code most papers start from. Its layout,
reproduced by :class:`HeLSTMEncoder`, :class:`HeLSTMDecoder`, :class:`HeVAE`:

* a sentence is ``<s> w_1 ... w_n </s>``; batches hold sentences of *equal
  length* (its data iterator groups them by length), so nothing is masked:
  the encoder's summary is the LSTM's last state, which with padding would be
  the state after the pad tokens;
* ``encoder(x) -> (mean, logvar)``; ``encoder.encode(x, nsamples) -> (z, KL)``
  with z of shape ``[batch, nsamples, nz]`` (clashing with the protocol's
  ``encode``);
* ``decoder.reconstruct_error(x, z) -> [batch, nsamples]``: teacher-forced
  cross-entropy of ``x[:, 1:]`` given ``x[:, :-1]`` and z (fed at every step),
  summed over tokens, pad ignored;
* the vocabulary is not saved with the model.

:class:`HeTextVAEAdapter` gives such a model the protocol on *padded* batches
(``[batch, max_len]``, pad id :data:`PAD_ID` = 0 after ``</s>``), equal to what
the model computes on equal-length batches:

    encode(x): the encoder LSTM over pack_padded_sequence(x, lengths): its last
        state is the state at each sentence's own ``</s>``;
    log_likelihood(x, z) = -reconstruct_error(x, z[:, None, :])[:, 0]: the decoder
        LSTM is causal (right padding cannot change earlier positions) and pad
        targets are ignored;
    num_tokens(x) = tokens predicted per sentence (w_1 .. w_n and </s>);
    tokenize(lines) with the vocabulary given to the adapter;
    generate(z): greedy decoding from ``<s>`` (ids up to ``</s>``, then pad), and
        detokenize(ids) (the words, or the ids without a vocabulary).

A naive adapter calling ``model.encoder(x)`` on padded batches reads the pads
and gives other codes; ``check_model``'s padding self-check refuses it
(docs/adapters.md#padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["PAD_ID", "HE_SPECIALS", "HeLSTMEncoder", "HeLSTMDecoder", "HeVAE",
           "HeTextVAEAdapter"]

#: Id of ``<pad>``; He et al.'s VocabEntry puts ``<pad>`` at 0, ``<s>`` at 1, ``</s>`` at 2.
PAD_ID = 0
HE_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


class HeLSTMEncoder(nn.Module):
    """He et al.'s LSTMEncoder: last LSTM state -> (mean, logvar)."""

    def __init__(self, vocab_size: int, ni: int = 32, nh: int = 64, nz: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, ni)
        self.lstm = nn.LSTM(ni, nh, batch_first=True)
        self.linear = nn.Linear(nh, 2 * nz, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` LongTensor ``[batch, len]`` (no padding) -> mean, logvar ``[batch, nz]``."""
        _, (last_state, _) = self.lstm(self.embed(x))
        mean, logvar = self.linear(last_state).chunk(2, -1)
        return mean.squeeze(0), logvar.squeeze(0)

    def encode(self, x: torch.Tensor, nsamples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """He's ``encode``: z ``[batch, nsamples, nz]`` (reparameterised) and KL ``[batch]``."""
        mu, logvar = self.forward(x)
        eps = torch.randn(mu.shape[0], nsamples, mu.shape[1], device=mu.device)
        z = mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)
        return z, kl


class HeLSTMDecoder(nn.Module):
    """He et al.'s LSTMDecoder: z initialises the cell and is fed at every step."""

    def __init__(self, vocab_size: int, ni: int = 32, nh: int = 64, nz: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, ni, padding_idx=PAD_ID)
        self.trans_linear = nn.Linear(nz, nh, bias=False)
        self.lstm = nn.LSTM(ni + nz, nh, batch_first=True)
        self.pred_linear = nn.Linear(nh, vocab_size, bias=False)
        self.loss = nn.CrossEntropyLoss(ignore_index=PAD_ID, reduction="none")

    def decode(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch * nsamples, len, vocab]`` of the next tokens; z ``[batch, n, nz]``."""
        batch, n, nz = z.shape
        seq_len = x.shape[1]
        embed = self.embed(x).unsqueeze(1).expand(batch, n, seq_len, -1).reshape(
            batch * n, seq_len, -1)
        z_flat = z.reshape(batch * n, nz)
        inputs = torch.cat([embed, z_flat.unsqueeze(1).expand(-1, seq_len, -1)], dim=-1)
        c_init = self.trans_linear(z_flat).unsqueeze(0)
        output, _ = self.lstm(inputs, (torch.tanh(c_init), c_init))
        return self.pred_linear(output)

    def reconstruct_error(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``x[:, 1:]`` given ``x[:, :-1]`` and z: ``[batch, nsamples]``."""
        src, tgt = x[:, :-1], x[:, 1:]
        batch, n = z.shape[0], z.shape[1]
        logits = self.decode(src, z)
        tgt = tgt.unsqueeze(1).expand(batch, n, -1).reshape(-1)
        loss = self.loss(logits.reshape(-1, logits.shape[-1]), tgt)
        return loss.reshape(batch, n, -1).sum(-1)


class HeVAE(nn.Module):
    """He et al.'s VAE: ``encoder`` + ``decoder``; ``encode`` returns (z, KL)."""

    def __init__(self, vocab_size: int, ni: int = 32, nh: int = 64, nz: int = 8) -> None:
        super().__init__()
        self.encoder = HeLSTMEncoder(vocab_size, ni, nh, nz)
        self.decoder = HeLSTMDecoder(vocab_size, ni, nh, nz)

    def encode(self, x: torch.Tensor, nsamples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """He's ``encode``: ``(z [batch, nsamples, nz], KL [batch])``."""
        return self.encoder.encode(x, nsamples)


class HeTextVAEAdapter(nn.Module):
    """The protocol for a :class:`HeVAE` (or the original) on padded batches.

    Args:
        vae: The model: ``vae.encoder`` with ``embed``, ``lstm``, ``linear``;
            ``vae.decoder`` with ``reconstruct_error``.
        vocab: The token strings (He et al. do not save them); index 0..3
            ``<pad>, <s>, </s>, <unk>``. Needed only for :meth:`tokenize`.
    """

    def __init__(self, vae: nn.Module, vocab: Sequence[str] | None = None) -> None:
        super().__init__()
        self.vae = vae
        self.vocab = list(vocab) if vocab is not None else None
        self.index = {w: i for i, w in enumerate(self.vocab or [])}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) from the encoder's state at each sentence's own end (packed, no pads)."""
        encoder = self.vae.encoder
        lengths = (x != PAD_ID).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(encoder.embed(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, (last_state, _) = encoder.lstm(packed)
        mean, logvar = encoder.linear(last_state[-1]).chunk(2, -1)
        return mean, logvar

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log p(x|z) = -reconstruct_error(x, z[:, None]) (pad targets ignored): ``[batch]``."""
        return -self.vae.decoder.reconstruct_error(x, z.unsqueeze(1))[:, 0]

    def num_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens predicted per sentence: ``w_1 .. w_n`` and ``</s>``."""
        return (x[:, 1:] != PAD_ID).sum(dim=1)

    def tokenize(self, lines: Sequence[str]) -> torch.Tensor:
        """``<s> words </s>`` then ``<pad>``: LongTensor ``[len(lines), max_len]``."""
        if self.vocab is None:
            raise ValueError("tokenize needs the vocabulary: HeTextVAEAdapter(vae, vocab=...).")
        unk = self.index["<unk>"]
        rows = [[self.index["<s>"]] + [self.index.get(w, unk) for w in line.split()]
                + [self.index["</s>"]] for line in lines]
        x = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            x[i, : len(row)] = torch.tensor(row)
        return x

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_len: int = 20) -> torch.Tensor:
        """Greedy decoding from ``<s>`` with z fed at every step: ids ``[batch, max_len]``.

        Each row holds the tokens after ``<s>`` up to and including ``</s>``, then
        :data:`PAD_ID`, the layout :meth:`detokenize` reads.
        """
        decoder, batch = self.vae.decoder, z.shape[0]
        c = decoder.trans_linear(z).unsqueeze(0)
        state = (torch.tanh(c), c)
        token = torch.full((batch, 1), 1, dtype=torch.long, device=z.device)  # <s>
        done = torch.zeros(batch, dtype=torch.bool, device=z.device)
        out = []
        for _ in range(max_len):
            inputs = torch.cat([decoder.embed(token), z.unsqueeze(1)], dim=-1)
            output, state = decoder.lstm(inputs, state)
            token = decoder.pred_linear(output).argmax(dim=-1)
            out.append(token.masked_fill(done[:, None], PAD_ID))
            done = done | (token[:, 0] == 2)  # </s>
        return torch.cat(out, dim=1)

    def detokenize(self, ids: torch.Tensor) -> list[str]:
        """Rows of ids up to ``</s>`` as text: the words, or the ids without a vocabulary."""
        lines = []
        for row in ids.tolist():
            row = row[: row.index(2)] if 2 in row else row
            lines.append(" ".join(self.vocab[i] if self.vocab else str(i)
                                  for i in row if i not in (PAD_ID, 1)))
        return lines
