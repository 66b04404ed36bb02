"""Seeds and random-generator states: one derivation for every seed, one capture for every state.

:func:`derive_seed` turns ``campaign.seed`` and a purpose (``("finetune", generation)``) into a
32-bit seed, stable across runs and platforms; :func:`capture_rng` / :func:`restore_rng` put the global
generators a campaign draws from into a checkpoint and back (a method's own generators are part of its
own checkpoint state).
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import torch


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 32-bit seed derived from a root seed and keys, stable across runs and platforms.

    Args:
        seed: root seed (``campaign.seed``), >= 0.
        keys: what the seed is for, e.g. ``("finetune", generation)``.
    """
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return int(np.random.SeedSequence([int(seed), *ints]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(derive_seed(seed, "python"))
    np.random.seed(derive_seed(seed, "numpy"))
    torch.manual_seed(derive_seed(seed, "torch"))


def capture_rng() -> dict[str, Any]:
    """States of the global generators: Python's ``random``, NumPy's global generator and torch (CPU, CUDA)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the generator states captured by :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
