"""Train the reference models and save them as collapse-diag checkpoints.

Usage::

    python -m collapse_diag.examples.train [--out DIR] [--only NAME] [--seed S]

trains, on the CPU in about two minutes (one thread):

* ``text_collapsed``: the LSTM text VAE on the plain ELBO. Its decoder models
  the sentences on its own and the KL term goes to zero: posterior collapse.
* ``text_healthy``: the same model and steps with the usual remedies: KL
  annealing (weight 0 -> 1 over the first 1000 steps) and word dropout (0.5)
  of Bowman et al. (2016), and free bits of Kingma et al. (2016), "Improved
  Variational Inference with Inverse Autoregressive Flow": the KL term is
  ``sum_d max(lambda, mean_batch KL_d)`` with lambda = 1 nat per dimension. All
  its dimensions stay active and z carries topic, sentiment, tense and length.
* ``digits``: the MLP VAE on binarised 8x8 digits, plain ELBO.

and, with ``--only text_weak`` (not part of the demo; about 25 s), the
weakly-used reference model: the text VAE with 16 latent dimensions, KL
annealing over 500 steps, free bits 0.1 nats and word dropout 0.5, so each
dimension carries about 0.1 nats that the decoder reads weakly.

Both text VAEs have 8 latent dimensions and feed z to the decoder at every
step; only the training objective differs. All runs use Adam and gradient
clipping at norm 5.

The text models train on the first 2000 sentences of the bundled corpus and
keep the last 1000 as evaluation inputs; the digits model keeps 500 held-out
images. Each checkpoint stores those inputs (``data``) and their known factors
(``labels``: name -> LongTensor, one value per input). The default output
folder is the one shipped with the package.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from collapse_diag.examples import CHECKPOINT_DIR
from collapse_diag.examples.corpus import load_corpus
from collapse_diag.examples.digits_vae import build_digits_vae, load_binary_digits
from collapse_diag.examples.text_vae import build_text_vae, default_vocab

__all__ = ["TrainConfig", "CONFIGS", "REFERENCE_CONFIGS", "ALL_CONFIGS", "train_model", "main"]

N_TRAIN_SENTENCES = 2000
N_EVAL_DIGITS = 500


@dataclass(frozen=True)
class TrainConfig:
    """How one reference model is trained.

    Attributes:
        factory: ``module:callable`` that rebuilds the model from ``model_config``.
        model_config: Keyword arguments of the factory (plain JSON values).
        steps: Optimiser steps.
        batch_size: Examples per step.
        lr: Adam learning rate.
        anneal_steps: KL weight rises linearly from 0 to 1 over these steps (0: always 1).
        free_bits: Free-bits floor lambda per latent dimension, nats (0: none).
        word_dropout: Probability of replacing a decoder input word by ``<unk>``.
    """

    factory: str
    model_config: dict
    steps: int
    batch_size: int = 64
    lr: float = 3e-3
    anneal_steps: int = 0
    free_bits: float = 0.0
    word_dropout: float = 0.0


_TEXT = {"embed_dim": 32, "hidden_dim": 64, "latent_dim": 8, "z_every_step": True}
CONFIGS: dict[str, TrainConfig] = {
    "text_collapsed": TrainConfig(
        factory="collapse_diag.examples.text_vae:TextVAE",
        model_config=_TEXT, steps=2500,
    ),
    "text_healthy": TrainConfig(
        factory="collapse_diag.examples.text_vae:TextVAE",
        model_config=_TEXT, steps=2500, anneal_steps=1000, free_bits=1.0, word_dropout=0.5,
    ),
    "digits": TrainConfig(
        factory="collapse_diag.examples.digits_vae:DigitsVAE",
        model_config={"input_dim": 64, "hidden_dim": 128, "latent_dim": 8},
        steps=1500, batch_size=128,
    ),
}

#: Reference models that are not part of the demo (``--only`` trains them).
#: ``text_weak``: 16 latent dimensions, free bits 0.1 nats and word dropout 0.5, so
#: every dimension carries a little information (KL about 0.1 nats) that the
#: decoder reads weakly: a known-behaviour model for the per-dimension statuses
#: (tests/test_weak_model.py, benchmarks/bench_status_vs_n.py).
REFERENCE_CONFIGS: dict[str, TrainConfig] = {
    "text_weak": TrainConfig(
        factory="collapse_diag.examples.text_vae:TextVAE",
        model_config={**_TEXT, "latent_dim": 16}, steps=1500, anneal_steps=500,
        free_bits=0.1, word_dropout=0.5,
    ),
}
ALL_CONFIGS: dict[str, TrainConfig] = {**CONFIGS, **REFERENCE_CONFIGS}


def _kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example and dimension, ``[batch, D]``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _loss(model: nn.Module, x: torch.Tensor, cfg: TrainConfig, step: int,
          gen: torch.Generator) -> torch.Tensor:
    """Negative (annealed, free-bits) ELBO of one batch, averaged over examples."""
    mu, logvar = model.encode(x)
    z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
    if cfg.word_dropout > 0:
        rec = model.log_likelihood(x, z, word_dropout=cfg.word_dropout, generator=gen)
    else:
        rec = model.log_likelihood(x, z)
    kl = _kl_per_dim(mu, logvar).mean(dim=0)  # [D]
    if cfg.free_bits > 0:
        kl = kl.clamp(min=cfg.free_bits)
    beta = min(1.0, step / cfg.anneal_steps) if cfg.anneal_steps else 1.0
    return -rec.mean() + beta * kl.sum()


def _evaluate(model: nn.Module, x: torch.Tensor, gen: torch.Generator) -> dict:
    """ELBO (one z sample), mean total KL and active units (Var_x mu_d >= 0.01) on ``x``."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        kl = _kl_per_dim(mu, logvar).sum(dim=1)
        elbo = model.log_likelihood(x, z) - kl
    return {
        "elbo": float(elbo.mean()),
        "kl": float(kl.mean()),
        "active_units": int((mu.var(dim=0, unbiased=False) >= 0.01).sum()),
        "mu": mu.double().numpy(),
        "logvar": logvar.double().numpy(),
    }


def _datasets(name: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(train inputs, evaluation inputs, evaluation labels) of a model."""
    if name == "digits":
        x, y = load_binary_digits()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        train, held = perm[:-N_EVAL_DIGITS], perm[-N_EVAL_DIGITS:]
        return x[train], x[held], {"digit": y[held]}
    corpus = load_corpus()
    tokenizer = build_text_vae(**_TEXT)
    x = tokenizer.tokenize(corpus.sentences)
    labels = {k: torch.tensor(v[N_TRAIN_SENTENCES:], dtype=torch.long)
              for k, v in corpus.labels.items()}
    # clone: a slice shares the storage of all 3000 rows, which torch.save would write out
    return x[:N_TRAIN_SENTENCES], x[N_TRAIN_SENTENCES:].clone(), labels


def train_model(name: str, seed: int = 0, log: Callable[[str], None] = print, *,
                steps: int | None = None,
                on_step: Callable[[int, nn.Module, torch.Tensor], object] | None = None) -> dict:
    """Train one reference model.

    Args:
        name: A key of :data:`ALL_CONFIGS`.
        seed: Seeds the weights, batches and noise (local generators; the global
            torch RNG is restored afterwards).
        log: Where progress lines go.
        steps: Optimiser steps instead of the configured number (a shorter run).
        on_step: Called as ``on_step(step, model, eval_inputs)`` before the first
            update (step 0) and after every update (step = updates done), with the
            model in training mode; e.g. to save checkpoints or run a
            :class:`~collapse_diag.runs.monitor.CollapseMonitor`.

    Returns:
        Dict with ``model`` (eval mode), ``config``, ``data``, ``labels`` and the
        evaluation figures ``elbo``, ``kl``, ``active_units``, ``mu``, ``logvar``.
    """
    cfg = ALL_CONFIGS[name]
    train_x, eval_x, labels = _datasets(name)
    config = dict(cfg.model_config)
    if name.startswith("text"):
        factory: Callable[..., nn.Module] = build_text_vae
        config["vocab"] = default_vocab()  # stored in the checkpoint: tokenize needs no file
    else:
        factory = build_digits_vae
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weight initialisation only
        model = factory(**config)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    n_steps = cfg.steps if steps is None else steps
    if on_step is not None:
        on_step(0, model, eval_x)
    perm, pos = torch.randperm(len(train_x), generator=gen), 0
    for step in range(n_steps):
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(train_x), generator=gen), 0
        batch = train_x[perm[pos : pos + cfg.batch_size]]
        pos += cfg.batch_size
        opt.zero_grad()
        loss = _loss(model, batch, cfg, step, gen)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if on_step is not None:
            on_step(step + 1, model, eval_x)
        if (step + 1) % 500 == 0:
            log(f"  {name} step {step + 1}/{n_steps} loss {loss.item():.3f}")
    model.eval()
    figures = _evaluate(model, eval_x, gen)
    return {"model": model, "config": config, "data": eval_x, "labels": labels, **figures}


def _probe_line(result: dict, seed: int) -> str:
    from collapse_diag.diagnostics.probes import probe_factors

    labels = {k: v.numpy() for k, v in result["labels"].items()}
    probes = probe_factors(result["mu"], labels, seed=seed, logvar=result["logvar"])
    return ", ".join(
        f"{k} {p.accuracy:.2f} (baseline {p.baseline:.2f}, from mu {p.accuracy_mu:.2f})"
        for k, p in probes.factors.items()
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m collapse_diag.examples.train",
                                     description="Train the reference VAEs of collapse-diag.")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="output folder")
    parser.add_argument("--only", choices=sorted(ALL_CONFIGS), action="append",
                        help="train only this model (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    from collapse_diag.io.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    for name in args.only or list(CONFIGS):
        start = time.perf_counter()
        result = train_model(name, seed=args.seed)
        path = save_checkpoint(args.out / f"{name}.pt", result["model"], ALL_CONFIGS[name].factory,
                               result["config"], data=result["data"], labels=result["labels"])
        print(f"{name}: ELBO {result['elbo']:.2f} nats, KL {result['kl']:.3f} nats, "
              f"active units {result['active_units']}, {time.perf_counter() - start:.0f} s "
              f"-> {path}")
        print(f"  probes: {_probe_line(result, args.seed)}")


if __name__ == "__main__":
    main()
