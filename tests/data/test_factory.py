"""Tests of data.name = "package.module:factory": arrays or a pair of Datasets from one's own code."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from evoticket.core.errors import ConfigError, DataError
from evoticket.data.factory import is_factory_spec, load_factory

MODULE = "evoticket_test_factories"

SOURCE = '''
"""Factories of one's own, as a researcher would write them."""

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

SEEN_ROOTS = []


def arrays(root):
    SEEN_ROOTS.append(root)
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(20, 6)),
        "y_train": np.arange(20) % 4,
        "x_test": torch.zeros(8, 6),
        "y_test": torch.arange(8) % 4,
    }


class Squares(Dataset):
    """Items (x, y): x a (1, 3, 3) tensor, y a Python int."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((1, 3, 3), float(i)), i % 2


def datasets(root):
    return Squares(10), TensorDataset(torch.ones(4, 1, 3, 3), torch.tensor([0, 1, 1, 0]))


def numpy_items(root):
    train = [(np.full((2, 2), i, dtype=np.uint8), np.int64(i % 2)) for i in range(6)]
    return train, [(np.zeros((2, 2)), 1), (np.ones((2, 2)), 0)]


def boom(root):
    raise ValueError("no data under " + repr(root) + "\\nsecond line")


def three(root):
    return 3


def missing_y_test(root):
    out = arrays(root)
    del out["y_test"]
    return out


def not_pairs(root):
    return [torch.zeros(2)] * 4, Squares(2)


def ragged(root):
    return [(torch.zeros(2), 0), (torch.zeros(2), 1), (torch.zeros(3), 0)], Squares(2)


def float_labels(root):
    return [(torch.zeros(2), 0.5)] * 4, Squares(2)


class Broken(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        raise IndexError(f"item {i} is gone")


def broken(root):
    return Broken(), Squares(2)


def no_len(root):
    return iter([(torch.zeros(2), 0)]), Squares(2)


NOT_CALLABLE = 42
'''


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module name of :data:`SOURCE`, importable from a folder on sys.path."""
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    yield MODULE
    sys.modules.pop(MODULE, None)


def test_is_factory_spec() -> None:
    assert is_factory_spec("a.b:c") and not is_factory_spec("mnist") and not is_factory_spec(None)


def test_a_factory_of_arrays(factories: str) -> None:
    s = load_factory(f"{factories}:arrays", root="/some/where", val_fraction=0.25, seed=2)
    assert sys.modules[factories].SEEN_ROOTS == ["/some/where"]
    assert s.name == f"{factories}:arrays" and s.num_classes == 4 and s.input_shape == (6,)
    assert s.sizes() == {"train": 15, "val": 5, "test": 8}
    assert s.x_train.dtype == torch.float32 and s.y_test.dtype == torch.int64
    load_factory(f"{factories}:arrays")
    assert sys.modules[factories].SEEN_ROOTS[-1] == ""  # data.root unset: an empty string
    assert load_factory(f"{factories}:arrays", layout="image").input_shape == (1, 6)


def test_a_factory_of_datasets(factories: str) -> None:
    s = load_factory(f"{factories}:datasets", val_fraction=0.2)
    assert s.input_shape == (1, 3, 3) and s.num_classes == 2
    assert s.sizes() == {"train": 8, "val": 2, "test": 4}
    values = sorted(int(v) for v in torch.cat([s.x_train, s.x_val])[:, 0, 0, 0])
    assert values == list(range(10))  # every item read once
    for x, y in zip(torch.cat([s.x_train, s.x_val]), torch.cat([s.y_train, s.y_val]), strict=True):
        assert int(y) == int(x[0, 0, 0]) % 2 and torch.all(x == x[0, 0, 0])
    assert torch.equal(s.x_test, torch.ones(4, 1, 3, 3)) and s.y_test.tolist() == [0, 1, 1, 0]
    assert load_factory(f"{factories}:datasets", layout="flat").input_shape == (9,)
    n = load_factory(f"{factories}:numpy_items")
    assert n.input_shape == (2, 2) and n.y_test.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("name", "error", "expected"),
    [
        ("boom", DataError, "the factory raised ValueError: no data under ''"),
        ("three", DataError, "the factory returned an int; expected a mapping of arrays"),
        ("missing_y_test", DataError, "no array y_test; needs x_train, y_train, x_test, y_test"),
        ("not_pairs", DataError, "train_dataset[0] is a Tensor, not a pair (x, y)"),
        ("ragged", DataError, "train_dataset[2] has input shape (3,) but train_dataset[0] has (2,)"),
        ("float_labels", DataError, "train_dataset[0] has label 0.5; labels must be integers"),
        ("broken", DataError, "train_dataset[0] raised IndexError: item 0 is gone"),
        ("no_len", DataError, "train_dataset is a list_iterator without len()"),
    ],
)
def test_a_bad_factory_is_one_line_naming_data_name(factories: str, name: str, error: type, expected: str) -> None:
    spec = f"{factories}:{name}"
    with pytest.raises(error) as info:
        load_factory(spec)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"data.name: {spec!r}: {expected}"), message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("evoticket_no_such_module:f", "data.name: cannot import 'evoticket_no_such_module:f': ModuleNotFoundError"),
        (f"{MODULE}:nope", f"data.name: cannot import '{MODULE}:nope': module '{MODULE}' has no attribute 'nope'"),
        (":f", "data.name: ':f' is not 'package.module:name'"),
    ],
)
def test_a_factory_that_cannot_be_imported(factories: str, spec: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_factory(spec)
    assert str(info.value).startswith(expected) and "\n" not in str(info.value)


def test_a_factory_that_is_not_callable(factories: str) -> None:
    with pytest.raises(DataError, match=rf"^data\.name: '{MODULE}:NOT_CALLABLE' is an int, not a callable factory"):
        load_factory(f"{factories}:NOT_CALLABLE")
