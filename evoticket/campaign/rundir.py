"""The run directory's lifecycle: its name, its creation (whole or not at all) and its replacement."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from evoticket.config import CampaignConfig
from evoticket.core import paths
from evoticket.core.errors import EvoticketError, RunExistsError, StorageError
from evoticket.core.io import atomic_write_text, fsync_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _short(name: str) -> str:
    """A registry name as it can stand in a file name: ``"package.module:make_net"`` -> ``"make_net"``."""
    short = re.sub(r"[^A-Za-z0-9._-]", "_", name.rpartition(":")[2]).strip("._-")
    return short or "custom"


def default_name(config: CampaignConfig) -> str:
    """``DATA-MODEL-YYYYmmdd-HHMMSS``: a new run name that does not clash with older runs (a factory named as
    ``"package.module:factory"`` stands as ``factory``)."""
    return f"{_short(config.data.name)}-{_short(config.model.name)}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_name(name: str) -> None:
    """A run name must be a plain file name.

    Raises:
        EvoticketError: naming the name and what would be valid.
    """
    if not _NAME.match(name):
        raise EvoticketError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        )


def prepare_run_dir(runs_dir: Path, name: str, force: bool) -> Path:
    """Check that ``runs_dir/name`` may be written; with ``force``, clear an old run there.

    Raises:
        EvoticketError: for a name that is not a plain file name.
        RunExistsError: if the run exists and ``force`` is false, or the
            directory exists but holds no evoticket run (never removed).
    """
    check_name(name)
    run_dir = Path(runs_dir) / name
    if run_dir.exists():
        if not force:
            raise RunExistsError(
                f"run {str(run_dir)!r} already exists; choose another --name or pass --force to replace it"
            )
        if any(run_dir.iterdir()) and not paths.config(run_dir).exists():
            raise RunExistsError(f"{str(run_dir)!r} exists and is not an evoticket run; not replacing it")
    return run_dir


def create_run_dir(
    run_dir: Path,
    plot_dir: Path,
    force: bool,
    config: CampaignConfig,
    save_first_checkpoint: Any,
) -> None:
    """Make ``run_dir`` with its configuration and first checkpoint (``save_first_checkpoint(folder)``), all at once.

    Both are written into :func:`evoticket.core.paths.staging`, which is then renamed to
    ``run_dir`` (replacing an old run only now, with ``force``): a job killed at any
    moment leaves either no run or a run with a checkpoint to resume from.

    Raises:
        StorageError: if writing fails; an old run is then left untouched.
    """
    staging = paths.staging(run_dir)
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        atomic_write_text(paths.config(staging), config.to_toml())
        save_first_checkpoint(staging)
    except (OSError, StorageError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = (e.strerror or e) if isinstance(e, OSError) else e
        raise StorageError(f"cannot create the run {run_dir}: {detail}") from None
    # An old run (with --force) is renamed aside, not removed in place: a kill never leaves half of one.
    replaced = paths.replaced(run_dir)
    if replaced.exists():
        shutil.rmtree(replaced)
    if run_dir.exists():
        os.replace(run_dir, replaced)
    os.replace(staging, run_dir)
    fsync_dir(run_dir.parent)
    shutil.rmtree(replaced, ignore_errors=True)
    if plot_dir.exists() and force:
        shutil.rmtree(plot_dir)
