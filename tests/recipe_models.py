"""A Transformer-decoder text VAE written in its own style (tests/test_recipes.py).

``encode_stats(x) -> (mu, std)`` from the masked mean of the token embeddings;
``recon_loss(x, z) -> [batch]``: the summed next-token cross-entropy of a causal
``nn.TransformerDecoder`` whose memory is z, pad targets ignored. Right padding
is masked on both sides, so the padding self-check passes without ``num_tokens``.
"""

import torch
import torch.nn.functional as F
from torch import nn


class TextVAE(nn.Module):
    def __init__(self, vocab_size=20, d_model=16, latent_dim=3, pad_id=0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, d_model)
        self.stats = nn.Linear(d_model, 2 * latent_dim)
        self.memory = nn.Linear(latent_dim, d_model)
        layer = nn.TransformerDecoderLayer(d_model, nhead=2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers=1)
        self.out = nn.Linear(d_model, vocab_size)

    def encode_stats(self, x):
        keep = (x != self.pad_id).unsqueeze(-1).float()
        pooled = (self.embed(x) * keep).sum(1) / keep.sum(1).clamp(min=1)
        mu, log_std = self.stats(pooled).chunk(2, dim=-1)
        return mu, log_std.exp()

    def recon_loss(self, x, z):
        inputs, targets = x[:, :-1], x[:, 1:]
        length = inputs.shape[1]
        causal = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        hidden = self.decoder(self.embed(inputs), self.memory(z).unsqueeze(1), tgt_mask=causal)
        logits = self.out(hidden)
        return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=self.pad_id,
                               reduction="none").sum(1)
