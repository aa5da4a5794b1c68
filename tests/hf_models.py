"""Models for the Hugging Face adapter tests: standard transformers classes joined by a factory.

``joined(encoder, decoder)`` receives a ``BertModel`` and a ``GPT2LMHeadModel``
loaded from their folders and reads them as a VAE with no weight of its own:
mu and logvar are the first 2 * 2 coordinates of BERT's pooled output, and z
(padded with zeros to GPT-2's width) is added to every input embedding.
"""

import torch
import torch.nn.functional as F
from torch import nn

LATENT = 2


class Joined(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x):
        pooled = self.encoder(input_ids=x, attention_mask=(x != 0).long()).pooler_output
        return pooled[:, :LATENT], pooled[:, LATENT:2 * LATENT]

    def log_likelihood(self, x, z):
        inputs, targets = x[:, :-1], x[:, 1:]
        wte = self.decoder.transformer.wte
        memory = F.pad(z, (0, wte.weight.shape[1] - z.shape[1]))
        logits = self.decoder(inputs_embeds=wte(inputs) + memory[:, None],
                              attention_mask=(inputs != 0).long()).logits
        logp = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]
        return (logp * (targets != 0)).sum(1)

    def num_tokens(self, x):
        return (x[:, 1:] != 0).sum(1)


def joined(encoder, decoder):
    return Joined(encoder, decoder)


def token_batch(n, vocab=24, max_len=9, seed=0):
    """``n`` sentences ``<bos=1> w.. <eos=2>`` of mixed length, right-padded with 0."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len - 1, (n,), generator=g)
    x = torch.zeros(n, max_len, dtype=torch.long)
    for i, length in enumerate(lengths.tolist()):
        x[i, 0] = 1
        x[i, 1:length + 1] = torch.randint(3, vocab, (length,), generator=g)
        x[i, length + 1] = 2
    return x
