"""The Ray cluster a replay's shards run on: its options, joining it, and task failures in words.

Replay is embarrassingly parallel over recordings and over time segments of long recordings
(:func:`~hand_pose_refiner.refinement.shards.plan_shards`), so a scheduler is not written here:
:func:`~hand_pose_refiner.refinement.ray_replay.replay_on_ray` makes each shard one Ray task that runs
the *same* per-shard pipeline as a single-process replay and returns its frames (JPEG bytes, so
that no file system needs to be shared for the output) and hands; the driver places each result
as it arrives and assembles the dataset exactly as one process does. This module holds what that
needs of Ray itself and nothing of replay, so that replay can import it.

Faults: a worker that dies mid-shard (killed, out of memory, node lost) is a system failure
that Ray retries (``max_retries``; an error raised by the task's own code is not retried and
is reported with its type and message); a task writes nothing but cache entries, which are atomic
and keyed by content, and its result is delivered to the driver once, so a retry neither
writes anything twice nor loses anything. A recording that cannot be read is not retried: its
shard returns the error, the recording is reported by name, and the other shards finish. A
shard that still fails after its retries is reported by name in the same way.

Ray is an optional extra (``pip install 'hand_pose_refiner[cluster]'``); it is imported only
when asked for.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hand_pose_refiner.errors import ClusterError

LOGGER = logging.getLogger("hand_pose_refiner.distributed")
INSTALL_HINT = ("Ray is not installed: install the cluster extra with "
                "`pip install 'hand_pose_refiner[cluster]'` (or `bash scripts/setup.sh --cluster`)")
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how the shards run.

    ``address``: ``local`` starts a Ray instance in this machine for the run (``local_cpus``
    CPUs, default all); ``auto`` joins the cluster this machine is part of (``RAY_ADDRESS`` or
    the last ``ray start``); anything else is a cluster address, ``host:port`` or
    ``ray://host:10001`` (Ray Client, e.g. a KubeRay head service).
    ``gpus_per_task`` None: one GPU per task where the cluster has GPUs, else none.
    """

    address: str = "auto"
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    max_retries: int = 3
    local_cpus: int | None = None


def require_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`ClusterError` that says how to install it."""
    try:
        import ray  # the cluster extra: imported only where a replay runs on Ray
    except ImportError as exc:
        raise ClusterError(INSTALL_HINT) from exc
    return ray


def _probe(address: str) -> None:
    """Refuse an address nothing listens on now, instead of letting ``ray.init`` wait for minutes."""
    host_port = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r}: expected host:port, ray://host:port, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}; is `ray start --head` "
                           f"running there, and is the port open?") from exc


def connect(options: ClusterSettings) -> bool:
    """Join (or start) the Ray cluster; True when this call did, so the caller shuts it down."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                              "configure_logging": False}
    if options.address == "local":
        kwargs.update(address="local", num_cpus=options.local_cpus, include_dashboard=False)
    else:
        address = options.address
        if address == "auto":
            found = os.environ.get("RAY_ADDRESS") or _last_started_cluster()
            if found is None:
                raise ClusterError("--ray auto: no running Ray cluster found (no RAY_ADDRESS, no "
                                   "`ray start` on this machine); give its address or use --ray local")
            address = found
        if ":" in address:  # host:port or ray://host:port; other forms are Ray's to resolve
            _probe(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {options.address}: {exc}") from exc
    return True


def _last_started_cluster() -> str | None:
    """The address ``ray start`` on this machine recorded (what ``ray.init("auto")`` reads)."""
    recorded = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    try:
        return recorded.read_text().strip() or None
    except OSError:
        return None


def task_failure(ray: ModuleType, exc: BaseException, retries: int) -> str:
    """A failed task in one line, without colour codes: how often it was really retried, and
    the real cause.

    An exception raised by the task's own code is not retried (``retry_exceptions=False``): the
    cause is that exception, its type and message. A task whose worker died (killed, out of
    memory, node lost) is run again up to ``retries`` times before Ray gives up.
    """
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        what = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(exc)
        return f"the Ray task raised {_first_line(what)} (not retried: an error in the task itself)"
    lost = f"{type(exc).__name__}: {_first_line(str(exc)) or 'no message'}"
    if retries == 0:
        return f"the Ray task's worker was lost and retries are off ({lost})"
    return f"the Ray task's worker was lost, and again on each of {retries} retries ({lost})"


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def plain(text: str) -> str:
    """``text`` without terminal colour and cursor codes (Ray colours its tracebacks)."""
    return ANSI_ESCAPE.sub("", text)


def _first_line(text: str) -> str:
    lines = [line for line in plain(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""
