"""A run's records as pandas DataFrames, for users' own analysis (pandas is optional).

pandas is not a dependency of evoticket; these functions import it when called and say how to install
it when it is missing. The same records as lists of dicts need nothing:
:func:`evoticket.records.read_individuals` and :func:`evoticket.records.read_generations`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evoticket.core import paths
from evoticket.core.errors import EvoticketError
from evoticket.records.readers import read_generations, read_individuals
from evoticket.records.schema import GENERATION_COLUMNS


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise EvoticketError("DataFrames need pandas, which is not installed: pip install pandas") from None
    return pandas


def _require(run_dir: Path, path: Path) -> None:
    if not Path(run_dir).is_dir():
        raise EvoticketError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise EvoticketError(f"{run_dir}: not a run directory (no {path.name})")


def individuals_frame(run_dir: Path | str) -> Any:
    """``individuals.jsonl`` as a ``pandas.DataFrame``: one row per evaluation, in evaluation order.

    Nested fields are flattened with dots: ``density.fc1.weight`` (fraction kept, in [0, 1]) for each
    weight, and for IMP runs ``controls.random.test_acc`` and the like; ``parents`` and ``operators``
    stay lists, non-finite accuracies are ``NaN``/``None`` as recorded.

    Args:
        run_dir: a run directory (finished, running or resumed).

    Returns:
        A DataFrame with a column per field of :data:`evoticket.records.INDIVIDUAL_FIELDS` (and any a
        method adds, e.g. IMP's ``test_acc`` and ``best_step``); empty when nothing was evaluated yet.

    Raises:
        EvoticketError: if pandas is not installed, or ``run_dir`` holds no ``individuals.jsonl``.
    """
    pd = _pandas()
    run_dir = Path(run_dir)
    _require(run_dir, paths.individuals_jsonl(run_dir))
    return pd.json_normalize(read_individuals(run_dir), sep=".")


def generations_frame(run_dir: Path | str) -> Any:
    """``generations.csv`` as a ``pandas.DataFrame``: one row per generation (IMP: per round).

    Args:
        run_dir: a run directory.

    Returns:
        A DataFrame with the columns of :data:`evoticket.records.GENERATION_COLUMNS` (accuracies in
        [0, 1], times in seconds, compute in optimizer steps and FLOPs per generation).

    Raises:
        EvoticketError: if pandas is not installed, or ``run_dir`` holds no ``generations.csv``.
    """
    pd = _pandas()
    run_dir = Path(run_dir)
    _require(run_dir, paths.generations_csv(run_dir))
    rows = read_generations(run_dir)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(GENERATION_COLUMNS))
