"""Plugins: an installed distribution's entry points add a model, a data set, an operator and a method to every
process (``evoticket run``, ``plot``, ``export``, ``load_ticket`` in later processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = textwrap.dedent(
    '''
    """A plugin package as a user would install it."""
    import dataclasses

    import torch
    from torch import nn

    from evoticket.data import Splits
    from evoticket.methods.onerun import Dense
    from evoticket.operators import OPERATORS


    class PlugNet(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[0], 4, 3, padding=1)
            self.out = nn.Linear(4 * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            return self.out(self.conv(x).relu().flatten(1))


    def make_net(input_shape, num_classes):
        """A tiny convolutional network."""
        return PlugNet(input_shape, num_classes)


    def load_toy(*, root, val_fraction, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(300, 1, 6, 6, generator=g)
        y = torch.randint(0, 3, (300,), generator=g)
        x[torch.arange(300), 0, y, :] += 2.0
        return Splits("plug_toy", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], 3)


    mutPlugSwap = dataclasses.replace(OPERATORS["mutMaskSwap"], name="mutPlugSwap")


    class PlugDense(Dense):
        name = "plug_dense"


    plug_dense = PlugDense()
    '''
)

ENTRY_POINTS = """\
[evoticket.models]
plug_net = evoplug:make_net

[evoticket.datasets]
plug_toy = evoplug:load_toy

[evoticket.operators]
mutPlugSwap = evoplug:mutPlugSwap

[evoticket.methods]
plug_dense = evoplug:plug_dense
"""


@pytest.fixture
def plugin_env(tmp_path):
    """A directory on PYTHONPATH holding the module and its distribution's metadata (as pip installs it)."""
    site = tmp_path / "site"
    dist = site / "evoplug-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "evoplug.py").write_text(PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evoplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("EVOTICKET_KILL_AT", None)
    return tmp_path, env


def run(env, cwd, *args):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_entry_points_add_a_model_a_data_set_an_operator_and_a_method_to_every_process(plugin_env):
    root, env = plugin_env
    common = [
        "--set=model.name=plug_net",
        "--set=data.name=plug_toy",
        "--set=campaign.final_steps=10",
        "--set=campaign.final_eval_every=5",
        "--set=campaign.final_seeds=1",
        "--set=campaign.plots=none",
        "--set=campaign.progress=false",
        "--set=optimizer.batch_size=50",
    ]
    done = run(
        env,
        root,
        "-m",
        "evoticket.cli",
        "run",
        "--name",
        "m",
        "--set=method=plug_dense",
        "--set=train.steps=10",
        *common,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((root / "runs" / "m" / "summary.json").read_text())
    assert summary["method"] == "plug_dense" and summary["model"] == "plug_net"
    assert summary["architecture"]["generic"] and summary["architecture"]["layers"][0]["name"] == "conv"
    ga = [
        "--set=method=ga",
        "--set=ga.mutations=['mutPlugSwap']",
        "--set=ga.population=4",
        "--set=ga.offspring=4",
        "--set=ga.generations=1",
        "--set=finetune.steps=5",
        "--set=ga.halving_rungs=1",
    ]
    done = run(env, root, "-m", "evoticket.cli", "run", "--name", "g", *ga, *common)
    assert done.returncode == 0, done.stderr
    rows = (root / "runs" / "g" / "individuals.jsonl").read_text()
    assert "mutPlugSwap" in rows
    # later processes: the figures, an export and load_ticket find everything again
    done = run(env, root, "-m", "evoticket.cli", "plot", "runs/g")
    assert done.returncode == 0, done.stderr
    assert (root / "plots" / "g" / "fitness.png").is_file()
    done = run(env, root, "-m", "evoticket.cli", "export", "runs/g", "--format", "sparse", "--out", "g.sparse.pt")
    assert done.returncode == 0, done.stderr
    code = (
        "import evoticket, torch; m = evoticket.load_ticket('runs/g/best_ticket.pt'); "
        "print(type(m).__name__, hasattr(m.conv, 'weight_mask'), tuple(m(torch.zeros(2, 1, 6, 6)).shape))"
    )
    done = run(env, root, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["PlugNet", "True", "(2,", "3)"]


def test_a_broken_plugin_is_one_line_naming_it(plugin_env):
    root, env = plugin_env
    (root / "site" / "evoplug.py").write_text("raise ImportError('missing dependency foo')\n")
    done = run(env, root, "-m", "evoticket.cli", "run", "--set=model.name=plug_net", "--set=campaign.progress=false")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "evoticket: error: plugin 'plug_net' (evoticket.models = evoplug:make_net): cannot be loaded: ImportError: "
        "missing dependency foo"
    ]
    assert not (root / "runs").exists()


def test_a_factory_beside_the_user_is_found_from_the_working_directory(tmp_path, monkeypatch):
    """``model.name = "mynets:make"`` finds ``./mynets.py`` (console scripts do not put the working directory on
    sys.path); a module that is nowhere is still one line naming the key."""
    from evoticket.core.errors import ConfigError
    from evoticket.core.plugins import import_object

    (tmp_path / "mynets_here.py").write_text("def make(input_shape, num_classes):\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert import_object("mynets_here:make", "model.name")((40,), 10) == 42
    with pytest.raises(ConfigError, match=r"^model.name: cannot import 'nowhere_at_all:make'.*importable from here"):
        import_object("nowhere_at_all:make", "model.name")
