"""A reference MLP VAE with a Bernoulli decoder on scikit-learn's 8x8 digits.

The data ship with scikit-learn (:func:`sklearn.datasets.load_digits`, 1797
images, no download). Pixels (0..16) are binarised at > 7, giving 64-dim
{0, 1} vectors. The model is the original VAE of Kingma & Welling (2014),
"Auto-Encoding Variational Bayes", with MLP encoder and decoder::

    h = tanh(W_1 x)             mu, logvar = W_mu h, W_lv h     q(z|x) = N(mu, exp(logvar))
    logits = W_3 tanh(W_2 z)    log p(x|z) = sum_i log Bernoulli(x_i; sigmoid(logits_i))

Protocol methods: ``encode(x) -> (mu, logvar)``, ``log_likelihood(x, z) ->
[batch]`` and the optional ``generate(z) -> [batch, 64]``, the decoder's mean image.
A batch ``x`` is a float Tensor ``[batch, 64]`` of zeros and ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DigitsVAE", "build_digits_vae", "load_binary_digits"]


def load_binary_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The binarised 8x8 digits of scikit-learn.

    Returns:
        ``(x, y)``: float Tensor ``[1797, 64]`` of {0, 1} pixels (pixel > 7) and
        LongTensor ``[1797]`` of digit labels 0..9, in scikit-learn's order.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.data > 7).astype(np.float32))
    y = torch.from_numpy(digits.target.astype(np.int64))
    return x, y


class DigitsVAE(nn.Module):
    """MLP VAE with a diagonal Gaussian posterior and a Bernoulli decoder.

    Args:
        input_dim: Number of binary pixels (64 for 8x8 digits).
        hidden_dim: Width of the hidden layer of encoder and decoder.
        latent_dim: Size of z.
    """

    def __init__(self, input_dim: int = 64, hidden_dim: int = 128, latent_dim: int = 8) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.Tanh())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, input_dim)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z|x) = N(mu, exp(logvar)).

        Args:
            x: Binary pixels ``[batch, input_dim]``.

        Returns:
            ``(mu, logvar)``, each ``[batch, latent_dim]``.
        """
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli log p(x|z) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)], in nats.

        Args:
            x: Binary pixels ``[batch, input_dim]``.
            z: Latent codes ``[batch, latent_dim]`` (differentiable).

        Returns:
            Tensor ``[batch]``: log-likelihood summed over pixels.
        """
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean E[x|z] = sigmoid(logits): pixel probabilities ``[batch, 64]``."""
        return torch.sigmoid(self.decoder(z))


def build_digits_vae(**config: int) -> DigitsVAE:
    """Build a :class:`DigitsVAE` (checkpoints name the class itself: ``...digits_vae:DigitsVAE``).

    Args:
        **config: Keyword arguments of :class:`DigitsVAE`.
    """
    return DigitsVAE(**config)
