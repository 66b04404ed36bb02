"""Figures made from a run's files on disk, never from live objects; one module per figure."""

from __future__ import annotations

from evoticket.plots.fitness import plot_fitness

__all__ = ["plot_fitness"]
