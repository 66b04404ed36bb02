"""Ray, the optional distributed engine: importing it with a clear error, and joining or starting a cluster.

Ray is an extra (``pip install 'evoticket[ray]'``); every module that uses it imports it through
:func:`import_ray`, so that without it the choice of the Ray backend is a one-line error rather than
an ``ImportError`` traceback. :func:`connect` starts a local instance or joins a running cluster,
checking first that an explicit ``HOST:PORT`` answers at all (Ray itself retries for a minute).
"""

from __future__ import annotations

import logging
import os
import random
import socket
from typing import Any

from evoticket.core.errors import EvoticketError

INSTALL = "pip install 'evoticket[ray]'"
"""What to install for the Ray backend."""

FORWARDED_ENV = ("EVOTICKET_KILL_AT", "EVOTICKET_KILL_ONCE")
"""Environment variables passed on to Ray workers when set here (the crash tests' fault injection)."""


def import_ray(key: str = "campaign.backend") -> Any:
    """The ``ray`` module.

    Args:
        key: the setting that chose Ray, for the error message.

    Raises:
        EvoticketError: when Ray is not installed (naming ``key`` and what to install).
    """
    try:
        import ray
    except ImportError:
        raise EvoticketError(f"{key} = 'ray' needs Ray, which is not installed; install it with: {INSTALL}") from None
    return ray


def worker_options() -> dict[str, Any]:
    """Ray ``.options(...)`` for evoticket's actors and tasks: the forwarded environment variables, if any."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    return {"runtime_env": {"env_vars": env}} if env else {}


def _check_reachable(address: str, key: str, timeout: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://HOST:PORT``) that no server answers within ``timeout`` seconds."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EvoticketError(
            f"{key}: {address!r} is not a Ray address; give HOST:PORT, 'auto' or '' (a local instance)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise EvoticketError(
            f"{key}: cannot reach a Ray cluster at {address} ({reason}); start one there with: ray start --head"
        ) from None


def check_backend(backend: str, address: str) -> None:
    """Before anything is written: Ray must be installed for ``backend = "ray"``, and an explicit address answer.

    Raises:
        EvoticketError: naming ``campaign.backend`` (Ray missing) or ``campaign.ray_address``.
    """
    if backend != "ray":
        return
    import_ray()
    if address and address != "auto":
        _check_reachable(address, "campaign.ray_address")


def connect(address: str = "", *, key: str = "campaign.ray_address", num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at ``address`` (or start a local instance), once per process.

    Args:
        address: ``""`` (start a local instance, or keep the one this process already has),
            ``"auto"`` (the cluster ``ray start`` runs on this machine) or ``HOST:PORT``.
        key: the setting that gave ``address``, for error messages.
        num_cpus: CPUs of a local instance (default: all).

    Returns:
        The ``ray`` module, initialised.

    Raises:
        EvoticketError: when Ray is not installed, or the cluster cannot be reached (naming
            ``key`` and the address).
    """
    ray = import_ray()
    if address and address != "auto":
        _check_reachable(address, key)
    if ray.is_initialized():
        return ray
    state = random.getstate()  # ray.init draws from Python's random, which DEAP's selection uses
    try:
        ray.init(
            address=address or None,
            num_cpus=num_cpus if not address else None,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = address or "a local instance"
        raise EvoticketError(f"{key}: cannot connect to the Ray cluster at {where}: {first}") from None
    finally:
        random.setstate(state)
    return ray


__all__ = ["FORWARDED_ENV", "INSTALL", "check_backend", "connect", "import_ray", "worker_options"]
