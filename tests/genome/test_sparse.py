"""Sparse ticket files: ``evoticket export RUN --format sparse`` and :func:`evoticket.genome.load_sparse`."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from evoticket import CampaignConfig, load_ticket, run_campaign
from evoticket.cli import main
from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.data import load_dataset
from evoticket.genome import SPARSE_FORMAT, SparseLinear, load_sparse, sparse_summary, write_sparse
from evoticket.genome.files import save_trained
from evoticket.models import BUILTIN, build_architecture

FAST = [
    "model.hidden=[16]",
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=2",
    "finetune.steps=5",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMaskSwap']",
    "optimizer.batch_size=50",
    "campaign.final_steps=20",
    "campaign.final_eval_every=10",
    "campaign.final_seeds=2",
    "campaign.progress=false",
    "campaign.device=cpu",
    "campaign.plots=none",
]
"""tests/conftest.py's FAST campaign (40-16-10 MLP, 2 final seeds), without plots."""

ATOL = 1e-5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny MNIST-1D campaign (one per module: the tests only read it or write next to it)."""
    root = tmp_path_factory.mktemp("sparse")
    with open(os.devnull, "w") as out:
        result = run_campaign(
            CampaignConfig().with_overrides(FAST),
            name="r",
            runs_dir=root / "runs",
            plots_dir=root / "plots",
            out=out,
        )
    return result.run_dir


@pytest.fixture(scope="module")
def x_test():
    """The real MNIST-1D test inputs ``(N, 40)`` (and labels)."""
    splits = load_dataset("mnist1d")
    return splits.x_test, splits.y_test


def sparse_layers(module: nn.Module) -> dict[str, SparseLinear]:
    return {name: m for name, m in module.named_modules() if isinstance(m, SparseLinear)}


def test_cli_export_writes_csr_weights_with_the_masks_nnz_and_the_dense_outputs(run_dir, x_test, cli):
    proc = cli(run_dir.parent.parent, [], "export", str(run_dir), "--format", "sparse", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    out = run_dir / "trained_ticket.sparse.pt"
    assert out.is_file()
    assert proc.stdout.splitlines() == [f"sparse ticket {out.stat().st_size:,} bytes", str(out)]
    dense = load_ticket(paths.trained_ticket(run_dir), seed=1, control="ticket").eval()
    sparse = load_sparse(out)
    layers = sparse_layers(sparse)
    assert set(layers) == {"fc1", "fc2"}  # the 40-16-10 MLP: both Linear layers masked
    for name, layer in layers.items():
        mask = getattr(dense, name).weight_mask.bool()
        assert layer.weight.layout == torch.sparse_csr
        assert layer.nnz == int(mask.sum()) < mask.numel()
        assert torch.equal(layer.weight.to_dense(), getattr(dense, name).weight.detach())
    assert not any(p.requires_grad for p in sparse.parameters()) and not sparse.training
    x, y = x_test
    with torch.no_grad():
        want, got = dense(x), sparse(x)
    assert got.shape == (x.shape[0], 10)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=ATOL)
    assert torch.equal(got.argmax(1), want.argmax(1))
    summary = sparse_summary(out)
    assert summary["file_bytes"] == out.stat().st_size
    assert summary["nnz"] == sum(layer.nnz for layer in layers.values())
    assert summary["seed"] == 1 and summary["control"] == "ticket"
    # the test accuracy the final comparison recorded for this network, reproduced by the sparse module
    acc = (got.argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(summary["test_acc"], abs=2 / x.shape[0])


@pytest.mark.parametrize("control", ["ticket", "dense", "random", "reinit"])
def test_every_control_of_every_seed_exports_equal_to_its_dense_module(run_dir, x_test, tmp_path, control):
    x = x_test[0][:256]
    for seed in (0, 1):
        out = tmp_path / f"{control}{seed}.pt"
        write_sparse(paths.trained_ticket(run_dir), out, seed=seed, control=control)
        dense = load_ticket(paths.trained_ticket(run_dir), seed=seed, control=control).eval()
        sparse = load_sparse(out)
        for name, layer in sparse_layers(sparse).items():
            assert layer.nnz == int(getattr(dense, name).weight_mask.sum())
        with torch.no_grad():
            torch.testing.assert_close(sparse(x), dense(x), atol=ATOL, rtol=ATOL)


def test_the_same_source_gives_the_same_bytes(run_dir, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    write_sparse(paths.trained_ticket(run_dir), a, seed=0, control="ticket")
    write_sparse(paths.trained_ticket(run_dir), b, seed=0, control="ticket")
    assert a.read_bytes() == b.read_bytes()


def test_a_bad_seed_exits_2_with_one_line_and_writes_nothing(run_dir, tmp_path, cli):
    out = tmp_path / "x.pt"
    proc = cli(tmp_path, [], "export", str(run_dir), "--format", "sparse", "--seed", "7", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "seed 7 does not exist; valid: 0 to 1" in proc.stderr and "trained_ticket.pt" in proc.stderr
    assert not out.exists() and not out.with_name("x.pt.tmp").exists()


def test_a_bad_control_exits_2_with_one_line_and_writes_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "x.pt"
    assert main(["export", str(run_dir), "--format", "sparse", "--control", "best", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "control 'best' does not exist; valid: ticket, dense, random, reinit" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_out_is_never_overwritten(run_dir, tmp_path, capsys):
    out = tmp_path / "taken.pt"
    out.write_bytes(b"mine")
    assert main(["export", str(run_dir), "--format", "sparse", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and str(out) in err
    assert out.read_bytes() == b"mine"
    with pytest.raises(EvoticketError, match="already exists"):
        write_sparse(paths.trained_ticket(run_dir), out, seed=0, control="ticket")
    assert out.read_bytes() == b"mine"


def test_load_sparse_refuses_other_files_in_one_line(run_dir, tmp_path):
    with pytest.raises(EvoticketError, match=f"not an evoticket sparse ticket file.*{SPARSE_FORMAT}") as e:
        load_sparse(paths.trained_ticket(run_dir))
    assert "\n" not in str(e.value)
    with pytest.raises(EvoticketError, match="no such sparse ticket file"):
        load_sparse(tmp_path / "missing.pt")
    with pytest.raises(EvoticketError, match="not an evoticket trained-ticket file"):
        write_sparse(paths.best_ticket(run_dir), tmp_path / "y.pt", seed=0, control="ticket")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_model_exports_equal_to_its_dense_masked_module(name, tmp_path):
    """Synthetic trained networks (random weights, biases, BatchNorm statistics; 10% masks) of every model."""
    arch = build_architecture(name, (40,), 10)
    gen = torch.Generator().manual_seed(0)
    weights = {k: torch.randn(v.shape, generator=gen) * 0.3 for k, v in arch.init_params("kaiming_normal", gen).items()}
    weights.update({k: torch.rand(v.shape, generator=gen) + 0.5 for k, v in arch.init_buffers().items()})
    masks = {k: torch.rand(weights[k].shape, generator=gen) < 0.1 for k in arch.weight_names}
    weights.update({k: weights[k] * m for k, m in masks.items()})
    entry = {"weights": weights, "masks": masks, "best_step": 3, "test_acc": 0.5}
    source = tmp_path / "trained_ticket.pt"
    save_trained(source, [{"ticket": entry}], arch, CampaignConfig())
    write_sparse(source, tmp_path / "s.pt", seed=0, control="ticket")
    sparse = load_sparse(tmp_path / "s.pt")
    dense = load_ticket(source, seed=0, control="ticket").eval()
    linear = [s.name for s in arch.layers if s.kind == "linear"]
    assert sorted(sparse_layers(sparse)) == sorted(linear)
    for layer in linear:
        assert sparse_layers(sparse)[layer].nnz == int(masks[f"{layer}.weight"].sum())
    for spec in arch.layers:
        if spec.kind == "conv1d":  # stored CSR, loaded dense: exactly the masked weight
            assert torch.equal(getattr(sparse, spec.name).weight, weights[spec.weight])
    x = torch.randn(64, 40, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x), atol=ATOL, rtol=ATOL)
        torch.testing.assert_close(sparse(x[:1]), dense(x[:1]), atol=ATOL, rtol=ATOL)  # batch 1
