"""A report's files are replaced as a set; signals and failures never leave a mixed folder.

Issue 27: ``--format json`` into a folder holding an earlier report left the old
report.md / report.html / plots beside the new report.json; SIGTERM and SIGHUP
mid-run changed the earlier report's files; an unwritable plots/ changed
report.json and then failed. Also here: the library's own exceptions for
writing (ReportWriteError, dpi bounds) and reading (Report.from_dict on the
wrong shape), the few-distinct-inputs warning, latent-dimension and report
limits, and ``$`` in compared model names.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from toy_models import ToyVAE

import collapse_diag
from collapse_diag.config.limits import MAX_LATENT_DIM
from collapse_diag.diagnostics.minimums import MIN_INPUTS
from collapse_diag.diagnostics.qualifications import FEW_DISTINCT_INPUTS, FEW_INPUTS
from collapse_diag.exceptions import (
    CollapseDiagError,
    DataError,
    InvalidParameterError,
    ProtocolError,
    ReportWriteError,
)
from collapse_diag.io import file_set
from collapse_diag.render import write_report
from collapse_diag.render.replace import MAX_DPI
from collapse_diag.report.encodings_file import save_encodings
from collapse_diag.report.report import Report
from collapse_diag_cli.common import signals_interrupt
from collapse_diag_cli.main import main

TESTS = Path(__file__).parent
REPO = TESTS.parent
FAST = ["--per-dim-swap-examples", "4", "--prior-samples", "2", "-q"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_staging_left(root: Path) -> None:
    left = [p for p in root.rglob("*") if file_set.STAGING_MARK in p.name]
    assert not left, left


def _fast_pngs(specs, report, dpi, **kwargs):
    """Plots drawn as a few bytes each (the swap is under test, not matplotlib)."""
    return {name: b"\x89PNG " + name.encode() for name in list(specs)[:3]}


@pytest.fixture(scope="module")
def template(analysed, tmp_path_factory):
    """A complete report folder (json, md, html, three plots) of 'healthy', written once."""
    from collapse_diag import render

    out = tmp_path_factory.mktemp("template") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "draw_pngs", _fast_pngs)
        write_report(copy.deepcopy(analysed["healthy"]), out)
    assert len(os.listdir(out / "plots")) == 3
    return out


@pytest.fixture
def earlier(template, tmp_path):
    """A copy of :func:`template`: the earlier report a run must leave whole or replace whole."""
    return Path(shutil.copytree(template, tmp_path / "out"))


@pytest.fixture
def fast_plots(monkeypatch):
    from collapse_diag import render

    monkeypatch.setattr(render, "draw_pngs", _fast_pngs)


# ---- replaced as a set -------------------------------------------------------------------------

def test_json_alone_removes_the_earlier_documents_and_names_them(reports, earlier):
    removed: list[str] = []
    write_report(reports["collapsed"], earlier, "json", removed=removed)
    assert sorted(p.name for p in earlier.iterdir()) == ["report.json"]
    assert "report.md" in removed and "report.html" in removed
    assert any(name.startswith("plots/") for name in removed)
    assert Report.from_json(earlier / "report.json").verdict == reports["collapsed"].verdict
    no_staging_left(earlier.parent)


def test_rerendering_one_document_keeps_report_json_and_the_others(reports, earlier,
                                                                      fast_plots):
    before = snapshot(earlier)
    removed: list[str] = []
    write_report(Report.from_json(earlier / "report.json"), earlier, "md", removed=removed)
    after = snapshot(earlier)
    assert removed == []
    assert after["report.json"] == before["report.json"]
    assert after["report.html"] == before["report.html"]


@pytest.mark.parametrize("fail_at", [0, 2, 5, 6, 7])  # 6 moves aside, 2 moves in
def test_a_move_that_fails_at_any_point_leaves_the_earlier_report_whole(reports, earlier,
                                                                        monkeypatch, fail_at,
                                                                        fast_plots):
    before = snapshot(earlier)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == fail_at + 1:
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(file_set.os, "replace", flaky)
    with pytest.raises(ReportWriteError, match="left as it was"):
        write_report(reports["collapsed"], earlier, ("json", "html"))
    monkeypatch.undo()
    assert snapshot(earlier) == before
    no_staging_left(earlier.parent)


def test_a_plots_folder_that_cannot_be_written_never_changes_report_json(reports, earlier,
                                                                           fast_plots):
    shutil.rmtree(earlier / "plots")
    (earlier / "plots").write_bytes(b"a file where the plots folder belongs")
    before = snapshot(earlier)
    with pytest.raises(ReportWriteError) as info:
        write_report(reports["collapsed"], earlier)
    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    assert snapshot(earlier) == before
    no_staging_left(earlier.parent)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_plots_folder_never_changes_report_json(reports, earlier, fast_plots):
    before = snapshot(earlier)
    os.chmod(earlier / "plots", 0o555)
    try:
        with pytest.raises(ReportWriteError):
            write_report(reports["collapsed"], earlier)
    finally:
        os.chmod(earlier / "plots", 0o755)
    assert snapshot(earlier) == before


def test_a_signal_during_the_swap_waits_until_the_new_set_is_whole(reports, earlier,
                                                                   monkeypatch):
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    real = os.replace
    monkeypatch.setattr(file_set.os, "replace", lambda src, dst: (
        os.kill(os.getpid(), signal.SIGTERM), real(src, dst))[1])
    old = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):  # delivered once the swap is done, not inside it
            write_report(reports["collapsed"], earlier, "json")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert sorted(p.name for p in earlier.iterdir()) == ["report.json"]
    assert Report.from_json(earlier / "report.json").verdict == reports["collapsed"].verdict


def test_without_a_writable_parent_the_set_is_staged_inside_the_folder(reports, earlier,
                                                                        monkeypatch):
    real = file_set.tempfile.mkdtemp

    def mkdtemp(prefix, dir):
        if Path(dir) == earlier.parent.resolve():
            raise PermissionError(13, "Permission denied", str(dir))
        assert Path(dir) == earlier.resolve()
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(file_set.tempfile, "mkdtemp", mkdtemp)
    removed: list[str] = []
    write_report(reports["collapsed"], earlier, "json", removed=removed)
    assert sorted(os.listdir(earlier)) == ["report.json"] and "report.md" in removed
    no_staging_left(earlier.parent)


def test_analyze_with_a_partial_format_names_the_stale_documents(toy_checkpoint, user_dir):
    first = CliRunner().invoke(main, ["analyze", "toy.pt", *FAST, "--out", "r",
                                      "--format", "json", "--save-encodings"])
    assert first.exit_code == 0, first.output
    assert sorted(os.listdir("r")) == ["encodings.npz", "report.json"]
    (user_dir / "r" / "report.html").write_text("<p>an earlier report</p>")
    second = CliRunner().invoke(main, ["analyze", "toy.pt", *FAST, "--out", "r",
                                       "--format", "json", "--seed", "1"])
    assert second.exit_code == 0, second.output
    assert sorted(os.listdir("r")) == ["report.json"]
    line = next(ln for ln in second.output.splitlines() if ln.startswith("removed from"))
    assert "encodings.npz" in line and "report.html" in line
    no_staging_left(user_dir)


def test_compare_replaces_its_own_set_and_draws_dollar_names(reports, user_dir):
    for name in ("$a_{$", r"$\frac$"):
        write_report(reports["healthy"], user_dir / name, "json")
    (user_dir / "cmp" / "models" / "0_old").mkdir(parents=True)
    (user_dir / "cmp" / "comparison.tex").write_text("an earlier comparison")
    result = CliRunner().invoke(main, ["compare", "$a_{$", r"$\frac$", "--out", "cmp",
                                       "--format", "json,md", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir("cmp")) == ["comparison.json", "comparison.md", "plots"]
    assert "comparison.tex, models" in result.output
    assert os.listdir("cmp/plots")


# ---- signals -----------------------------------------------------------------------------------

def _slow_checkpoint(workdir: Path) -> None:
    shutil.copy(TESTS / "hostile_models.py", workdir / "hostile.py")
    model = ToyVAE()
    collapse_diag.save_checkpoint(workdir / "s.pt", model, "hostile:Slow", {},
                                  data=model.sample(40))


def _wait_for(path: Path, proc=None, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the diagnostics"
        time.sleep(0.05)


def test_sigterm_mid_run_leaves_the_earlier_report_whole(user_dir, earlier, monkeypatch):
    workdir = earlier.parent
    monkeypatch.chdir(workdir)
    _slow_checkpoint(workdir)
    before = snapshot(earlier)
    paths = [str(TESTS), str(workdir), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "collapse_diag_cli.main", "analyze", "s.pt",
                             "--out", "out", "--format", "json"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(workdir / "STARTED", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert err.decode().strip() == "error: interrupted by SIGTERM."
    assert snapshot(earlier) == before
    no_staging_left(workdir)


def test_sighup_is_handled_like_sigint(user_dir, earlier, monkeypatch):
    workdir = earlier.parent
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.delitem(sys.modules, "hostile", raising=False)
    _slow_checkpoint(workdir)
    before = snapshot(earlier)
    outer = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # (SIG_IGN when run under nohup)
    sender = threading.Thread(target=lambda: (_wait_for(workdir / "STARTED"),
                                              os.kill(os.getpid(), signal.SIGHUP)))
    sender.start()
    try:
        result = CliRunner().invoke(main, ["analyze", "s.pt", "--out", "out", "-q"])
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # restored after the command
    finally:
        sender.join()
        sys.modules.pop("hostile", None)
        signal.signal(signal.SIGHUP, outer)
    assert result.exit_code == 128 + signal.SIGHUP, result.output
    assert result.output.strip() == "error: interrupted by SIGHUP."
    assert snapshot(earlier) == before


@pytest.mark.skipif(os.name != "posix", reason="abandoned staging folders are told by pid")
def test_a_staging_folder_left_by_a_killed_run_is_removed_by_the_next(reports, tmp_path):
    # SIGKILL leaves the staging folder; the next write to the same folder removes the ones
    # whose process is gone, and leaves those of a live process or of another host alone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "r"
    write_report(reports["healthy"], out, ("json",))
    host = file_set._host()
    left = {
        "dead": tmp_path / f".r{file_set.STAGING_MARK}{host}-{dead.pid}-abc",
        "inside": out / f"{file_set.STAGING_MARK}{host}-{dead.pid}-def",
        "live": tmp_path / f".r{file_set.STAGING_MARK}{host}-{os.getpid()}-ghi",
        "other host": tmp_path / f".r{file_set.STAGING_MARK}elsewhere-{dead.pid}-jkl",
        "other folder": tmp_path / f".q{file_set.STAGING_MARK}{host}-{dead.pid}-mno",
    }
    for path in left.values():
        (path / "new").mkdir(parents=True)
        (path / "new" / "report.json").write_text("{}")
    write_report(reports["healthy"], out, ("json",))
    assert {k for k, p in left.items() if p.exists()} == {"live", "other host", "other folder"}
    assert json.loads((out / "report.json").read_text())["summary"]


def test_a_hangup_ignored_by_nohup_stays_ignored():
    # `nohup collapse-diag analyze ... &`: the terminal's hangup must not stop the command.
    outer = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing is raised
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, outer)


# ---- the library's own exceptions ---------------------------------------------------------------

@pytest.mark.parametrize("dpi", [9, MAX_DPI + 1, 10**6, 2.5, True])
def test_write_report_refuses_a_dpi_outside_its_bounds(reports, tmp_path, dpi):
    with pytest.raises(InvalidParameterError, match="dpi"):
        write_report(reports["healthy"], tmp_path / "r", dpi=dpi)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["a-file/sub", "a-file"])
def test_write_report_into_an_unwritable_place_is_a_report_write_error(reports, tmp_path, where):
    (tmp_path / "a-file").write_bytes(b"x")
    with pytest.raises(ReportWriteError) as info:
        write_report(reports["healthy"], tmp_path / where, "json")
    assert isinstance(info.value, OSError) and isinstance(info.value, CollapseDiagError)
    assert "\n" not in str(info.value) and (tmp_path / "a-file").read_bytes() == b"x"


def test_save_encodings_into_a_folder_is_a_report_write_error(tmp_path):
    from collapse_diag.model.encodings import Encodings

    encodings = Encodings(mu=np.zeros((4, 2)), logvar=np.zeros((4, 2)))
    (tmp_path / "enc").mkdir()
    with pytest.raises(ReportWriteError, match="encodings"):
        save_encodings(tmp_path / "enc", encodings)
    assert save_encodings(tmp_path / "e.npz", encodings).is_file()


def _minimal(**edits):
    return {"schema_version": 2, "n_examples": 40, "latent_dim": 2, "summary": {},
            "dimensions": [{}, {}], **edits}


@pytest.mark.parametrize("edits", [
    {"summary": []}, {"dimensions": {}}, {"dimensions": [1, 2]}, {"n_examples": "40"},
    {"latent_dim": True}, {"errors": []}, {"warnings": "x"}, {"checkpoint": [1]},
    {"timings": None}, {"summary": {"a": json.loads("[" * 100 + "]" * 100)}},
    {"latent_dim": MAX_LATENT_DIM + 1},
])
def test_report_from_dict_on_the_wrong_shape_is_a_data_error(edits):
    with pytest.raises(DataError) as info:
        Report.from_dict(_minimal(**edits))
    assert "\n" not in str(info.value)


def test_report_json_over_the_size_limit_is_refused_before_parsing(tmp_path, monkeypatch):
    from collapse_diag.report import report as report_module

    (tmp_path / "report.json").write_text(json.dumps(_minimal()))
    assert Report.from_json(tmp_path / "report.json").latent_dim == 2
    monkeypatch.setattr(report_module, "MAX_REPORT_BYTES", 64)
    with pytest.raises(DataError, match="at most 64"):
        Report.from_json(tmp_path / "report.json")


# ---- bounded work and degenerate data ------------------------------------------------------------

def test_a_latent_dimension_over_the_limit_is_refused_before_any_diagnostic():
    model = ToyVAE(weights=(1.0,) * (MAX_LATENT_DIM + 1))
    start = time.perf_counter()
    with pytest.raises(ProtocolError, match="MAX_LATENT_DIM"):
        collapse_diag.analyze(model, model.sample(30))
    assert time.perf_counter() - start < 10  # refused before the work, not after


@pytest.mark.parametrize(("n", "warned"), [(MIN_INPUTS["verdict"], True),
                                            (FEW_DISTINCT_INPUTS, False)])
def test_a_verdict_on_few_distinct_inputs_says_so(tmp_path, n, warned):
    model = ToyVAE()
    x = model.sample(n).repeat(3, 1)  # 3n inputs, n distinct: the count that matters
    report = collapse_diag.analyze(model, x, diagnostics=["kl", "activity"])
    assert report.verdict is not None
    few = [w for w in report.warnings if w.startswith(f"{FEW_INPUTS}:")]
    assert bool(few) == warned
    if warned:
        assert f"{n} distinct inputs ({3 * n} analysed)" in few[0]
        written = write_report(report, tmp_path, ("json", "md"))
        assert "## Few distinct inputs" in written["md"].read_text()
        assert "Consistency warnings" not in written["md"].read_text()
        assert json.loads(written["json"].read_text())["warnings"] == few


def test_a_zero_stride_tensor_is_refused_without_being_copied():
    x = torch.zeros(1, 3).expand(10**9, 3)
    start = time.perf_counter()
    with pytest.raises(DataError, match="stride 0"):
        collapse_diag.analyze(ToyVAE(), x)
    assert time.perf_counter() - start < 10
