"""The benchmark: runs in a tiny mode, writes the promised JSON, and its three evaluators agree.

No timing assertions: speed targets live in benchmarks/README.md, never in unit tests.
"""

from __future__ import annotations

import json

import pytest
import torch

from evoticket import training as finetune
from evoticket.bench import (
    BENCH_MODELS,
    EVALUATORS,
    Mode,
    make_problem,
    run_batched,
    run_bench,
    step_flops,
)
from evoticket.cli import main
from evoticket.config import OptimizerConfig
from evoticket.models import build_architecture
from evoticket.training import (
    AutogradGradient,
    MaskedOptimizer,
    finetune_stacked,
    finetune_tickets,
    make_optimizer,
    minibatches,
)

TINY = Mode(populations=(1, 4), max_steps=2, min_steps=2, target_seconds=0.01, repeats=1, memory_population=4)
ROW_KEYS = {
    "model",
    "population",
    "evaluator",
    "device",
    "indiv_steps_per_s",
    "gflops",
    "peak_gflops",
    "peak_memory_mb",
    "peak_memory_mb_per_individual",
}


def small_problem(model="mlp", population=3, optimizer="adam", weight_decay=0.0, seed=0):
    hidden = {"mlp": [16, 12], "mlp_residual": [16], "cnn1d": [4]}[model]
    arch = build_architecture(model, (24,), 4, hidden)
    cfg = OptimizerConfig(lr=1e-2, batch_size=16, optimizer=optimizer, weight_decay=weight_decay)
    return make_problem(arch, population, torch.device("cpu"), cfg, density=0.4, n_train=120, n_val=40, seed=seed)


def test_tiny_bench_writes_promised_json(tmp_path, capsys):
    path = tmp_path / "out" / "bench.json"
    status = run_bench(json_path=path, device="cpu", mode=TINY, models=["mnist1d-mlp"], memory_model="mnist1d-mlp")
    assert status == 0
    data = json.loads(path.read_text())
    assert {"torch_version", "threads", "device", "peak_gflops", "rows", "memory_check"} <= data.keys()
    assert data["torch_version"] == torch.__version__ and data["threads"] >= 1 and data["device"] == "cpu"
    assert data["peak_gflops"]["float32"] > 0
    rows = data["rows"]
    assert {(r["population"], r["evaluator"]) for r in rows} == {(p, e) for p in (1, 4) for e in EVALUATORS}
    for row in rows:
        assert ROW_KEYS <= row.keys()
        assert row["model"] == "mnist1d-mlp" and row["device"] == "cpu" and not row["estimated"]
        for key in ("indiv_steps_per_s", "gflops", "peak_gflops", "peak_memory_mb", "peak_memory_mb_per_individual"):
            assert row[key] > 0, key
    check = data["memory_check"]
    assert check["chunks"] >= 2 and check["chunk_size"] >= 1 and check["measured_peak_mb"] is not None
    assert "indiv steps/s" in capsys.readouterr().out


def test_cli_bench_rejects_missing_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["bench", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mlp", "mlp_residual", "cnn1d"])
def test_evaluators_compute_the_same_weights(model):
    """batched, vmap and the per-individual loop: the same Adam trajectory, to 1e-4."""
    problem = small_problem(model, weight_decay=1e-4)
    _, batched = run_batched(problem, 6, 3, True)
    for name in ("generic", "vmap", "loop"):
        _, weights = EVALUATORS[name](problem, 6, 3, True)
        assert weights.keys() == batched.keys()
        for key in batched:
            torch.testing.assert_close(weights[key], batched[key], atol=1e-4, rtol=0, msg=f"{name} {key}")
    masks = problem.masks
    assert all(torch.all(batched[k][~m] == 0) for k, m in masks.items())
    assert any(not torch.equal(batched[k], problem.theta0[k] * masks.get(k, 1)) for k in batched)


def test_a_conv_model_trains_the_same_batched_and_in_a_loop():
    """lenet5 (the generic path) against the per-individual loop of nn.Modules: the same SGD trajectory."""
    arch = build_architecture("lenet5", (1, 8, 8), 4)
    cfg = OptimizerConfig(lr=1e-2, batch_size=16, optimizer="sgd")
    problem = make_problem(arch, 3, torch.device("cpu"), cfg, density=0.4, n_train=120, n_val=40)
    _, batched = run_batched(problem, 5, 3, True)
    _, loop = EVALUATORS["loop"](problem, 5, 3, True)
    for key in batched:
        torch.testing.assert_close(loop[key], batched[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("model", ["mlp", "cnn1d"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_masked_optimizer_equals_dense_torch_optimizer(model, optimizer):
    """MaskedOptimizer (kept entries only) equals a plain torch.optim optimizer on masked gradients."""
    problem = small_problem(model, optimizer=optimizer, weight_decay=1e-3)
    batches = problem.batches(5, seed=4)
    results = []
    for packed in (True, False):
        params = {
            k: (v * problem.masks[k] if k in problem.masks else v).clone().requires_grad_(True)
            for k, v in problem.theta0.items()
        }
        if packed:
            opt = MaskedOptimizer(params, problem.masks, problem.cfg)
        else:
            opt = make_optimizer(list(params.values()), problem.cfg)
        gradient = AutogradGradient(problem.arch, params)
        dense_masks = {k: m.to(torch.float32) for k, m in problem.masks.items()}
        for x, y in minibatches(problem.splits, batches):
            loss = gradient(x, y)
            assert torch.isfinite(loss).all()
            if packed:
                opt.step(gradient.grads)
                continue
            with torch.no_grad():
                for name, param in params.items():
                    grad = gradient.grads[name]
                    param.grad = grad * dense_masks[name] if name in dense_masks else grad
            opt.step()
        results.append({k: v.detach() for k, v in params.items()})
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], atol=1e-5, rtol=0)


def test_masked_optimizer_handles_an_empty_layer():
    problem = small_problem("mlp", population=2)
    masks = dict(problem.masks)
    masks["fc2.weight"] = torch.zeros_like(masks["fc2.weight"])
    result = finetune_stacked(
        problem.arch, problem.theta0, masks, problem.splits, problem.cfg, problem.batches(3), return_weights=True
    )
    assert torch.all(result.weights["fc2.weight"] == 0)
    assert not result.nonfinite.any()


def test_step_flops_counts():
    mlp = build_architecture("mlp", (40,), 10, [300, 100])
    assert step_flops(mlp, 100) == 6 * (40 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10) * 100
    cnn = BENCH_MODELS["mnist1d-cnn1d"][1]()
    # conv lengths 40 -> 19 -> 10 -> 5; the linear read-out has 25 * 5 inputs
    per_example = (5 * 25 + 25) * 19 + (3 * 25 * 25 + 25) * 10 + (3 * 25 * 25 + 25) * 5 + (125 * 10 + 10)
    assert step_flops(cnn, 1) == 6 * per_example
    conv2 = BENCH_MODELS["cifar-conv2"][1]()
    # two 3x3 'same' convolutions at 32x32 positions, then 16384-256-256-10
    per_example = (1728 + 64) * 1024 + (36864 + 64) * 1024 + (16384 * 256 + 256) + (65536 + 256) + 2570
    assert step_flops(conv2, 1) == 6 * per_example


def test_batch_result_times_are_reported_and_blocks_change_nothing(monkeypatch):
    problem = small_problem("mlp", population=5)
    result = finetune_tickets(problem.tickets, problem.arch, problem.splits, problem.cfg, seed=0, steps=3)
    assert result.train_seconds > 0 and result.eval_seconds > 0
    # one individual per chunk
    chunked = finetune_tickets(
        problem.tickets, problem.arch, problem.splits, problem.cfg, seed=0, steps=3, max_memory_mb=1e-6
    )
    assert chunked.train_seconds > 0 and chunked.eval_seconds > 0
    torch.testing.assert_close(chunked.val_loss, result.val_loss, atol=1e-5, rtol=0)
    monkeypatch.setitem(finetune.POPULATION_BLOCK, "cpu", 2)
    assert finetune.population_chunk(problem.arch, problem.cfg, 40, 0.4, "cpu") == 2
    blocked = finetune_tickets(problem.tickets, problem.arch, problem.splits, problem.cfg, seed=0, steps=3)
    torch.testing.assert_close(blocked.val_loss, result.val_loss, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_bench_on_cuda(tmp_path):
    path = tmp_path / "bench.json"
    assert run_bench(json_path=path, device="cuda", mode=TINY, models=["mnist1d-mlp"], memory_model="mnist1d-mlp") == 0
    data = json.loads(path.read_text())
    assert {"float32", "tf32", "bfloat16"} <= data["peak_gflops"].keys()
    assert all(r["memory_method"] == "cuda_max_allocated" for r in data["rows"])
