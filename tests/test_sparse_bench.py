"""benchmarks/sparse_inference.py in its quick mode: the promised table rows and JSON fields (no timing asserts)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sparse_inference.py"


def load_script():
    """The benchmark script as a module (benchmarks/ is not a package), imported once."""
    name = "benchmarks_sparse_inference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the script is executed
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick CPU run with a small wide layer: ``(module, returned dict, JSON path)``."""
    bench = load_script()
    path = tmp_path_factory.mktemp("sparse-bench") / "out" / "sparse.json"
    result = bench.main(["--quick", "--device", "cpu", "--wide", "256", "--repeats", "2", "--json", str(path)])
    return bench, result, path


def test_quick_json_holds_every_net_density_and_batch_once(quick):
    bench, result, path = quick
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(result))
    assert data["benchmark"] == "sparse_inference" and data["settings"]["quick"] is True
    assert data["torch_version"] == torch.__version__ and data["threads"] >= 1
    assert set(data["devices"]) == {"cpu"} and data["devices"]["cpu"]
    assert data["settings"]["nets"] == {
        "mnist1d": [40, 300, 100, 10],
        "lenet": [784, 300, 100, 10],
        "wide": [256, 256, 10],
    }
    keys = [(r["net"], r["density"], r["batch"]) for r in data["rows"]]
    want = [(n, d, b) for n in bench.NETS for d in (0.10, 0.05, 0.02) for b in (1, 256)]
    assert sorted(keys) == sorted(want) and len(keys) == len(set(keys)) == 18
    fields = set(bench.Row.__dataclass_fields__)
    assert all(set(r) == fields for r in data["rows"])


def test_quick_rows_are_consistent(quick):
    _, result, _ = quick
    for r in result["rows"]:
        assert r["device"] == "cpu" and r["repeats"] == 2 and r["number"] >= 1
        layers = list(zip(r["sizes"][:-1], r["sizes"][1:], strict=True))
        assert r["weights"] == sum(a * b for a, b in layers)
        assert r["nnz"] == sum(max(1, round(r["density"] * a * b)) for a, b in layers)
        assert 0 < r["dense_min_ms"] <= r["dense_ms"] and 0 < r["sparse_min_ms"] <= r["sparse_ms"]
        assert r["ratio"] == pytest.approx(r["sparse_ms"] / r["dense_ms"])
        assert r["dense_samples_per_s"] == pytest.approx(r["batch"] / (r["dense_ms"] / 1e3))
        assert r["sparse_samples_per_s"] == pytest.approx(r["batch"] / (r["sparse_ms"] / 1e3))
        assert r["max_abs_diff"] < 1e-4  # the two variants compute the same network


def test_the_pair_holds_the_same_weights_dense_and_in_csr():
    bench = load_script()
    dense, sparse, nnz, total = bench.build_pair((40,), (30,), 0.05)
    assert total == 40 * 30 + 30 * 10 and nnz == round(0.05 * 1200) + round(0.05 * 300)
    for name in ("fc1", "fc2"):
        layer = getattr(sparse, name)
        assert isinstance(layer, bench.SparseLinear) and layer.weight.layout == torch.sparse_csr
        assert torch.equal(layer.weight.to_dense(), getattr(dense, name).weight)
