"""Records of a user's own DEAP search, in a run directory that evoticket's plots, lineage and compare read.

:class:`RunRecorder` makes ``runs/NAME`` (its ``config.toml``) and listens to the toolbox's batched
evaluator: every batch evaluated (one per generation in DEAP's ``eaSimple``, ``eaMuPlusLambda`` and
``eaMuCommaLambda``, which call ``toolbox.map`` once per generation) is written as one generation, its
individuals to ``individuals.jsonl`` and a row to ``generations.csv``, with the run's own
:class:`evoticket.records.RecordWriter`:

    toolbox = evoticket.make_toolbox(config)
    recorder = RunRecorder(toolbox, config, name="my-search")
    pop, log = algorithms.eaMuPlusLambda(pop, toolbox, mu=16, lambda_=16, cxpb=0.5, mutpb=0.5, ngen=10)
    recorder.finish(tools.selBest(pop, 1)[0])   # best_ticket.pt: masks figure, evoticket export --compact

A hand-written loop may instead call :meth:`RunRecorder.write_generation` with its population after
selection. The generation rows' statistics are over the individuals evaluated in that batch (DEAP's stock
algorithms never show the loop the population after selection); with :meth:`write_generation`, over the
population given.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from deap import base

from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.io import atomic_write_text, write_json
from evoticket.genome import Ticket, save_ticket
from evoticket.methods import get_method
from evoticket.records import RecordWriter, make_statistics, report_generation


class RunRecorder:
    """Writes a custom DEAP search's records into a run directory (see the module docstring).

    Args:
        toolbox: from :func:`evoticket.make_toolbox`; its evaluator gets this recorder as a listener.
        config: the configuration the toolbox was made from (written as ``config.toml``).
        name: run name (a plain file name); the directory is ``runs_dir/name``.
        runs_dir: parent of run directories (default ``runs``).
        force: replace an existing evoticket run of that name.
        listen: write every evaluated batch as a generation (DEAP's stock algorithms); ``False`` for a hand-written
            loop that calls :meth:`write_generation` itself.

    Attributes:
        run_dir: the run directory.
        writer: its :class:`evoticket.records.RecordWriter`.

    Raises:
        EvoticketError: for a bad name; RunExistsError: if the run exists and ``force`` is false.
    """

    def __init__(
        self,
        toolbox: base.Toolbox,
        config: CampaignConfig,
        *,
        name: str,
        runs_dir: str | Path = "runs",
        force: bool = False,
        listen: bool = True,
    ) -> None:
        import shutil

        from evoticket.campaign.rundir import prepare_run_dir

        self.toolbox, self.config = toolbox, config
        self.run_dir = prepare_run_dir(Path(runs_dir), name, force)
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        atomic_write_text(paths.config(self.run_dir), config.to_toml())
        write_json(paths.method_report(self.run_dir), get_method(config.method).report(config))
        self.writer = RecordWriter(self.run_dir)
        self.stats = make_statistics()
        self._last = time.perf_counter()
        self._seconds = toolbox.evaluator.seconds
        if listen:
            toolbox.evaluator.listeners.append(self._on_batch)

    def _on_batch(self, generation: int, individuals: list[Ticket], fitnesses: list[tuple[float, ...]]) -> None:
        for ind, fit in zip(individuals, fitnesses, strict=True):
            ind.fitness.values = fit  # DEAP assigns the same values when map returns
        self.write_generation(generation, individuals, individuals)

    def write_generation(self, generation: int, population: Sequence[Ticket], evaluated: Sequence[Ticket]) -> None:
        """Write one generation: the ``evaluated`` individuals' records and a row of statistics over ``population``.

        Args:
            generation: the generation number (0 for the initial population).
            population: the individuals the row describes (each with a valid fitness and a uid).
            evaluated: the individuals evaluated in this generation (each with its ``eval_record``).
        """
        now = time.perf_counter()
        evaluator = self.toolbox.evaluator
        population = list(population)
        front = hypervolume = None
        objectives = getattr(self.toolbox, "objectives", None)
        if objectives is not None and objectives.multi:
            _, front, hypervolume = objectives.describe(generation, population)
        report_generation(
            generation,
            population,
            evaluated,
            hooks=(self.writer,),
            statistics=self.stats,
            seconds=now - self._last,
            finetune_seconds=evaluator.seconds - self._seconds,
            front=front,
            hypervolume=hypervolume,
        )
        self._last, self._seconds = now, evaluator.seconds

    def finish(self, best: Ticket) -> Path:
        """Write the search's best ticket as ``best_ticket.pt`` (for the masks figure, ``evoticket.load_ticket`` and
        ``evoticket export --compact``) and stop listening.

        Returns:
            The path of ``best_ticket.pt``.
        """
        if self._on_batch in self.toolbox.evaluator.listeners:
            self.toolbox.evaluator.listeners.remove(self._on_batch)
        path = paths.best_ticket(self.run_dir)
        save_ticket(path, best, self.toolbox.arch, self.config)
        return path
