import numpy as np
import pytest
import torch

from collapse_diag import DataError, ProtocolError
from collapse_diag.io.data import (
    load_data,
    num_examples,
    repeat,
    subsample_indices,
    take,
    validate_data,
)


def test_tensor_and_dict_helpers():
    x = {"t": torch.arange(10).reshape(5, 2), "n": torch.arange(5)}
    assert num_examples(x) == 5
    assert torch.equal(take(x, [4, 0])["n"], torch.tensor([4, 0]))
    assert torch.equal(repeat(x, 3)["n"], torch.arange(5).repeat(3))
    parts = [take(x, slice(s, s + 2)) for s in range(0, 5, 2)]
    assert [num_examples(p) for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([p["t"] for p in parts]), x["t"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(0, 3), "no examples"),
        (torch.tensor(1.0), "no examples"),
        ({}, "empty dict"),
        ({"a": torch.zeros(3), "b": torch.zeros(4)}, "disagree"),
        ({"a": [1, 2]}, "not a Tensor"),
        ([1, 2, 3], "must be a Tensor or a dict"),
    ],
)
def test_validate_rejects(value, message):
    with pytest.raises(DataError, match=message):
        validate_data(value)


def test_numpy_is_converted():
    assert isinstance(validate_data(np.zeros((2, 3))), torch.Tensor)


def test_subsample_is_seeded_sorted_and_bounded():
    a = subsample_indices(100, 10, torch.Generator().manual_seed(1))
    b = subsample_indices(100, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(a) == 10 and torch.all(a[1:] > a[:-1])
    assert torch.equal(subsample_indices(5, 10, torch.Generator()), torch.arange(5))


def test_load_formats(tmp_path):
    x = torch.randn(4, 3)
    torch.save(x, tmp_path / "x.pt")
    np.save(tmp_path / "x.npy", x.numpy())
    np.savez(tmp_path / "x.npz", a=x.numpy(), b=np.arange(4))
    np.savez(tmp_path / "one.npz", a=x.numpy())
    assert torch.equal(load_data(tmp_path / "x.pt"), x)
    assert torch.equal(load_data(tmp_path / "x.npy"), x)
    assert set(load_data(tmp_path / "x.npz")) == {"a", "b"}
    assert torch.equal(load_data(tmp_path / "one.npz"), x)


def test_load_text_uses_tokenize(tmp_path):
    class Tok:
        def tokenize(self, lines):
            return torch.tensor([[len(line)] for line in lines])

    path = tmp_path / "s.txt"
    path.write_text("a b\n\nccc\n")
    assert load_data(path, Tok()).tolist() == [[3], [3]]
    with pytest.raises(ProtocolError, match="no tokenize"):
        load_data(path, object())
    (tmp_path / "e.txt").write_text("\n  \n")
    with pytest.raises(DataError, match="no non-empty lines"):
        load_data(tmp_path / "e.txt", Tok())


def test_load_jsonl_text_by_field(tmp_path):
    class Tok:
        def tokenize(self, lines):
            return torch.tensor([[len(line)] for line in lines])

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a b", "label": 1}\n\n{"text": "ccc", "label": 0}\n')
    assert load_data(path, Tok()).tolist() == [[3], [3]]  # the default field: text
    (tmp_path / "r.jsonl").write_text('{"review": "abcd"}\n{"review": "ab"}\n')
    assert load_data(f"{tmp_path / 'r.jsonl'}:review", Tok()).tolist() == [[4], [2]]
    with pytest.raises(DataError, match="example 1: no text field 'text' .found \\['review'\\]"):
        load_data(tmp_path / "r.jsonl", Tok())
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(DataError, match="example 2: not JSON"):
        load_data(tmp_path / "bad.jsonl", Tok())


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "missing.pt")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown extension"):
        load_data(tmp_path / "x.csv")
    (tmp_path / "bad.pt").write_text("garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_data(tmp_path / "bad.pt")
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    with pytest.raises(DataError, match="no examples"):
        load_data(tmp_path / "empty.npy")
