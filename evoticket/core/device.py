"""Where work runs and how much memory the machine has."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from evoticket.core.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``campaign.device`` into a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: if CUDA is requested and not available, or ``cuda:N`` does not exist.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"campaign.device: {name!r} requested but CUDA is not available here; valid: 'auto', 'cpu'"
            )
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"campaign.device: {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(name)


def host_memory_bytes() -> int | None:
    """This machine's memory available to the process (bytes): physical memory, or a smaller cgroup
    limit (containers, batch schedulers); ``None`` where neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def format_bytes(n: float) -> str:
    """A byte count in the largest binary unit that keeps it >= 1 (3 significant digits)."""
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if n >= 1024**power:
            return f"{n / 1024**power:.3g} {unit}"
    return f"{int(n)} B"


@contextlib.contextmanager
def device_settings(
    matmul_precision: str = "highest", deterministic: bool = True, device: str = "cpu"
) -> Iterator[None]:
    """Apply a campaign's numeric settings for its duration, then put the previous ones back.

    Args:
        matmul_precision: ``torch.set_float32_matmul_precision``'s value (``campaign.matmul_precision``): highest,
            high (TF32 on NVIDIA GPUs from Ampere on) or medium.
        deterministic: on a CUDA device, ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuBLAS's
            fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when unset; it must precede cuBLAS's first use in
            the process) (``campaign.deterministic``).
        device: the campaign's device (``campaign.device`` as resolved).
    """
    precision = torch.get_float32_matmul_precision()
    was, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_float32_matmul_precision(matmul_precision)
    if deterministic and str(device).startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.use_deterministic_algorithms(was, warn_only=warn)
