"""Whole ``analyze`` time against its floor of plain model passes (a benchmark, not a test).

For each model it runs ``analyze`` ``--repeat`` times with the model's ``encode``,
``log_likelihood`` and ``generate`` (the decoded outputs' greedy decodes: model
passes too) instrumented: every call's inputs, rows, whether it needed a
backward pass (the Fisher), and the time spent inside the model are recorded per
diagnostic, and each diagnostic's wall and CPU seconds. Right after each analysis,
in the same process, it replays exactly that analysis's calls as plain passes (the
same inputs, so the same batch size and padded length; random z of the same shape;
forward, and forward + backward w.r.t. z where the analysis did one) and times only
the model calls: that is the *floor*, what the model passes alone cost. Each
(analysis, replay) pair gives a ratio CPU time / CPU floor measured within seconds
of each other (the machine's speed drifts by 20-30% over minutes on a shared host,
which made a fastest-analysis over fastest-replay ratio scatter from 0.98 to 1.41);
the table is the pair with the median ratio, followed by all the pairs' ratios. It
prints per diagnostic the decoder rows per input, the time, the time inside the
model, the floor, and the ratio; then the whole analysis, the same without the MI
diagnostic (which never calls the model), and the rest, the toolkit's own work
(sampling, statistics, the MI estimator, bookkeeping). CPU time is the steadier
figure on a shared machine; use ``--threads 1`` so that it is not the sum over
threads. Each phase also shows the peak resident memory (RSS) while it ran. Several
``--n`` are analysed back to back within each repeat, and the CPU-time ratio of each
larger N to the one before is printed per repeat (and scaled to a decade).

Models: the shipped demo text VAE (``text_healthy``, LSTM, 8 dims), the same LSTM
architecture with ``latent_dim=32`` (``text32``), and a 32-dim MLP VAE (the digits
architecture with ``latent_dim=32``); the 32-dim ones are untrained (their cost does
not depend on their weights). Each runs on N inputs (the stored ones tiled).

Usage::

    python benchmarks/bench_analyze.py [--n 500 [5000 ...]] [--batch-size 64] [--device cpu]
        [--dtype float32] [--models text text32 digits32] [--repeat 3]
        [--threads T]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import threading
import time
from collections import defaultdict

import torch

from collapse_diag import analysis, load_checkpoint
from collapse_diag.diagnostics.minimums import MIN_INPUTS
from collapse_diag.examples import SHIPPED
from collapse_diag.examples.digits_vae import build_digits_vae, load_binary_digits
from collapse_diag.examples.text_vae import TextVAE
from collapse_diag.io.data import num_examples, take


class _Recorder:
    """Wraps a model's encode / log_likelihood / generate: rows, grad and seconds per call,
    per phase (``generate``, the decoded outputs' decoder passes, records its codes)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.phase = "encoder pass"
        self.calls: dict[str, list[tuple[str, int, bool, object]]] = defaultdict(list)
        self.held_bytes = 0  # the recorded inputs kept for the replay (not the toolkit's)
        self._held: set[int] = set()
        self.inside: dict[str, float] = defaultdict(float)
        self.model = model
        self._encode, self._ll = model.encode, model.log_likelihood
        model.encode = self.encode
        model.log_likelihood = self.log_likelihood
        self._generate = getattr(model, "generate", None)
        if self._generate is not None:
            model.generate = self.generate

    def _record(self, phase: str, call: tuple[str, int, bool, object]) -> None:
        self.calls[phase].append(call)
        for tensor in _tensors(call[3]):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in self._held:
                self._held.add(storage.data_ptr())
                self.held_bytes += storage.nbytes()

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def encode(self, x):
        start = time.perf_counter()
        out = self._encode(x)
        self._sync()
        self.inside[self.phase] += time.perf_counter() - start
        self._record(self.phase, ("encode", num_examples(x), False, x))
        return out

    def log_likelihood(self, x, z):
        start = time.perf_counter()
        out = self._ll(x, z)
        self._sync()
        self.inside[self.phase] += time.perf_counter() - start
        self._record(self.phase, ("decode", z.shape[0], bool(z.requires_grad), x))
        return out

    def generate(self, z):
        start = time.perf_counter()
        out = self._generate(z)
        self._sync()
        self.inside[self.phase] += time.perf_counter() - start
        self._record(self.phase, ("generate", z.shape[0], False, z.detach().clone()))
        return out

    def release(self) -> None:
        """Drop the recorded inputs once replayed (the table needs only rows and grads)."""
        for phase, calls in self.calls.items():
            self.calls[phase] = [(kind, rows, grad, None) for kind, rows, grad, _ in calls]
        self._held.clear()
        self.held_bytes = 0

    def restore(self) -> None:
        del self.model.encode, self.model.log_likelihood
        if self._generate is not None:
            del self.model.generate


def _tensors(value):
    """The tensors in a batch (a tensor, or a dict / list / tuple of them)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _phased(recorder: _Recorder, key: str, func, clocks: dict[str, tuple[float, float]]):
    """A diagnostic that tells the recorder its phase and records its (wall, CPU) seconds."""

    def run(state):
        recorder.phase = key
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return func(state)
        finally:
            clocks[key] = (time.perf_counter() - wall, time.process_time() - cpu)

    return run


def _floor(model, calls, latent_dim: int, device: str, dtype: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the same calls as plain passes (backward w.r.t. z where recorded).

    Each call gets the very inputs the analysis passed (a text model's cost
    depends on their padded length) and random z of the same shape; ``generate``
    gets the very codes it was given (a greedy decode's length depends on them).
    Only the model calls are timed. Decoder calls run under the same autocast as
    the analysis's (``--dtype``).
    """
    gen = torch.Generator().manual_seed(0)
    model.eval()  # as during the analysis (it restores the model's mode afterwards)
    wall = cpu = 0.0
    for kind, rows, grad, x in calls:
        z = torch.randn(rows, latent_dim, generator=gen).to(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        if kind == "encode":
            with torch.no_grad():
                model.encode(x)
        elif kind == "generate":
            with torch.no_grad():
                model.generate(x)  # x: the recorded codes
        else:
            with analysis._precision("sensitivity", dtype, torch.device(device)):
                _decode(model, x, z, grad)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    return wall, cpu


def _decode(model, x, z, grad: bool) -> None:
    if grad:
        with torch.enable_grad():
            z.requires_grad_(True)
            torch.autograd.grad(model.log_likelihood(x, z).sum(), z)
    else:
        with torch.no_grad():
            model.log_likelihood(x, z)


def _models(names: list[str], n: int):
    for name in names:
        if name == "text":
            loaded = load_checkpoint(SHIPPED["text_healthy"])
            model, data = loaded.model, loaded.data
        elif name == "text32":
            loaded = load_checkpoint(SHIPPED["text_healthy"])
            torch.manual_seed(0)  # untrained weights: the cost does not depend on them
            shipped = loaded.model
            model = TextVAE(shipped.vocab, embed_dim=shipped.embed.embedding_dim,
                            hidden_dim=shipped.decoder.hidden_size, latent_dim=32)
            data = loaded.data
        else:
            torch.manual_seed(0)  # the untrained weights only; analyze never uses global RNG
            model, data = build_digits_vae(latent_dim=32), load_binary_digits()[0]
        yield name, model, take(data, torch.arange(n) % num_examples(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500],
                        help="input counts; several are run back to back in each repeat, and "
                        "the time ratios between them are printed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--models", nargs="+", default=["text", "text32", "digits32"])
    parser.add_argument("--repeat", type=int, default=3,
                        help="(analysis, replay) pairs; the table shows the median pair")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"N = {', '.join(map(str, args.n))}, batch size {args.batch_size}, device "
          f"{args.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}")
    originals = dict(analysis.DIAGNOSTICS)
    sampler = _PeakRss()
    for name, model, full in _models(args.models, max(args.n)):
        # Warm-up (allocator, oneDNN/cuDNN kernels) on the fewest inputs analyze takes, not timed.
        analysis.analyze(model, take(full, slice(0, MIN_INPUTS["verdict"])),
                         batch_size=args.batch_size,
                         device=args.device, dtype=args.dtype, per_dim_swap_examples=8)
        pairs: dict[int, list] = {n: [] for n in args.n}
        for _ in range(args.repeat):  # each analysis, then at once the replay of its calls
            for n in args.n:  # every N back to back, so the time ratios share the machine state
                data = take(full, slice(0, n))
                report, recorder, clocks, whole_cpu, whole = _timed_analysis(
                    model, data, originals, sampler, batch_size=args.batch_size,
                    device=args.device, dtype=args.dtype)
                clocks = {"encoder pass": (whole - sum(w for w, _ in clocks.values()),
                                           whole_cpu - sum(c for _, c in clocks.values())),
                          **clocks}
                floors = {phase: _floor(model, recorder.calls[phase], report.latent_dim,
                                        args.device, args.dtype)
                          if recorder.calls.get(phase) else (0.0, 0.0) for phase in clocks}
                floor_cpu = sum(c for _, c in floors.values())
                recorder.release()  # so that the next analysis starts without them
                pairs[n].append((whole_cpu / floor_cpu, report, recorder, clocks, floors,
                                 (whole, whole_cpu), dict(sampler.peaks), sampler.start))
        for n in args.n:
            runs = sorted(pairs[n], key=lambda p: p[0])
            if runs[0][1].errors:
                print(f"{name}: failed diagnostics {runs[0][1].errors}")
            ratios = [p[0] for p in runs]
            _table(name, *runs[len(runs) // 2][1:], args)
            print(f"  whole-analysis ratio over {len(ratios)} (analysis, replay) pairs: "
                  + ", ".join(f"{r:.2f}" for r in ratios)
                  + f" (median {ratios[len(ratios) // 2]:.2f})")
        for small, large in zip(args.n, args.n[1:]):  # the same repeat's runs, back to back
            scale = sorted(b[5][1] / a[5][1] for a, b in zip(pairs[small], pairs[large]))
            decade = [r ** (1 / math.log10(large / small)) for r in scale]
            print(f"{name}: CPU time({large}) / time({small}) per repeat: "
                  + ", ".join(f"{r:.2f}" for r in scale) + f" (median "
                  f"{scale[len(scale) // 2]:.2f}; N ratio {large / small:g}; per decade "
                  f"{decade[len(decade) // 2]:.2f})")


class _PeakRss:
    """Peak resident memory (MiB) per phase: /proc/self/statm sampled every 5 ms in a thread.

    ``start`` is the RSS when the analysis starts (the model, the inputs and the
    interpreter); ``peaks[phase]`` the highest RSS seen while that phase ran, less the
    inputs the recorder keeps for the replay (``_Recorder.held_bytes``: at N = 100,000
    the prior draws' repeated token ids alone are hundreds of MiB, which the toolkit
    does not hold). Off Linux, the process's lifetime peak (``resource.getrusage``) at
    the end of each phase, not corrected.
    """

    def __init__(self) -> None:
        self.recorder: _Recorder | None = None
        self.peaks: dict[str, float] = {}
        self.start = _rss_mib()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the sampling thread (a daemon thread still running at exit can abort it)."""
        self._running = False
        self._thread.join()

    def reset(self, recorder: _Recorder) -> None:
        self.recorder, self.peaks, self.start = recorder, {}, _rss_mib()

    def _sample(self) -> None:
        while self._running:
            recorder = self.recorder
            if recorder is not None:
                phase = recorder.phase
                rss = _rss_mib() - recorder.held_bytes / 2**20
                self.peaks[phase] = max(self.peaks.get(phase, 0.0), rss)
            time.sleep(0.005)


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_analysis(model, data, originals, sampler, **options):
    """One instrumented ``analyze(model, data, **options)``: (report, recorder, per-phase
    clocks, CPU s, wall s)."""
    recorder, clocks = _Recorder(model), {}
    sampler.reset(recorder)
    analysis.DIAGNOSTICS.update({k: _phased(recorder, k, f, clocks)
                                 for k, f in originals.items()})
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        report = analysis.analyze(model, data, **options)
    finally:
        analysis.DIAGNOSTICS.update(originals)
        recorder.restore()
        sampler.recorder = None
    whole, whole_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return report, recorder, clocks, whole_cpu, whole


def _table(name, report, recorder, clocks, floors, whole, peaks, start, args) -> None:
    """Per phase: rows per input, wall and CPU time, time in the model, the floor, the ratio,
    the peak RSS."""
    print(f"\n{name}: latent_dim {report.latent_dim}, {report.n_examples} inputs "
          "(ratio = CPU time / CPU floor; the pair with the median ratio; peak RSS in MiB, "
          f"{start:.0f} MiB when the analysis started)")
    print(f"{'phase':<16} {'rows/input':>10} {'backward':>8} {'wall s':>7} {'cpu s':>7} "
          f"{'in model':>8} {'floor':>7} {'floor cpu':>9} {'ratio':>6} {'peak RSS':>8}")
    for phase, (seconds, cpu) in clocks.items():
        calls = recorder.calls.get(phase, [])
        rows = sum(r for _, r, _, _ in calls) / report.n_examples
        back = sum(r for _, r, g, _ in calls if g) / report.n_examples
        ratio = f"{cpu / floors[phase][1]:6.2f}" if floors[phase][1] > 0 else "     -"
        print(f"{phase:<16} {rows:>10.2f} {back:>8.2f} {seconds:>7.3f} {cpu:>7.3f} "
              f"{recorder.inside.get(phase, 0.0):>8.3f} {floors[phase][0]:>7.3f} "
              f"{floors[phase][1]:>9.3f} {ratio} {peaks.get(phase, 0.0):>8.0f}")
    floor_wall, floor_cpu = (sum(f[i] for f in floors.values()) for i in (0, 1))
    inside = sum(recorder.inside.values())
    print(f"{'whole analyze':<16} {'':>10} {'':>8} {whole[0]:>7.3f} {whole[1]:>7.3f} "
          f"{inside:>8.3f} {floor_wall:>7.3f} {floor_cpu:>9.3f} {whole[1] / floor_cpu:6.2f}")
    mi_cpu = clocks.get("information", (0.0, 0.0))[1]
    print(f"{'  without MI':<16} {'':>10} {'':>8} {'':>7} {whole[1] - mi_cpu:>7.3f} "
          f"{'':>8} {'':>7} {floor_cpu:>9.3f} {(whole[1] - mi_cpu) / floor_cpu:6.2f}")
    print(f"  the rest: {whole[1] - floor_cpu:.3f} CPU s beyond the floor, of which MI "
          f"{mi_cpu:.3f} s; wall ratio {whole[0] / floor_wall:.2f}")

if __name__ == "__main__":
    main()
