"""Cost of the discrete diagnostic on a VQ model (a benchmark, not a test).

Builds a random vector-quantised model (linear encoder to L positions of width 8,
nearest of K codes, MLP decoder), analyses N random inputs with ``analyze`` (the
discrete diagnostic alone runs for this kind) and prints: the encoder pass, the
diagnostic's seconds, its decoder rows (2N for the whole-map swap, min(N, 256) x
min(L, 64) for the per-position swap) and rows per second, and the codebook figures.
The per-position swap dominates: its rows grow with min(L, 64), not with L.

Usage::

    python benchmarks/bench_discrete.py [--n 2000] [--positions 16 256] [--codes 512]
        [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import collapse_diag
from collapse_diag.diagnostics.discrete_swap import MAX_SWAP_INPUTS, MAX_SWAP_POSITIONS


class RandomVQ(nn.Module):
    def __init__(self, positions: int, codes: int, width: int = 8, obs: int = 32):
        super().__init__()
        torch.manual_seed(0)
        self.positions, self.width, self.codebook_size = positions, width, codes
        self.encoder = nn.Linear(obs, positions * width)
        self.codebook = nn.Embedding(codes, width)
        self.decoder = nn.Sequential(nn.Linear(positions * width, 128), nn.Tanh(),
                                     nn.Linear(128, obs))

    def encode_codes(self, x):
        e = self.encoder(x).view(len(x), self.positions, self.width)
        return torch.cdist(e, self.codebook.weight[None].expand(len(x), -1, -1)).argmin(-1)

    def log_likelihood(self, x, codes):
        mean = self.decoder(self.codebook(codes).flatten(1))
        return -0.5 * ((x - mean) ** 2).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--positions", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--codes", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    x = torch.randn(args.n, 32, generator=torch.Generator().manual_seed(1))
    print(f"{'L':>5} {'encode s':>9} {'discrete s':>11} {'rows':>8} {'rows/s':>9} "
          f"{'perplexity':>11} {'used':>6} {'verdict':>18}")
    for positions in args.positions:
        model = RandomVQ(positions, args.codes)
        start = time.perf_counter()
        report = collapse_diag.analyze(model, x, seed=0, batch_size=args.batch_size,
                                       device=args.device)
        total = time.perf_counter() - start
        spent = report.timings["discrete"]
        rows = 2 * args.n + min(args.n, MAX_SWAP_INPUTS) * min(positions, MAX_SWAP_POSITIONS)
        s = report.summary
        print(f"{positions:>5} {total - spent:>9.3f} {spent:>11.3f} {rows:>8} "
              f"{rows / spent:>9.0f} {s['codebook_perplexity']:>11.1f} "
              f"{s['codebook_used']:>6} {s['verdict']:>18}")
    print("rows: decoder rows of the discrete diagnostic (whole-map + per-position swaps)")


if __name__ == "__main__":
    main()
