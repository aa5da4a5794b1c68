"""Reference models, a bundled corpus and shipped checkpoints: collapse-diag out of the box.

The reference models are written to be read: they show how a model follows
the protocol (``encode``, ``log_likelihood`` and, for text, ``num_tokens`` and
``tokenize``) with no base class of ours.

* :mod:`~collapse_diag.examples.corpus`: sentences from a probabilistic grammar
  with known factors (topic, sentiment, tense, length), bundled as ``data/corpus.tsv``;
* :mod:`~collapse_diag.examples.text_vae`: an LSTM text VAE (Bowman et al. 2016);
* :mod:`~collapse_diag.examples.digits_vae`: an MLP VAE with a Bernoulli decoder
  on scikit-learn's 8x8 digits;
* :mod:`~collapse_diag.examples.train`: ``python -m collapse_diag.examples.train``
  retrains the three shipped checkpoints in about two minutes on a CPU
  (and, with ``--only text_weak``, the reference model of :data:`REFERENCE`);
* :mod:`~collapse_diag.examples.track_demo`: ``collapse-diag demo --track`` trains
  the text VAE briefly with and without the remedies, saving checkpoints, and
  tracks both runs (docs/watching-collapse.md).

:data:`SHIPPED` maps each shipped model to its checkpoint file (evaluation
inputs and their known factors are stored inside) and :data:`DESCRIPTIONS` to
one line saying what it shows. Importing this package does not import torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHECKPOINT_DIR", "SHIPPED", "DESCRIPTIONS", "REFERENCE"]

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"

#: Shipped model name -> its one-line description.
DESCRIPTIONS: dict[str, str] = {
    "text_collapsed": "LSTM text VAE trained on the plain ELBO: the KL term vanishes "
    "(posterior collapse)",
    "text_healthy": "the same LSTM text VAE trained with KL annealing, free bits and "
    "word dropout: several active dimensions",
    "digits": "MLP VAE with a Bernoulli decoder on binarised 8x8 digits",
}

#: Shipped model name -> path of its checkpoint (collapse-diag format, see checkpoint.py).
SHIPPED: dict[str, Path] = {name: CHECKPOINT_DIR / f"{name}.pt" for name in DESCRIPTIONS}

#: Reference checkpoints that are not part of the demo: ``text_weak``, the LSTM text VAE
#: with 16 latent dimensions trained with free bits 0.1 and word dropout 0.5
#: (``python -m collapse_diag.examples.train --only text_weak``): every dimension
#: carries about 0.1 nats that the decoder reads weakly (per-dimension swap effects of
#: a few hundredths of a nat), the known-behaviour model of the per-dimension statuses.
REFERENCE: dict[str, Path] = {"text_weak": CHECKPOINT_DIR / "text_weak.pt"}
