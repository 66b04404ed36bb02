"""The experiment: evolution vs backprop vs both, at equal compute.

``evoticket experiment CONFIG [--name NAME] [--resume]`` expands an experiment file
(:mod:`evoticket.experiment.grid`) into cells (method x data set x density x allocation x budget x
seed), runs each as a normal campaign under ``runs/NAME/cells/`` (:mod:`evoticket.experiment.runner`)
and writes ``results.csv``, ``results.md`` (95% intervals, paired comparisons of the hybrid) and the
figures (:mod:`evoticket.experiment.results`, :mod:`evoticket.experiment.figures`).
"""

from __future__ import annotations

from evoticket.experiment.grid import AXES, Cell, Experiment, cell_config, parse_experiment
from evoticket.experiment.results import COLUMNS, aggregate, cell_accuracy, paired, t_interval
from evoticket.experiment.runner import ExperimentResult, imp_spend, load_experiment, run_experiment

__all__ = [
    "AXES",
    "COLUMNS",
    "Cell",
    "Experiment",
    "ExperimentResult",
    "aggregate",
    "cell_accuracy",
    "cell_config",
    "imp_spend",
    "load_experiment",
    "paired",
    "parse_experiment",
    "run_experiment",
    "t_interval",
]
