"""Cost of the importance-weighted NLL estimate per input against K (a benchmark, not a test).

Loads a shipped example checkpoint and runs the likelihood diagnostic alone on
M of its inputs for each K, printing: seconds per input, decoder rows per
second, the NLL bound with its standard error, and -ELBO. The cost is K decoder
rows per input, so seconds per input should grow linearly in K; the NLL column
shows how much the bound still moves (compare with its standard error).

Usage::

    python benchmarks/bench_nll.py [--model text_healthy] [--k 1 10 100 500]
        [--examples 200] [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from collapse_diag import load_checkpoint
from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.likelihood import likelihood_diagnostic
from collapse_diag.examples import SHIPPED
from collapse_diag.io.data import take, to_device
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.runtime.rng import generator_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHIPPED), default="text_healthy")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100, 500])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    loaded = load_checkpoint(SHIPPED[args.model])
    model = loaded.model.to(args.device).eval()
    data = take(loaded.data, slice(0, args.examples))
    info = check_model(model, to_device(take(data, slice(0, 4)), args.device))
    encodings = encode_all(model, data, info, args.batch_size, args.device)
    print(f"model {args.model}, M = {encodings.n_examples} inputs, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'K':>6} {'s/input':>10} {'ms/input/K':>11} {'rows/s':>10} {'NLL':>9} "
          f"{'SE':>7} {'-ELBO':>9}")
    for k in args.k:
        settings = Settings(nll_samples=k, nll_examples=None, batch_size=args.batch_size,
                            device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        res = likelihood_diagnostic(model, data, encodings, info, settings,
                                    generator_for(0, "likelihood"))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        m = len(res.examples)
        print(f"{k:>6} {seconds / m:>10.4f} {1e3 * seconds / m / k:>11.3f} "
              f"{res.decoder_rows / seconds:>10.0f} {res.nll:>9.3f} {res.nll_se:>7.3f} "
              f"{res.neg_elbo:>9.3f}")


if __name__ == "__main__":
    main()
