"""Fuzz the CLI with hostile inputs: a fixed corpus (>= 200 cases, built at test time) and
hypothesis-generated ones.

Families: checkpoint bytes, keys, factories, configs, data formats, protocol
violations, options, paths, signals. For every case:

* the exit code is one of the documented ones expected for the case;
* no traceback; an error (exit 2 or 3) is exactly one line starting ``error:``/``Error:``;
* no code ran (a canary file the malicious payloads would create stays absent);
* the report folder is either untouched (exit 2/3: the previous report.json is
  byte-identical, no temporary files left) or holds a complete, parseable new
  report (exit 0/1/4);
* the case finishes under a time limit (SIGALRM; a FIFO or device would hang).

SIGINT in the middle of a run leaves the previous report intact (a subprocess).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toy_models import ToyVAE

from collapse_diag_cli.main import main

TESTS = Path(__file__).parent
CANARY = "CANARY"
PREVIOUS = b'{"previous report": true}\n'
FAST = ["--per-dim-swap-examples", "4", "--prior-samples", "2", "--format", "json", "-q"]
CASE_SECONDS = 60  # generous: the machine is shared; a hang would be forever


class Canary:
    """Unpickling this creates the canary file (what a hostile checkpoint carries)."""

    def __reduce__(self):
        return (os.system, (f"touch {CANARY}",))


@dataclass
class Case:
    family: str
    name: str
    args: list
    codes: frozenset
    files: dict = field(default_factory=dict)  # relative path -> bytes / callable(path)


def _bytes_of(obj, protocol=2) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


def _torch_bytes(payload) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _valid_payload(**overrides):
    model = ToyVAE()
    payload = {"collapse_diag": 1, "factory": "models:ToyVAE", "config": {},
               "state_dict": model.state_dict(), "data": model.sample(40)}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not _DROP}


_DROP = object()
ERR, USAGE = frozenset({3}), frozenset({2})
RUNS = frozenset({0, 1})


def _checkpoint_bytes_cases(valid: bytes) -> list[Case]:
    cases = []
    for i, cut in enumerate(np.linspace(0, len(valid) - 1, 24).astype(int)):
        cases.append(Case("bytes", f"truncated-{i}", ["analyze", "c.pt"], ERR,
                          {"c.pt": valid[:cut]}))
    rng = np.random.default_rng(0)
    for i in range(20):
        flipped = bytearray(valid)
        for pos in rng.integers(0, len(valid), 8):
            flipped[pos] ^= 0xFF
        cases.append(Case("bytes", f"flipped-{i}", ["analyze", "c.pt", "--max-examples", "3"],
                          ERR, {"c.pt": bytes(flipped)}))
    for i in range(8):
        cases.append(Case("bytes", f"random-{i}", ["analyze", "c.pt"], ERR,
                          {"c.pt": rng.integers(0, 256, 64 * (i + 1), dtype=np.uint8).tobytes()}))
    for protocol in range(6):
        cases.append(Case("bytes", f"evil-pickle-p{protocol}", ["analyze", "c.pt"], ERR,
                          {"c.pt": _bytes_of({"model": Canary()}, protocol)}))
        cases.append(Case("bytes", f"evil-pickle-trusted-needed-p{protocol}",
                          ["analyze", "c.pt", "--data", "x.npy"], ERR,
                          {"c.pt": _bytes_of([Canary()], protocol)}))
    cases += [
        Case("bytes", "empty", ["analyze", "c.pt"], ERR, {"c.pt": b""}),
        Case("bytes", "text", ["analyze", "c.pt"], ERR, {"c.pt": b"hello world\n"}),
        Case("bytes", "evil-in-torch-zip", ["analyze", "c.pt"], ERR,
             {"c.pt": _torch_bytes({"collapse_diag": 1, "x": Canary()})}),
        Case("bytes", "zip-of-garbage", ["analyze", "c.pt"], ERR, {"c.pt": _zip({"a": b"x"})}),
        Case("bytes", "zip-with-bad-pkl", ["analyze", "c.pt"], ERR,
             {"c.pt": _zip({"archive/data.pkl": b"\x80\x02\xff\xff", "archive/version": b"3"})}),
        Case("bytes", "a-tensor", ["analyze", "c.pt"], ERR, {"c.pt": _torch_bytes(torch.ones(3))}),
        Case("bytes", "a-list", ["analyze", "c.pt"], ERR, {"c.pt": _torch_bytes([1, 2])}),
        Case("bytes", "an-int", ["analyze", "c.pt"], ERR, {"c.pt": _torch_bytes(5)}),
    ]
    return cases


def _zip(members: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _keys_cases() -> list[Case]:
    variants = {
        "no-factory": {"factory": _DROP}, "no-state": {"state_dict": _DROP},
        "no-data": {"data": _DROP},
        **{f"version-{i}": {"collapse_diag": v} for i, v in
           enumerate([0, 2, -1, "1", 1.5, None, [1], torch.ones(1), True, 10**30])},
        **{f"factory-{i}": {"factory": v} for i, v in enumerate(
            [5, None, ["models:ToyVAE"], torch.ones(1), "", ":", "a:b:c", "models:",
             ":ToyVAE", "models:ToyVAE.nothing", "models:__class__", "models:__builtins__",
             "models:torch", "models:math", "models:ToyVAE.__init__", "no_module:X",
             "models.py:ToyVAE", "../models:ToyVAE", "models:closed_form"])},
        **{f"state-{i}": {"state_dict": v} for i, v in enumerate(
            [[1, 2], "weights", torch.ones(3), {1: torch.ones(1)}, {"w": "x"},
             {"w": torch.ones(7)}, {}])},
        **{f"data-{i}": {"data": v} for i, v in enumerate(
            ["text", [1.0, 2.0], torch.tensor(1.0), torch.zeros(0, 3), {},
             {"a": torch.ones(3, 3), "b": torch.ones(4, 3)}, {"a": 1}, torch.ones(40, 5),
             torch.full((40, 3), float("nan")), torch.ones(40, 3, dtype=torch.complex64)])},
        **{f"labels-{i}": {"labels": v} for i, v in enumerate(
            [[1, 2], {"a": [1, 2]}, {"a": torch.linspace(0, 1, 40)}, {"a": torch.ones(3).long()},
             {"a": torch.ones(40, 2).long()}, {"a": torch.ones(40, dtype=torch.bool)}])},
        "config-list": {"config": [1]}, "config-str": {"config": "abc"},
        "config-int": {"config": 3}, "config-bad-key": {"config": {"not a name": 1}},
        "config-unknown-kwarg": {"config": {"nope": 1}},
    }
    return [Case("keys", name, ["analyze", "c.pt", "--max-examples", "25"], ERR,
                 {"c.pt": _torch_bytes(_valid_payload(**v))}) for name, v in variants.items()]


FACTORIES = ["sympy:sympify", "sympy.parsing.sympy_parser:parse_expr", "pandas:eval",
             "builtins:eval", "builtins:exec", "importlib:import_module", "runpy:run_path",
             "pickle:loads", "subprocess:Popen", "subprocess:call", "os:system", "shutil:rmtree",
             "code:interact", "antigravity:geohash", "unittest.__main__:main",
             "collapse_diag.examples.train:main", "collapse_diag_cli.main:main", "torch:load",
             "numpy:load", "models:build_toy", "hostile:RaisesInFactory",
             "hostile:ExitsInFactory", "hostile:NoMethods"]


def _factory_cases() -> list[Case]:
    config = {"a": f"__import__('os').system('touch {CANARY}')", "command": f"touch {CANARY}",
              "args": ["touch", CANARY]}
    return [Case("factories", spec, ["analyze", "c.pt"], ERR, {"c.pt": _torch_bytes(
        _valid_payload(factory=spec, config=config if "Factory" not in spec else {}))})
        for spec in FACTORIES]


def _config_cases(valid: bytes) -> list[Case]:
    texts = {"list": b"[1, 2]", "str": b'"abc"', "int": b"5", "float": b"2.5", "null": b"null",
             "true": b"true", "invalid": b"{not json", "non-utf8": b'{"noise": "\xff"}',
             "deep": b"[" * 100_000 + b"]" * 100_000, "bad-key": b'{"1x": 1}',
             "unknown-kwarg": b'{"nope": 1}', "wrong-type": b'{"noise": "loud"}',
             "empty": b"", "bom": b"\xef\xbb\xbf{}", "nan": b'{"noise": NaN}'}
    return [Case("configs", name, ["analyze", "c.pt", "--config", "cfg.json", "--max-examples",
                                   "25"], ERR, {"c.pt": valid, "cfg.json": text})
            for name, text in texts.items()]


def _npy(array) -> callable:
    return lambda path: np.save(path, array)


def _npz(array) -> callable:
    return lambda path: np.savez(path, a=array)


def _data_cases(valid: bytes) -> list[Case]:
    x = ToyVAE().sample(40).numpy()
    arrays = {
        "unicode": np.array([["a", "b", "c"]] * 40), "bytes": np.zeros((40, 3), "S2"),
        "datetime": np.zeros((40, 3), "M8[s]"), "timedelta": np.zeros((40, 3), "m8[s]"),
        "structured": np.zeros(40, dtype=[("a", "f4"), ("b", "i4")]),
        "object": np.array([[None] * 3] * 40, dtype=object), "complex": x.astype(np.complex64),
        "scalar": np.array(1.0), "empty": np.zeros((0, 3)), "one-d": x[:, 0].copy(),
        "wide": np.zeros((40, 7)), "nan": np.full((40, 3), np.nan), "inf": np.full((40, 3), np.inf),
        "huge": np.full((40, 3), 1e300), "three-d": np.zeros((40, 3, 2)),
    }
    cases = [Case("data", f"npy-{name}", ["analyze", "c.pt", "--data", "x.npy"], ERR,
                  {"c.pt": valid, "x.npy": _npy(a)}) for name, a in arrays.items()]
    cases += [Case("data", f"npz-{name}", ["analyze", "c.pt", "--data", "x.npz"], ERR,
                   {"c.pt": valid, "x.npz": _npz(a)}) for name, a in list(arrays.items())[:6]]
    good = [("big-endian", x.astype(">f8")), ("float16", x.astype(np.float16)),
            ("float64", x.astype(np.float64))]
    cases += [Case("data", f"npy-{name}", ["analyze", "c.pt", "--data", "x.npy"], RUNS,
                   {"c.pt": valid, "x.npy": _npy(a)}) for name, a in good]
    cases += [
        Case("data", "txt-no-tokenize", ["analyze", "c.pt", "--data", "x.txt"], ERR,
             {"c.pt": valid, "x.txt": b"a b c\n"}),
        Case("data", "txt-empty", ["analyze", "c.pt", "--data", "x.txt"], ERR,
             {"c.pt": valid, "x.txt": b"\n\n"}),
        Case("data", "txt-binary", ["analyze", "c.pt", "--data", "x.txt"], ERR,
             {"c.pt": valid, "x.txt": b"\xff\xfe\x00"}),
        Case("data", "unknown-ext", ["analyze", "c.pt", "--data", "x.csv"], ERR,
             {"c.pt": valid, "x.csv": b"1,2,3\n"}),
        Case("data", "pt-evil", ["analyze", "c.pt", "--data", "x.pt"], ERR,
             {"c.pt": valid, "x.pt": _torch_bytes({"x": Canary()})}),
        Case("data", "pt-str", ["analyze", "c.pt", "--data", "x.pt"], ERR,
             {"c.pt": valid, "x.pt": _torch_bytes("abc")}),
        Case("data", "npy-truncated", ["analyze", "c.pt", "--data", "x.npy"], ERR,
             {"c.pt": valid, "x.npy": lambda p: (np.save(p, np.zeros((10**6, 3))),
                                                 os.truncate(p, 500))}),
        Case("data", "npy-bad-header", ["analyze", "c.pt", "--data", "x.npy"], ERR,
             {"c.pt": valid, "x.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}  \n"}),
        Case("data", "npz-empty", ["analyze", "c.pt", "--data", "x.npz"], ERR,
             {"c.pt": valid, "x.npz": _zip({})}),
        Case("data", "npz-mismatched", ["analyze", "c.pt", "--data", "x.npz"], ERR,
             {"c.pt": valid, "x.npz": lambda p: np.savez(p, a=np.ones((3, 3)),
                                                        b=np.ones((4, 3)))}),
        Case("data", "labels-float", ["analyze", "l.pt"], ERR,
             {"l.pt": _torch_bytes(_valid_payload(labels={"f": torch.rand(40)}))}),
    ]
    return cases


def _protocol_cases() -> list[Case]:
    bad = ["DetachZ", "ItemZ", "NumpyZ", "MixRows", "Noisy", "TinyLogvar", "HugeLogvar",
           "EncodeFailsLater", "ExitsInEncode", "ReturnsOne", "WrongShapeLL", "NaNMu", "IntMu",
           "NoMethods"]
    cases = [Case("protocol", name, ["analyze", "c.pt"], ERR,
                  {"c.pt": _torch_bytes(_valid_payload(factory=f"hostile:{name}"))})
             for name in bad]
    cases.append(Case("protocol", "ExitsInDecoder", ["analyze", "c.pt"], frozenset({4}),
                      {"c.pt": _torch_bytes(_valid_payload(factory="hostile:ExitsInDecoder"))}))
    for name in ("IgnoresZ", "Float64"):
        cases.append(Case("protocol", name, ["analyze", "c.pt"], RUNS,
                          {"c.pt": _torch_bytes(_valid_payload(factory=f"hostile:{name}"))}))
    return cases


def _option_cases(valid: bytes) -> list[Case]:
    bad = {
        "--kl-eps": ["0", "-1", "inf", "-inf", "nan", "1e300", "1e-400", "abc", ""],
        "--active-threshold": ["0", "-1", "inf", "nan", "1e300", "x"],
        "--batch-size": ["0", "-1", str(2**40), "x", "1.5"],
        "--max-examples": ["0", "-1", "x", str(2**70)],
        "--seed": ["-1", str(2**32), str(2**64), "x", "1e3"],
        "--prior-samples": ["1", "0", str(10**9)],
        "--per-dim-swap-examples": ["-1", str(10**12)],
        "--format": ["pdf", "", ",", "json,pdf"],
        "--device": ["nonsense", "cuda:99", ""],
    }
    cases = [Case("options", f"{opt}={value}", ["analyze", "c.pt", opt, value], USAGE,
                  {"c.pt": valid}) for opt, values in bad.items() for value in values]
    cases += [Case("options", "unknown-option", ["analyze", "c.pt", "--nope"], USAGE,
                   {"c.pt": valid}),
              Case("options", "too-few-inputs", ["analyze", "c.pt", "--max-examples", "3"], ERR,
                   {"c.pt": valid}),
              Case("options", "kl-eps-max", ["analyze", "c.pt", "--kl-eps", "100"], RUNS,
                   {"c.pt": valid}),
              # the documented maximum, with the plots (it died drawing error bars, issue 27)
              Case("options", "seed-max", ["analyze", "c.pt", "--seed", str(2**32 - 1),
                                           "--format", "json,md"], RUNS, {"c.pt": valid})]
    return cases


def _path_cases(valid: bytes) -> list[Case]:
    odd = os.fsdecode(b"mod\xffel.pt")
    return [
        Case("paths", "missing", ["analyze", "nope.pt"], ERR),
        # a folder may be a pythae model folder (issue 13): any other folder is exit 3
        Case("paths", "directory", ["analyze", "."], ERR),
        Case("paths", "trailing-slash", ["analyze", "c.pt/"], ERR, {"c.pt": valid}),
        Case("paths", "fifo-checkpoint", ["analyze", "fifo"], ERR, {"fifo": os.mkfifo}),
        Case("paths", "fifo-config", ["analyze", "c.pt", "--config", "fifo"], ERR,
             {"c.pt": valid, "fifo": os.mkfifo}),
        Case("paths", "fifo-data", ["analyze", "c.pt", "--data", "fifo.npy"], ERR,
             {"c.pt": valid, "fifo.npy": os.mkfifo}),
        Case("paths", "fifo-monitor-log", ["track", "log.jsonl"], ERR,
             {"log.jsonl": os.mkfifo}),
        Case("paths", "fifo-labels", ["analyze", "c.pt", "--labels", "fifo.csv"], ERR,
             {"c.pt": valid, "fifo.csv": os.mkfifo}),
        Case("paths", "dev-null", ["analyze", "/dev/null"], ERR),
        Case("paths", "dev-zero-data", ["analyze", "c.pt", "--data", "/dev/zero"], ERR,
             {"c.pt": valid}),
        Case("paths", "dev-zero-config", ["analyze", "c.pt", "--config", "/dev/zero"], ERR,
             {"c.pt": valid}),
        Case("paths", "broken-link", ["analyze", "link.pt"], ERR,
             {"link.pt": lambda p: os.symlink("nowhere.pt", p)}),
        Case("paths", "link-loop", ["analyze", "loop.pt"], ERR,
             {"loop.pt": lambda p: os.symlink("loop.pt", p)}),
        Case("paths", "name-too-long", ["analyze", "x" * 300 + ".pt"], ERR),
        Case("paths", "non-utf8-missing", ["analyze", os.fsdecode(b"gone\xff.pt")], ERR),
        Case("paths", "non-utf8-existing", ["analyze", odd], RUNS, {odd: valid}),
        Case("paths", "newline-in-name", ["analyze", "a\nb.pt"], RUNS, {"a\nb.pt": valid}),
        Case("paths", "out-is-a-file", ["analyze", "c.pt", "--out", "afile/sub"], ERR,
             {"c.pt": valid, "afile": b"x"}),
        Case("paths", "data-is-dir", ["analyze", "c.pt", "--data", "d.npy/"], USAGE,
             {"c.pt": valid, "d.npy": os.mkdir}),
        Case("paths", "render-fifo", ["render", "rep"], ERR,
             {"rep": os.mkdir, "rep/report.json": os.mkfifo}),
        Case("paths", "render-garbage", ["render", "rep"], ERR,
             {"rep": os.mkdir, "rep/report.json": b"\xff\xfe"}),
        Case("paths", "render-missing", ["render", "nowhere"], ERR),
    ]


def _tensor_cases(valid: bytes) -> list[Case]:
    """Tensors without ordinary values, as data or labels: one line, never the catch-all."""
    x = ToyVAE().sample(40)
    y = torch.arange(40) % 2
    odd = {"sparse": lambda t: t.to_sparse(), "meta": lambda t: torch.empty_like(t, device="meta"),
           "zero-stride": lambda t: t[:1].expand(10**9, *t.shape[1:])}
    cases = []
    for name, make in odd.items():
        cases += [
            Case("tensors", f"data-{name}", ["analyze", "c.pt", "--data", "x.pt"], ERR,
                 {"c.pt": valid, "x.pt": _torch_bytes(make(x))}),
            Case("tensors", f"data-dict-{name}", ["analyze", "c.pt", "--data", "x.pt"], ERR,
                 {"c.pt": valid, "x.pt": _torch_bytes({"a": make(x)})}),
            Case("tensors", f"stored-data-{name}", ["analyze", "c.pt"], ERR,
                 {"c.pt": _torch_bytes(_valid_payload(data=make(x)))}),
            Case("tensors", f"labels-{name}", ["analyze", "c.pt", "--labels", "y.pt"], ERR,
                 {"c.pt": valid, "y.pt": _torch_bytes({"y": make(y)})}),
            Case("tensors", f"stored-labels-{name}", ["analyze", "c.pt"], ERR,
                 {"c.pt": _torch_bytes(_valid_payload(labels={"y": make(y)}))}),
        ]
    big = "\n".join(str(v) for v in [10**30] + [0, 1] * 20)
    cases += [Case("tensors", f"labels-beyond-int64-{ext}",
                   ["analyze", "c.pt", "--labels", f"y.{ext}"], ERR,
                   {"c.pt": valid, f"y.{ext}": text.encode()})
              for ext, text in [("csv", f"y\n{big}\n"),
                                ("jsonl", "".join(f'{{"y": {v}}}\n' for v in big.split()))]]
    return cases


def _laughs(depth: int) -> list:
    """A list of 2^depth leaves built from ``depth`` shared lists (small once pickled)."""
    value: list = [0]
    for _ in range(depth):
        value = [value, value]
    return value


def _limit_cases(valid: bytes) -> list[Case]:
    """Bounded work: configs, latent sizes and reports beyond the limits (config/limits.py)."""
    wide = ToyVAE(weights=(1.0,) * 1025)
    report = {"schema_version": 2, "n_examples": 40, "latent_dim": 3, "summary": {},
              "dimensions": [{}, {}, {}]}
    edits = {"summary-list": {"summary": []}, "dimensions-object": {"dimensions": {}},
             "rows-numbers": {"dimensions": [1, 2, 3]}, "n-text": {"n_examples": "40"},
             "n-bool": {"latent_dim": True}, "errors-list": {"errors": []},
             "warnings-object": {"warnings": {}}, "checkpoint-list": {"checkpoint": []},
             "settings-null": {"settings": None}, "provenance-str": {"provenance": "x"},
             "deep": {"summary": {"a": json.loads("[" * 70 + "]" * 70)}},
             "wide": {"latent_dim": 100_000, "dimensions": [{}] * 100_000},
             "status-object": {"dimensions": [{"status": {}}, {}, {}],
                               "summary": {"status_counts": {"used": 3}}}}
    deep_text = (b'{"schema_version": 2, "n_examples": 1, "latent_dim": 1, "dimensions": [{}], '
                 b'"summary": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}")
    cases = [Case("limits", f"report-{name}", ["render", "rep"], ERR,
                  {"rep": os.mkdir, "rep/report.json": json.dumps({**report, **edit}).encode()})
             for name, edit in edits.items()]
    cases += [
        Case("limits", "report-nested-10k", ["render", "rep"], ERR,
             {"rep": os.mkdir, "rep/report.json": deep_text}),
        Case("limits", "compare-report-nested-10k", ["compare", "rep", "c.pt"], ERR,
             {"rep": os.mkdir, "rep/report.json": deep_text, "c.pt": valid}),
        Case("limits", "latent-dim-over-the-limit", ["analyze", "w.pt"], ERR,
             {"w.pt": _torch_bytes({"collapse_diag": 1, "factory": "models:build_toy",
                                    "config": {"weights": [1.0] * 1025},
                                    "state_dict": wide.state_dict(), "data": wide.sample(40)})}),
        Case("limits", "config-billion-laughs", ["analyze", "c.pt", "--max-examples", "25"], ERR,
             {"c.pt": _torch_bytes(_valid_payload(config={"weights": _laughs(30)}))}),
        Case("limits", "config-nested-10k", ["analyze", "c.pt", "--config", "cfg.json"], ERR,
             {"c.pt": valid, "cfg.json": b'{"weights": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"}),
        Case("limits", "config-object-nested-10k", ["analyze", "c.pt", "--config", "cfg.json"],
             ERR, {"c.pt": valid, "cfg.json": b'{"a":' * 10_000 + b"1" + b"}" * 10_000}),
        *(Case("limits", f"component-over-255-bytes{option}",
               ["analyze", "c.pt", option, "x" * 300 + suffix], ERR, {"c.pt": valid})
          for option, suffix in [("--config", ".json"), ("--labels", ".csv"), ("--out", ""),
                                 ("--data", ".npy")]),
        Case("limits", "component-over-255-bytes-render", ["render", "r" * 300], ERR),
        Case("limits", "fifo-encodings", ["compare", "rep", "c.pt"], ERR,
             {"rep": os.mkdir, "rep/report.json": json.dumps(report).encode(),
              "rep/encodings.npz": os.mkfifo, "c.pt": valid}),
        Case("limits", "fifo-factory-module", ["analyze", "c.pt"], ERR,
             {"c.pt": _torch_bytes(_valid_payload(factory="piped:ToyVAE")),
              "piped.py": os.mkfifo}),
        Case("limits", "fifo-compare-report", ["compare", "rep", "c.pt"], ERR,
             {"rep": os.mkdir, "rep/report.json": os.mkfifo, "c.pt": valid}),
    ]
    return cases


def build_corpus() -> list[Case]:
    valid = _torch_bytes(_valid_payload())
    return (_checkpoint_bytes_cases(valid) + _keys_cases() + _factory_cases()
            + _config_cases(valid) + _data_cases(valid) + _protocol_cases()
            + _option_cases(valid) + _path_cases(valid) + _tensor_cases(valid)
            + _limit_cases(valid))


CORPUS = build_corpus()


def test_the_corpus_is_big_and_covers_every_family():
    assert len(CORPUS) >= 200
    assert {c.family for c in CORPUS} == {"bytes", "keys", "factories", "configs", "data",
                                          "protocol", "options", "paths", "tensors", "limits"}
    assert len({(c.family, c.name) for c in CORPUS}) == len(CORPUS)


@pytest.fixture
def workdir(user_dir, monkeypatch):
    shutil.copy(TESTS / "hostile_models.py", user_dir / "hostile.py")
    monkeypatch.delitem(sys.modules, "hostile", raising=False)
    np.save(user_dir / "x.npy", ToyVAE().sample(40).numpy())
    (user_dir / "out").mkdir()
    (user_dir / "out" / "report.json").write_bytes(PREVIOUS)
    yield user_dir
    sys.modules.pop("hostile", None)


class Hung(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception``/``OSError`` eats it."""


_FIRED: list[int] = []


def _alarm(signum, frame):
    _FIRED.append(signum)  # seen even if the CLI turns the exception into an exit code
    raise Hung(f"a case ran over {CASE_SECONDS} s: it hangs")


def check_case(root: Path, args: list, codes: frozenset, label: str) -> None:
    """Run one CLI call in ``root`` and assert every invariant of the module docstring."""
    # the case's own options come last, so they override the fast defaults
    full = [args[0], *FAST, "--out", "out", *args[1:]] if args[0] == "analyze" else list(args)
    old = signal.signal(signal.SIGALRM, _alarm)
    _FIRED.clear()
    signal.alarm(CASE_SECONDS)
    try:
        result = CliRunner().invoke(main, full)
    except Hung:
        pytest.fail(f"{label}: hangs")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if _FIRED:
        pytest.fail(f"{label}: hangs")
    output = result.output
    assert result.exit_code in codes, f"{label}: exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, f"{label}: traceback\n{output}"
    assert not (root / CANARY).exists(), f"{label}: the payload ran"
    report = root / "out" / "report.json"
    leftovers = [p.name for p in (root / "out").iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, f"{label}: temporary files left {leftovers}"
    if result.exit_code in (2, 3):
        errors = [ln for ln in output.splitlines() if ln.lower().startswith("error")]
        assert len(errors) == 1, f"{label}: not one error line\n{output}"
        if result.exit_code == 3:
            assert output.strip() == errors[0], f"{label}: more than the error line\n{output}"
        assert report.read_bytes() == PREVIOUS, f"{label}: previous report damaged"
    elif args[0] == "analyze":
        payload = json.loads(report.read_text())
        assert "summary" in payload and payload["n_examples"] >= 20, label
        report.write_bytes(PREVIOUS)


@pytest.mark.parametrize("case", CORPUS, ids=[f"{c.family}:{c.name}" for c in CORPUS])
def test_corpus_case(workdir, case):
    for name, content in case.files.items():
        path = workdir / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
    check_case(workdir, case.args, case.codes, f"{case.family}:{case.name}")


# ---- hypothesis: generated inputs ------------------------------------------------------------

HYP = settings(max_examples=25, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYP
@given(st.binary(min_size=0, max_size=2000))
def test_random_bytes_as_a_checkpoint(workdir, raw):
    (workdir / "r.pt").write_bytes(raw)
    check_case(workdir, ["analyze", "r.pt"], ERR, f"random bytes {raw[:20]!r}")


@HYP
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=6))
def test_mutated_checkpoints(workdir, flips):
    raw = bytearray(_torch_bytes(_valid_payload()))
    for pos, xor in flips:
        raw[pos % len(raw)] ^= xor
    (workdir / "m.pt").write_bytes(bytes(raw))
    # --max-examples 3 keeps a still-loadable file fast: it then stops at "too few inputs"
    check_case(workdir, ["analyze", "m.pt", "--max-examples", "3"], ERR, f"flips {flips}")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@HYP
@given(JSON)
def test_random_json_configs(workdir, value):
    (workdir / "c.pt").write_bytes(_torch_bytes(_valid_payload()))
    (workdir / "cfg.json").write_text(json.dumps(value))
    check_case(workdir, ["analyze", "c.pt", "--config", "cfg.json", "--max-examples", "3"],
               ERR, f"config {value!r}")


@HYP
@given(st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6))
def test_random_threshold_values(workdir, value):
    (workdir / "c.pt").write_bytes(_torch_bytes(_valid_payload()))
    try:
        number = float(value)
        valid = 0 < number <= 100
    except ValueError:
        valid = False
    text = repr(value) if isinstance(value, float) else value
    if text.startswith("-") or not text.strip():
        return  # "-x" parses as an option, "" as an empty value: covered in the corpus
    check_case(workdir, ["analyze", "c.pt", "--kl-eps", text, "--max-examples", "3"],
               ERR if valid else USAGE, f"--kl-eps {text!r}")


# ---- signals ---------------------------------------------------------------------------------

def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it. A suite started in the background of a
    non-interactive shell (`.ci/run` runs two side by side) inherits SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler, so Ctrl-C would never reach the run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_mid_run_leaves_the_previous_report_intact(workdir):
    (workdir / "s.pt").write_bytes(_torch_bytes(_valid_payload(factory="hostile:Slow")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(workdir)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collapse_diag_cli.main", "analyze", "s.pt", "--out", "out",
         "--format", "json,md"], cwd=workdir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 180
        while not (workdir / "STARTED").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the diagnostics"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.decode().strip() == "error: interrupted."
    assert (workdir / "out" / "report.json").read_bytes() == PREVIOUS
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["report.json"]
