"""A dask.distributed cluster for whole-cohort and whole-study runs (``--scheduler ADDRESS``).

One place connects, for every module: the address is checked before a client exists (a
half-made client left a 40 s hang and a traceback at exit), and a failed connection is one
clear error.
"""

from __future__ import annotations

from .errors import RadiologyAIError

# The comm back-ends dask.distributed knows (distributed.comm.registry); an address without a scheme is tcp.
SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def check_scheduler_address(address: str) -> str:
    """``address`` if dask can dial it (``tcp://host:8786``, ``host:8786``); a RadiologyAIError otherwise."""
    text = str(address).strip()
    scheme, _, rest = text.rpartition("://") if "://" in text else ("tcp", "", text)
    if scheme not in SCHEMES:
        raise RadiologyAIError(
            f"--scheduler {address!r}: unknown address scheme '{scheme}://' (use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + ")"
        )
    if not rest or rest.startswith(":"):
        raise RadiologyAIError(f"--scheduler {address!r}: no host (expected e.g. tcp://host:8786)")
    return text


def connect_scheduler(address: str, timeout_s: float = 20.0):
    """A ``dask.distributed.Client`` connected to ``address`` (not made the default client)."""
    address = check_scheduler_address(address)
    try:
        from dask.distributed import Client
    except ImportError:
        raise RadiologyAIError("--scheduler needs dask.distributed: pip install 'radiologyai[distributed]'") from None
    try:
        return Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RadiologyAIError(
            f"cannot connect to the dask scheduler at {address} ({str(exc).splitlines()[0]})"
        ) from None
