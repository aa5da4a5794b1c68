"""Cost of the decoder-side diagnostics on a realistic model (a benchmark, not a test).

Runs the sensitivity (whole-vector + per-dimension swap) and identifiability
(prior draws + Fisher information) diagnostics on the reference LSTM text VAE
(Bowman et al. 2016; ``collapse_diag.examples.text_vae``) with latent_dim 32 on
N sentences of the bundled corpus, for several N, and prints per diagnostic:
decoder calls, rows decoded, rows per input, wall and process CPU seconds,
microseconds per decoded row (wall and CPU), cost in units of one plain decoder
pass over the N inputs, and peak memory (resident set growth on the CPU,
allocator peak on CUDA). On a shared machine the CPU figures are the steadier ones.
A plain forward pass over N rows is timed as the unit "one decoder pass per input".

Usage::

    python benchmarks/bench_decoder.py [--n 500 1000 2000] [--latent-dim 32]
        [--embed-dim 64] [--hidden-dim 128] [--batch-size 64] [--device cpu] [--threads T]

The weights are untrained (cost does not depend on them); timings vary with the
machine and its load, so compare figures from one run only.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from collapse_diag.config.settings import Settings
from collapse_diag.diagnostics.identifiability import identifiability_diagnostic
from collapse_diag.diagnostics.sensitivity import sensitivity_diagnostic
from collapse_diag.examples.corpus import load_corpus
from collapse_diag.examples.text_vae import build_text_vae
from collapse_diag.io.data import num_examples, take, to_device
from collapse_diag.model.decoding import inputs_per_call
from collapse_diag.model.encodings import encode_all
from collapse_diag.model.protocol import check_model
from collapse_diag.runtime.rng import generator_for


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator peak, or RSS polled every 5 ms."""

    def __init__(self, device: str) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base, self.top, self.stop = _rss(), _rss(), threading.Event()
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.stop.is_set():
            self.top = max(self.top, _rss())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.top, _rss()) - self.base


class CountingModel(torch.nn.Module):
    """Wraps a model and records every decoder call: (rows, wall seconds of the forward)."""

    def __init__(self, model: Any, device: str) -> None:
        super().__init__()
        self.model, self.device, self.log = model, device, []

    @property
    def calls(self) -> int:
        return len(self.log)

    @property
    def rows(self) -> int:
        return sum(r for r, _ in self.log)

    def encode(self, x: Any) -> Any:
        return self.model.encode(x)

    def num_tokens(self, x: Any) -> Any:
        return self.model.num_tokens(x)

    def log_likelihood(self, x: Any, z: torch.Tensor) -> torch.Tensor:
        out, seconds = _timed(lambda: self.model.log_likelihood(x, z), self.device)
        self.log.append((z.shape[0], seconds))
        return out


def _timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    """``(fn(), wall seconds)``, synchronising CUDA around the call."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def bench(n: int, args: argparse.Namespace) -> None:
    """Benchmark every decoder-side diagnostic on the first ``n`` sentences."""
    torch.manual_seed(0)
    base = build_text_vae(latent_dim=args.latent_dim, embed_dim=args.embed_dim,
                          hidden_dim=args.hidden_dim).to(args.device).eval()
    sentences = load_corpus().sentences
    sentences = (sentences * (-(-n // len(sentences))))[:n]
    data = base.tokenize(sentences)
    model = CountingModel(base, args.device)
    settings = Settings(batch_size=args.batch_size, device=args.device)
    info = check_model(model, to_device(data[:4], args.device))
    enc = encode_all(model, data, info, settings.batch_size, args.device)
    tokens = float(enc.num_tokens.mean())

    def one_pass() -> None:  # one decoder row per input, posterior means
        with torch.no_grad():
            for start in range(0, num_examples(data), settings.batch_size):
                rows = slice(start, start + settings.batch_size)
                z = torch.as_tensor(enc.mu[rows], dtype=info.dtype, device=args.device)
                model.log_likelihood(to_device(take(data, rows), args.device), z)

    one_pass()  # warm-up: lazy initialisation, thread pools, allocator
    jobs = {
        "one decoder pass": one_pass,
        "sensitivity": lambda: sensitivity_diagnostic(
            model, data, enc, info, settings, generator_for(0, "sensitivity")),
        "identifiability": lambda: identifiability_diagnostic(
            model, data, enc, info, settings, generator_for(0, "identifiability")),
    }
    print(f"\nN = {n} sentences ({tokens:.1f} tokens on average), latent_dim {args.latent_dim}, "
          f"batch_size {settings.batch_size}, per_dim_swap_examples "
          f"{settings.per_dim_swap_examples}, prior_samples {settings.prior_samples}, "
          f"fisher_samples {settings.fisher_samples}, device {args.device}")
    print(f"{'diagnostic':<18}{'calls':>6}{'rows':>8}{'rows/in':>8}{'wall s':>8}{'cpu s':>8}"
          f"{'us/row':>8}{'cpu us/r':>9}{'passes':>7}{'peak MiB':>9}")
    pass_seconds = None
    for name, job in jobs.items():
        model.log.clear()
        with PeakMemory(args.device) as mem:
            cpu = time.process_time()
            result, seconds = _timed(job, args.device)
            cpu = time.process_time() - cpu
        pass_seconds = pass_seconds or seconds
        print(f"{name:<18}{model.calls:>6}{model.rows:>8}{model.rows / n:>8.2f}{seconds:>8.2f}"
              f"{cpu:>8.2f}{1e6 * seconds / model.rows:>8.0f}{1e6 * cpu / model.rows:>9.0f}"
              f"{seconds / pass_seconds:>7.1f}"
              f"{mem.peak / 2**20:>9.1f}")
        if name == "sensitivity":
            first = -(-n // inputs_per_call(settings.batch_size, 2))
            parts = [("  whole swap", model.log[:first]), ("  per-dim swap", model.log[first:])]
            _print_parts(parts, n, None)
        if name == "identifiability":
            first = -(-n // inputs_per_call(settings.batch_size, settings.prior_samples))
            prior_seconds = sum(t for _, t in model.log[:first])
            parts = [("  prior draws", model.log[:first]), ("  Fisher fwd+bwd", model.log[first:])]
            _print_parts(parts, n, seconds - prior_seconds)


def _print_parts(parts: list, n: int, last_seconds: float | None) -> None:
    """Sub-rows: calls, rows, rows per input, decoder seconds (the last part: ``last_seconds``)."""
    for k, (label, log) in enumerate(parts):
        rows = sum(r for r, _ in log)
        wall = sum(t for _, t in log)
        if k == len(parts) - 1 and last_seconds is not None:
            wall = last_seconds
        print(f"{label:<18}{len(log):>6}{rows:>8}{rows / n:>8.2f}{wall:>8.2f}{'':>8}"
              f"{1e6 * wall / max(rows, 1):>8.0f}")


def main() -> None:
    """Parse the arguments and run the benchmark for every N."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for n in args.n:
        bench(n, args)


if __name__ == "__main__":
    main()
