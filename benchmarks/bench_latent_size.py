"""Time and peak memory of ``analyze`` as the latent size D grows (a benchmark, not a test).

The model is the linear Gaussian VAE of tests/toy_models.py (exact posterior encoder,
``x_d = w_d z_d + s eps_d``), half of its dimensions switched on (w_d = 1) and half off
(w_d = 0), so that the per-dimension swap has both used and ignored dimensions to
decide; its decoder is a few element-wise operations per row, so what grows with D
is the toolkit's own work, not the model's. For each D it runs one ``analyze`` on N
inputs (default 40, the case limits.py quotes) and prints per diagnostic the CPU
seconds and the peak resident memory (RSS, sampled every 5 ms while the diagnostic
ran), then the whole analysis. Use ``--threads 1`` for CPU times that are not sums
over threads. D above ``MAX_LATENT_DIM`` (collapse_diag/config/limits.py) is refused
by ``analyze``.

Usage::

    python benchmarks/bench_latent_size.py [--dims 32 128 256 512 1024] [--n 40]
        [--threads 1] [--only sensitivity]
"""

from __future__ import annotations

import argparse
import math

import torch
from bench_analyze import _PeakRss, _timed_analysis
from torch import nn

from collapse_diag import analysis


class LinearToyVAE(nn.Module):
    """tests/toy_models.ToyVAE: linear Gaussian VAE with its exact diagonal posterior."""

    def __init__(self, weights: torch.Tensor, noise: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("w", weights.float())
        self.noise = noise

    def encode(self, x):
        denom = self.noise**2 + self.w**2
        return self.w * x / denom, torch.log(self.noise**2 / denom).expand_as(x)

    def log_likelihood(self, x, z):
        s2 = self.noise**2
        return (-0.5 * (x - self.w * z) ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum(1)


def _inputs(model: LinearToyVAE, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, len(model.w), generator=g)
    return model.w * z + model.noise * torch.randn(n, len(model.w), generator=g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 128, 256, 512, 1024],
                        help="latent sizes D, run in this order")
    parser.add_argument("--n", type=int, default=40, help="inputs analysed")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--only", nargs="+", default=None,
                        help="time only these diagnostics (and what they require)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"N = {args.n}, torch threads {torch.get_num_threads()}; CPU s and peak RSS (MiB) "
          "per diagnostic")
    originals = dict(analysis.DIAGNOSTICS)
    sampler = _PeakRss()
    for dim in args.dims:
        model = LinearToyVAE(torch.tensor([1.0, 0.0]).repeat((dim + 1) // 2)[:dim])
        data = _inputs(model, args.n)
        report, _, clocks, cpu, wall = _timed_analysis(model, data, originals, sampler,
                                                       device="cpu", diagnostics=args.only)
        rows = {k: v for k, v in sorted(clocks.items(), key=lambda kv: -kv[1][1])}
        print(f"\nD = {dim}: whole analyze {cpu:.2f} CPU s ({wall:.2f} s wall), peak RSS "
              f"{max(sampler.peaks.values(), default=0.0):.0f} MiB ({sampler.start:.0f} at "
              f"the start){'; errors ' + str(report.errors) if report.errors else ''}")
        for phase, (_, seconds) in rows.items():
            print(f"  {phase:<24} {seconds:8.2f} s {sampler.peaks.get(phase, 0.0):8.0f} MiB")
    sampler.close()


if __name__ == "__main__":
    main()
