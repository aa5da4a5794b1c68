"""Issue 27: the pickle stream is measured before it is unpickled; a zip member must match its CRC.

A tuple DAG used as a dict key (each level holds its child twice through the memo)
describes 2^depth nodes in a few hundred bytes: hashing it never finishes. The scan
counts expanded sizes from the opcodes alone (pickletools builds nothing).
"""

import io
import pickle
import pickletools
import time
import zipfile

import pytest
import torch

from collapse_diag import CheckpointError, DataError, load_checkpoint, save_checkpoint
from collapse_diag.io.data import load_data
from collapse_diag.io.pickle_scan import MIN_EXPANDED, scan, too_costly


def _dag_key_stream(depth: int) -> bytes:
    """``{t_depth: 1}`` with t_0 = (1,), t_i = (t_{i-1}, t_{i-1}) shared through the memo."""
    out = bytearray(b"\x80\x02}q\xffK\x01\x85q\x000")  # PROTO 2, {}, (1,) as memo 0, POP
    for i in range(depth):  # BINGET i twice, TUPLE2, BINPUT i + 1, POP
        out += bytes([ord("h"), i, ord("h"), i]) + b"\x86" + bytes([ord("q"), i + 1]) + b"0"
    out += bytes([ord("h"), depth]) + b"K\x01s."  # key t_depth, value 1, SETITEM, STOP
    return bytes(out)


def test_the_scan_counts_shared_references_again():
    pickletools.dis(_dag_key_stream(3), out=io.StringIO())  # a well-formed stream
    shape = scan(_dag_key_stream(10))
    assert shape.complete
    # size(t_0) = 2, size(t_i) = 1 + 2 size(t_{i-1}) = 3 * 2^i - 1; plus the dict and the value
    assert shape.expanded == 1 + (3 * 2**10 - 1) + 1
    assert shape.depth == 12
    assert too_costly(scan(_dag_key_stream(10))) is None
    reason = too_costly(scan(_dag_key_stream(36)))
    assert reason and "hashing" in reason


@pytest.mark.parametrize("obj", [
    {"a": torch.zeros(3), "b": [1, 2, (3, 4)], "c": {"d": "e"}},
    [(i, str(i)) for i in range(1000)],
    {"x": {"y": {"z": [1.0] * 50}}},
])
def test_the_scan_agrees_with_real_pickles(obj):
    """Without sharing the expanded size is the number of objects built: within the limit."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(buffer) as archive:
        raw = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    shape = scan(raw)
    assert shape.complete and too_costly(shape) is None
    assert shape.expanded <= shape.opcodes


def test_a_plain_pickle_expands_to_the_objects_it_builds():
    shape = scan(pickle.dumps([(i, str(i)) for i in range(100)], protocol=4))
    assert shape.complete and shape.expanded == 1 + 100 * 3  # the list, each (int, str) tuple
    assert shape.depth == 2


def _torch_zip_with_stream(path, raw: bytes):
    """A torch-format zip whose data.pkl is ``raw`` (the other members as torch wrote them)."""
    buffer = io.BytesIO()
    torch.save({"x": 1}, buffer)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = raw if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info.filename, data)
    return path


def test_a_hash_bomb_checkpoint_is_refused_at_once(user_dir):
    path = _torch_zip_with_stream(user_dir / "bomb.pt", _dag_key_stream(36))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="crafted, refusing"):
        load_checkpoint(path)
    with pytest.raises(DataError, match="crafted, refusing"):
        load_data(path)
    assert time.perf_counter() - start < 30  # the guard, not a timing claim: it hung for minutes


def test_flipped_bytes_inside_a_weight_tensor_are_corrupt(user_dir):
    from toy_models import ToyVAE

    model = ToyVAE()
    path = save_checkpoint(user_dir / "c.pt", model, "models:ToyVAE",
                           {"weights": [2.0, 1.0, 0.0], "noise": 0.5}, data=model.sample(50))
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + k:info.header_offset + k + 2],
                                          "little") for k in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    raw[start] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt .*CRC-32"):
        load_checkpoint(path)


def test_the_shipped_checkpoints_pass_the_scan():
    from collapse_diag.examples import CHECKPOINT_DIR

    for path in sorted(CHECKPOINT_DIR.glob("*.pt")):
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        shape = scan(raw)
        assert shape.complete and shape.expanded < MIN_EXPANDED and too_costly(shape) is None
