"""The Ray backend on a real local Ray instance (one for the whole module): same records as local, a worker
killed mid-generation, a tiny experiment grid as Ray tasks, and the errors without Ray or a cluster."""

from __future__ import annotations

import csv
import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from evoticket import cli
from evoticket.campaign import run_campaign
from evoticket.config import CampaignConfig
from evoticket.core.errors import EvoticketError
from evoticket.evolution.ray_backend import shard_bounds

ray = pytest.importorskip("ray")

CAMPAIGN = [
    "ga.population=6",
    "ga.offspring=6",
    "ga.generations=3",
    "finetune.steps=5",
    "finetune.mode=baldwinian",
    "ga.halving_rungs=1",
    "ga.mutations=['mutMaskSwap']",
    "optimizer.batch_size=50",
    "model.hidden=[16]",
    "campaign.final_steps=10",
    "campaign.final_seeds=1",
    "campaign.final_eval_every=5",
    "campaign.plots=none",
    "campaign.progress=false",
    "campaign.device=cpu",
]
TIMES = {"seconds", "finetune_seconds"}
LEVERS = [  # the evaluator's options travel to the actors: learned traits, halving rungs, the cache
    "campaign.population_block=3",  # two blocks of the population of 6, one per actor
    "ga.mutations=['mutMagnitudeSwap']",
    "ga.operator_args.mutMagnitudeSwap.grow=gradient",
    "ga.halving_rungs=2",
    "ga.fitness_cache=true",
    "finetune.minibatches=fixed",
]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance of 2 CPUs for every test of the module."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def records(run_dir):
    """individuals.jsonl as text, and generations.csv without its wall times."""
    with open(run_dir / "generations.csv", newline="") as f:
        gens = [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(f)]
    return (run_dir / "individuals.jsonl").read_text(), gens


def campaign(tmp_path, name, *more):
    config = CampaignConfig().with_overrides([*CAMPAIGN, *more])
    return run_campaign(config, name=name, runs_dir=tmp_path / "runs", plots_dir=tmp_path / "plots")


def test_shards_are_contiguous_in_population_order():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]  # never an empty shard
    assert shard_bounds(0, 2) == []
    # shards of whole population blocks: a block is never split between actors
    assert shard_bounds(16, 2, 8) == [(0, 8), (8, 16)]
    assert shard_bounds(16, 2, 64) == [(0, 16)]
    assert shard_bounds(20, 2, 8) == [(0, 16), (16, 20)]  # 3 blocks (8, 8, 4): 2 + 1
    assert shard_bounds(20, 4, 8) == [(0, 8), (8, 16), (16, 20)]


@pytest.mark.parametrize("block", [0])
def test_ray_gives_the_records_of_the_local_backend_at_the_default_model_size(cluster, tmp_path, block):
    """The default network (mlp 40-300-100-10) and the default GA (Lamarckian, halving), a population of 16: a batched
    matmul over P networks need not round like one over P/2, so both backends train the same population blocks.
    block 0: the CPU's block of 64 holds the whole population (one actor), as a default campaign on Ray runs. The
    populations split into blocks over two actors are the other tests' (LEVERS, HYBRID: blocks of 3 and 2)."""
    more = [
        "ga.population=16",
        "ga.generations=2",
        "finetune.steps=20",
        "campaign.seed=11",
        "campaign.final_steps=50",
        "campaign.final_seeds=1",
        "campaign.plots=none",
        "campaign.progress=false",
        "campaign.device=cpu",
        f"campaign.population_block={block}",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor (campaign.worker_cpus = 1)
    try:
        local = run_campaign(CampaignConfig().with_overrides(more), name="local", runs_dir=tmp_path / "runs")
    finally:
        torch.set_num_threads(threads)
    on_ray = run_campaign(
        CampaignConfig().with_overrides([*more, "campaign.backend=ray", "campaign.workers=2"]),
        name="ray",
        runs_dir=tmp_path / "runs",
    )
    assert CampaignConfig().model.hidden == () and local.summary["architecture"]["layers"][0]["out_features"] == 300
    assert records(on_ray.run_dir) == records(local.run_dir)
    assert on_ray.summary["controls"] == local.summary["controls"]


def test_ray_gives_the_records_of_the_local_backend_for_a_batchnorm_conv_net_on_images(cluster, tmp_path):
    """resnet20 (a generic torch.func network with per-individual BatchNorm buffers) on digits as 1x8x8 images: the
    actors rebuild the module from its name and train the same blocks as the local backend. One thread in the
    driver too: oneDNN's convolutions in the final comparison need not round alike on 1 and 2 threads."""
    more = [
        "model.hidden=[]",
        "model.name=resnet20",
        "data.name=digits",
        "data.layout=image",
        "ga.population=4",
        "ga.offspring=4",
        "ga.generations=1",
        "finetune.steps=3",
        "campaign.population_block=2",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = campaign(tmp_path, "local", *more)
        on_ray = campaign(tmp_path, "ray", *more, "campaign.backend=ray", "campaign.workers=2")
    finally:
        torch.set_num_threads(threads)
    assert on_ray.summary["architecture"]["generic"] and on_ray.summary["architecture"]["norms"]
    assert records(on_ray.run_dir) == records(local.run_dir)
    assert on_ray.summary["controls"] == local.summary["controls"]


def test_ray_gives_the_records_of_the_local_backend_even_with_a_worker_killed(cluster, tmp_path, monkeypatch):
    # the same arithmetic: each actor runs torch on campaign.worker_cpus = 1 thread, so the local run does too (the
    # float reductions of a multi-threaded matmul may round differently, and a loss tie-break then reorders)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = campaign(tmp_path, "local", *LEVERS)
    finally:
        torch.set_num_threads(threads)
    on_ray = campaign(tmp_path, "ray", "campaign.backend=ray", "campaign.workers=2", *LEVERS)
    assert records(on_ray.run_dir) == records(local.run_dir)
    assert on_ray.summary["best"] == local.summary["best"]
    # a worker process dies (SIGKILL) after fine-tuning its second shard (rung 1 of generation 0), before returning it:
    # Ray restarts it, the shard runs again, and nothing is recorded twice or lost
    marker = tmp_path / "killed"
    monkeypatch.setenv("EVOTICKET_KILL_AT", "worker:2")
    monkeypatch.setenv("EVOTICKET_KILL_ONCE", str(marker))
    killed = campaign(tmp_path, "killed", "campaign.backend=ray", "campaign.workers=2", *LEVERS)
    assert marker.exists()  # the kill happened
    assert records(killed.run_dir) == records(local.run_dir)


HYBRID = [  # the hybrid's levers: each individual's genes and optimizer state travel to the actors with it
    "campaign.population_block=3",
    "finetune.mode=lamarckian",
    "finetune.dynamic=rigl",
    "finetune.delta_t=2",
    "finetune.genes=['lr', 'alpha']",
    "finetune.optimizer_state=inherit",
    "ga.mutations=['mutGenesPerturb']",
]


def test_ray_gives_the_records_of_the_local_backend_for_the_hybrid_with_genes_and_optimizer_state(cluster, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = campaign(tmp_path, "local", *HYBRID)
    finally:
        torch.set_num_threads(threads)
    on_ray = campaign(tmp_path, "ray", "campaign.backend=ray", "campaign.workers=2", *HYBRID)
    text, _ = records(local.run_dir)
    assert len({json.loads(line)["genes"]["lr"] for line in text.splitlines()}) > 1  # the genes differ
    assert records(on_ray.run_dir) == records(local.run_dir)
    assert on_ray.summary["controls"] == local.summary["controls"]


def test_a_driver_killed_on_ray_resumes_locally_to_the_same_files(cluster, tmp_path, cli):
    from evoticket.campaign import resume_campaign

    reference = campaign(tmp_path, "reference")
    sets = [*CAMPAIGN, "campaign.backend=ray", "campaign.workers=2"]
    address = cluster.get_runtime_context().gcs_address  # the driver joins the module's instance
    killed = cli(tmp_path, sets, "run", "--name", "k", "--address", address, kill_at="checkpoint:2")
    assert killed.returncode != 0
    resumed = resume_campaign(tmp_path / "runs" / "k", ["campaign.backend=local"], plots_dir=tmp_path / "plots")
    assert records(resumed.run_dir) == records(reference.run_dir)


TINY = (Path(__file__).parents[1] / "experiment" / "tiny.toml").read_text(encoding="utf-8")
TINY = TINY.replace("seeds = [0, 1]", "seeds = [0]")  # one seed: the cells run twice (local, Ray)


def test_a_tiny_experiment_runs_its_cells_as_ray_tasks(cluster, tmp_path):
    from evoticket.experiment import run_experiment

    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(TINY), encoding="utf-8")
    dirs = {"runs_dir": tmp_path / "runs", "plots_dir": tmp_path / "plots", "progress": False}
    local = run_experiment(path, name="local", **dirs)
    on_ray = run_experiment(path, name="ray", backend="ray", **dirs)
    drop = ("wall_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in on_ray.rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in local.rows
    ]
    again = run_experiment(path, name="ray", backend="ray", resume=True, **dirs)
    assert again.ran == []  # finished cells are skipped on resume
    assert (on_ray.run_dir / "results.md").read_text() == (again.run_dir / "results.md").read_text()


def test_without_ray_or_a_cluster_the_error_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", *[a for s in CAMPAIGN for a in ("--set", s)], "--name", "x"]
    code = cli.main([*argv, "--backend", "ray", "--address", "127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("evoticket: error: campaign.ray_address: cannot reach a Ray cluster at 127.0.0.1:9")
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code = cli.main([*argv, "--backend", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "campaign.backend = 'ray' needs Ray, which is not installed" in err and "evoticket[ray]" in err
    with pytest.raises(EvoticketError, match=r"^--backend = 'ray' needs Ray"):
        from evoticket.experiment import run_experiment

        run_experiment(tmp_path / "none.toml", backend="ray")
