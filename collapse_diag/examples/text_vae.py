"""A reference LSTM text VAE that follows the collapse-diag model protocol.

The architecture is that of Bowman et al. (2016), "Generating Sentences from a
Continuous Space" (CoNLL): an LSTM encoder reads the sentence and a summary of
its states is mapped to the mean and log-variance of a diagonal Gaussian
q(z|x); an LSTM decoder, started from a state computed from z, predicts every
token from the previous ones (teacher forcing). One change from the paper: the
encoder summary is the mean of the LSTM outputs over the sentence's tokens, not
the last state; it trains markedly faster, which keeps training cheap::

    h_enc = mean_t LSTM_enc(embed(x))_t          mu, logvar = W_mu h_enc, W_lv h_enc
    (h_0, c_0) = tanh(W_z z)                     log p(x|z) = sum_t log p(x_t | x_<t, z)

With ``z_every_step=True`` z is also concatenated to every decoder input
(a common variant that makes z harder to ignore; the shipped models use it).

Protocol methods (all a model needs to be analysed; no base class required):

* ``encode(x) -> (mu, logvar)``, each ``[batch, latent_dim]``;
* ``log_likelihood(x, z) -> [batch]``: sum over the tokens of the sentence,
  ``<eos>`` included and padding excluded;
* ``num_tokens(x) -> [batch]``: tokens per sentence, ``<eos>`` included;
* ``tokenize(lines) -> x``: whitespace tokenisation into the padded batch below;
* ``generate(z) -> ids`` (greedy decoding; ``sample=True`` for seeded sampling) and
  ``detokenize(ids) -> list[str]``: what the decoder makes of z, as text.

A batch ``x`` is a LongTensor ``[batch, max_len]`` of token ids: each sentence's
tokens, then ``<eos>``, then ``<pad>`` (id 0) up to the longest sentence of the
batch. The toolkit only slices, repeats and concatenates ``x`` along dimension 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from collapse_diag.examples.corpus import grammar_words

__all__ = ["PAD", "BOS", "EOS", "UNK", "SPECIALS", "default_vocab", "TextVAE", "build_text_vae"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def default_vocab() -> list[str]:
    """Special tokens (``<pad>`` = 0, ``<bos>``, ``<eos>``, ``<unk>``), then the grammar's words."""
    return list(SPECIALS) + grammar_words()


class TextVAE(nn.Module):
    """LSTM encoder, Gaussian latent, LSTM decoder conditioned on z (Bowman et al. 2016).

    Args:
        vocab: Token strings; index 0..3 must be ``<pad>, <bos>, <eos>, <unk>``.
        embed_dim: Size of the word embeddings (shared by encoder and decoder).
        hidden_dim: Size of the encoder and decoder LSTM states.
        latent_dim: Size of z.
        z_every_step: Also feed z to the decoder at every step, not only as its
            initial state.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        embed_dim: int = 64,
        hidden_dim: int = 128,
        latent_dim: int = 16,
        z_every_step: bool = False,
    ) -> None:
        super().__init__()
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocab must start with {SPECIALS}; got {tuple(vocab[:4])}.")
        self.vocab = list(vocab)
        self.index = {word: i for i, word in enumerate(self.vocab)}
        self.latent_dim = latent_dim
        self.z_every_step = z_every_step
        self.embed = nn.Embedding(len(vocab), embed_dim, padding_idx=0)
        self.encoder = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.z_to_state = nn.Linear(latent_dim, 2 * hidden_dim)
        decoder_in = embed_dim + (latent_dim if z_every_step else 0)
        self.decoder = nn.LSTM(decoder_in, hidden_dim, batch_first=True)
        self.to_vocab = nn.Linear(hidden_dim, len(vocab))

    # ---- the protocol -------------------------------------------------------------

    def tokenize(self, lines: Sequence[str]) -> torch.Tensor:
        """Turn sentences into a padded batch of token ids.

        Args:
            lines: Sentences; tokens are separated by whitespace, matched lower-case;
                unknown words become ``<unk>``.

        Returns:
            LongTensor ``[len(lines), max_len]``: tokens, ``<eos>``, then ``<pad>`` (0).
        """
        unk, eos = self.index[UNK], self.index[EOS]
        rows = [[self.index.get(w, unk) for w in line.lower().split()] + [eos] for line in lines]
        x = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, row in enumerate(rows):
            x[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return x

    def detokenize(self, x: torch.Tensor) -> list[str]:
        """Inverse of :meth:`tokenize` (up to ``<unk>``): ``[batch, max_len]`` -> sentences."""
        eos = self.index[EOS]
        lines = []
        for row in x.tolist():
            words = row[: row.index(eos)] if eos in row else row
            lines.append(" ".join(self.vocab[i] for i in words if i != 0))
        return lines

    def num_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens per sentence, ``<eos>`` included: LongTensor ``[batch]``."""
        return (x != 0).sum(dim=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z|x) = N(mu, exp(logvar)).

        Args:
            x: Token ids ``[batch, max_len]``.

        Returns:
            ``(mu, logvar)``, each ``[batch, latent_dim]``.
        """
        outputs, _ = self.encoder(self.embed(x))  # [batch, max_len, hidden]
        mask = (x != 0).unsqueeze(2).to(outputs.dtype)  # [batch, max_len, 1]
        h = (outputs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.to_mu(h), self.to_logvar(h)

    def log_likelihood(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        word_dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Teacher-forced log p(x|z) = sum_t log p(x_t | x_<t, z), in nats.

        Args:
            x: Token ids ``[batch, max_len]``.
            z: Latent codes ``[batch, latent_dim]`` (differentiable).
            word_dropout: Training only: probability of replacing each decoder
                input word by ``<unk>`` (Bowman et al. 2016). The
                toolkit calls this method with the default 0, so it is deterministic.
            generator: Random generator for the word dropout.

        Returns:
            Tensor ``[batch]``: the log-probability summed over the non-pad tokens.
        """
        inputs = torch.cat([torch.full_like(x[:, :1], self.index[BOS]), x[:, :-1]], dim=1)
        if word_dropout > 0.0:
            drop = torch.rand(inputs.shape, generator=generator, device="cpu") < word_dropout
            drop = drop.to(x.device) & (inputs != 0)
            drop[:, 0] = False  # keep <bos>
            inputs = inputs.masked_fill(drop, self.index[UNK])
        emb = self.embed(inputs)
        if self.z_every_step:
            emb = torch.cat([emb, z.unsqueeze(1).expand(-1, emb.shape[1], -1)], dim=2)
        outputs, _ = self.decoder(emb, self._initial_state(z))
        logp = F.log_softmax(self.to_vocab(outputs), dim=2)
        token_logp = logp.gather(2, x.unsqueeze(2)).squeeze(2)
        return (token_logp * (x != 0)).sum(dim=1)

    # ---- helpers ------------------------------------------------------------------

    def _initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder LSTM state (h_0, c_0) = tanh(W_z z), each ``[1, batch, hidden_dim]``."""
        h0, c0 = torch.tanh(self.z_to_state(z)).unsqueeze(0).chunk(2, dim=2)
        return h0.contiguous(), c0.contiguous()

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_len: int = 20, sample: bool = False,
                 generator: torch.Generator | None = None, temperature: float = 1.0
                 ) -> torch.Tensor:
        """What the decoder makes of z (the protocol's optional ``generate``).

        Greedy decoding by default: at each step the most probable token given
        the tokens so far and z, so the same z always gives the same sentence.
        ``sample=True`` draws each token from softmax(logits / temperature) with
        ``generator`` (seeded sampling; the toolkit itself calls the greedy default).

        Args:
            z: Latent codes ``[batch, latent_dim]``.
            max_len: Most tokens per sentence, ``<eos>`` included.
            sample: Sample instead of taking the arg max.
            generator: Random generator for the sampling (on the CPU).
            temperature: Softmax temperature of the sampling.

        Returns:
            LongTensor ``[batch, max_len]``: token ids up to and including ``<eos>``,
            then ``<pad>`` (0), the layout of :meth:`tokenize` (:meth:`detokenize` reads it).
        """
        batch, eos = z.shape[0], self.index[EOS]
        state = self._initial_state(z)
        token = torch.full((batch, 1), self.index[BOS], dtype=torch.long, device=z.device)
        done = torch.zeros(batch, dtype=torch.bool, device=z.device)
        out = []
        for _ in range(max_len):
            emb = self.embed(token)
            if self.z_every_step:
                emb = torch.cat([emb, z.unsqueeze(1)], dim=2)
            output, state = self.decoder(emb, state)
            logits = self.to_vocab(output)[:, 0]
            if sample:
                probs = F.softmax(logits.float().cpu() / temperature, dim=1)
                token = torch.multinomial(probs, 1, generator=generator).to(z.device)
            else:
                token = logits.argmax(dim=1, keepdim=True)
            out.append(token.masked_fill(done[:, None], 0))
            done = done | (token[:, 0] == eos)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def greedy_decode(self, z: torch.Tensor, max_len: int = 20) -> list[str]:
        """Greedy decoding from latent codes ``z [batch, latent_dim]``, as sentences."""
        return self.detokenize(self.generate(z, max_len))


def build_text_vae(**config: object) -> TextVAE:
    """Build a :class:`TextVAE` (checkpoints name the class itself: ``...text_vae:TextVAE``).

    Args:
        **config: Keyword arguments of :class:`TextVAE`; ``vocab`` defaults to
            :func:`default_vocab`.
    """
    config = dict(config)
    config.setdefault("vocab", default_vocab())
    return TextVAE(**config)  # type: ignore[arg-type]
