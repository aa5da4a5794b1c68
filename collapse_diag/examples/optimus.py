"""An Optimus-style text VAE: a BERT encoder and a GPT-2 decoder, saved as two folders.

Optimus (Li et al. 2020, "Optimus: Organizing Sentences via Pre-trained
Modeling of a Latent Space", https://github.com/ChunyuanLI/Optimus) joins a
pretrained BERT (q(z|x) from the pooled [CLS] state through one linear layer)
and a pretrained GPT-2 (p(x|z), the latent injected into the decoder). It saves
each half with ``save_pretrained``: ``checkpoint-encoder-<step>/`` and
``checkpoint-decoder-<step>/``, each a ``config.json`` naming its own class
(``BertForLatentConnector``, ``GPT2ForLatentConnector``) and its weights.

This module reproduces that layout at toy size for the tests and the recipe in
docs/adapters.md (the Hugging Face adapter, collapse_diag/io/adapters/huggingface.py):

* :class:`BertForLatentConnector`: ``bert`` (a ``BertModel``) and ``linear``
  (hidden -> 2 * latent_size): ``mu, logvar = linear(pooled).chunk(2)``;
* :class:`GPT2ForLatentConnector`: ``transformer`` (a ``GPT2Model``) and
  ``linear_emb`` (latent_size -> n_embd): the *memory embedding* of Optimus,
  ``linear_emb(z)`` added to every input embedding; the output layer is the
  token embedding (tied, as GPT-2's);
* :func:`optimus_vae` is the factory that joins the folders: its parameters
  ``encoder_config`` and ``decoder_config`` receive the folders' configs.

The protocol: with ``x`` token ids ``[batch, length]`` (``<bos> w_1 .. w_n <eos> <pad>..``)::

    encode(x)            = linear(BERT(x, mask = x != pad).pooler_output).chunk(2)
    log_likelihood(x, z) = sum_t [x_t != pad] log softmax(GPT2(x_<t, z))[x_t],  t = 1..T-1
    num_tokens(x)        = #{t >= 1 : x_t != pad}

Right padding is masked on both sides, so each sentence's figures do not depend
on what it is batched with. Needs ``transformers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    GPT2Config,
    GPT2Model,
    GPT2PreTrainedModel,
)

__all__ = ["BertForLatentConnector", "GPT2ForLatentConnector", "OptimusVAE", "optimus_vae",
           "tiny_configs"]

PAD = 0


class BertForLatentConnector(BertPreTrainedModel):
    """BERT and the linear layer to (mu, logvar); ``config.latent_size`` latent dimensions."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.linear = nn.Linear(config.hidden_size, 2 * config.latent_size)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each ``[batch, latent_size]``, from ``input_ids`` ``[batch, length]``."""
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        mu, logvar = self.linear(pooled).chunk(2, dim=-1)
        return mu, logvar


class GPT2ForLatentConnector(GPT2PreTrainedModel):
    """GPT-2 reading z as a memory embedding added to its inputs; logits ``[batch, T, vocab]``."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.linear_emb = nn.Linear(config.latent_size, config.n_embd, bias=False)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, z: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits given ``input_ids`` ``[batch, T]`` and ``z`` ``[batch, latent]``."""
        embeds = self.transformer.wte(input_ids) + self.linear_emb(z)[:, None, :]
        hidden = self.transformer(inputs_embeds=embeds,
                                  attention_mask=attention_mask).last_hidden_state
        return hidden @ self.transformer.wte.weight.T


class OptimusVAE(nn.Module):
    """The protocol over the two halves (formulas in the module docstring).

    Args:
        encoder: A :class:`BertForLatentConnector`.
        decoder: A :class:`GPT2ForLatentConnector`.
        pad: The padding token id.
    """

    def __init__(self, encoder: BertForLatentConnector, decoder: GPT2ForLatentConnector,
                 pad: int = PAD) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.pad = pad

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mu, exp(logvar)); x ``[batch, length]`` token ids."""
        return self.encoder(x, (x != self.pad).long())

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log p(x|z), teacher-forced, summed over the non-pad tokens: ``[batch]``."""
        inputs, targets = x[:, :-1], x[:, 1:]
        logits = self.decoder(inputs, z, (inputs != self.pad).long())
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0]
        return (logp * (targets != self.pad)).sum(dim=1)

    def num_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted tokens per input (all but the first, pad excluded): ``[batch]``."""
        return (x[:, 1:] != self.pad).sum(dim=1)


def optimus_vae(encoder_config: BertConfig, decoder_config: GPT2Config,
                pad: int = PAD) -> OptimusVAE:
    """The factory joining Optimus's two folders (their configs in, the VAE out).

    The Hugging Face adapter passes each folder's config; it then loads the
    folders' weights into ``encoder`` and ``decoder``.
    """
    return OptimusVAE(BertForLatentConnector(encoder_config),
                      GPT2ForLatentConnector(decoder_config), pad)


def tiny_configs(vocab_size: int = 24, latent_size: int = 4, hidden: int = 16,
                 max_length: int = 32) -> tuple[BertConfig, GPT2Config]:
    """Tiny random configs (one layer, two heads), built locally: nothing is downloaded."""
    encoder = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=2 * hidden,
                         max_position_embeddings=max_length, pad_token_id=PAD,
                         latent_size=latent_size)
    decoder = GPT2Config(vocab_size=vocab_size, n_embd=hidden, n_layer=1, n_head=2,
                         n_positions=max_length, bos_token_id=1, eos_token_id=2,
                         pad_token_id=PAD, latent_size=latent_size)
    return encoder, decoder
