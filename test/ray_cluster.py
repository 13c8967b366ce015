"""A real two-node Ray cluster on loopback for the tests, started and stopped as separate processes.

Two `ray start` processes (a head and a second node) on 127.0.0.1 with one CPU each and a small
object store. Ray replaces a loopback address with the machine's outward address unless told
not to: the head and the drivers run with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray then keeps
127.0.0.1), and the second node, which that setting would refuse, is started through Ray's own
CLI with its localhost-to-outward-address substitution turned off. Nothing listens beyond
127.0.0.1. Stopping ends exactly the processes of this cluster (found by its private temp
folder, and their children), never other Ray instances on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import REPO

OBJECT_STORE_BYTES = 80_000_000

_SECOND_NODE = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host  # keep 127.0.0.1
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def loopback_env() -> dict[str, str]:
    """Environment for the cluster's processes and its drivers: loopback, the source tree."""
    # RAY_AUTH_MODE explicit: otherwise a token another Ray left in ~/.ray turns authentication on
    # for some of the processes and not others.
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",
            "PYTHONPATH": str(REPO), "HAND_POSE_REFINER_CACHE": os.environ.get(
                "HAND_POSE_REFINER_CACHE", str(Path.home() / ".cache" / "hand_pose_refiner"))}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _cmdline(pid: int) -> str:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")



def _run(command: list[str], env: dict[str, str]) -> None:
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command[-12:])} failed ({run.returncode}):\n{run.stdout[-3000:]}"
                           f"\n{run.stderr[-3000:]}")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has ended)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LoopbackRayCluster:
    """``start()`` two nodes; ``address``; ``worker_pids(name)``; ``stop()`` (idempotent)."""

    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="hpr_ray_", dir="/tmp"))  # short: socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = loopback_env()

    def start(self) -> LoopbackRayCluster:
        ray = [str(Path(sys.executable).parent / "ray")]
        common = ["--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE_BYTES),
                  "--disable-usage-stats"]
        _run([*ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
              "--include-dashboard", "false", "--temp-dir", str(self.temp_dir), *common], self.env)
        # The setting that keeps the head on loopback refuses a second node: off for this one.
        second = {k: v for k, v in self.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
        _run([sys.executable, "-c", _SECOND_NODE, "start", "--address", self.address, *common], second)
        return self

    def pids(self) -> list[int]:
        """Every process of this cluster: those naming its temp folder, and their descendants."""
        tree = _children()
        roots = [int(p.name) for p in Path("/proc").iterdir()
                 if p.name.isdigit() and str(self.temp_dir) in _cmdline(int(p.name))]
        found, stack = set(), list(roots)
        while stack:
            pid = stack.pop()
            if pid not in found and pid != os.getpid():
                found.add(pid)
                stack.extend(tree.get(pid, []))
        return sorted(found)

    def worker_pids(self, title: str) -> list[int]:
        """This cluster's worker processes whose title is ``title`` (e.g. ray::replay_shard)."""
        return [pid for pid in self.pids() if _cmdline(pid).startswith(title) and _alive(pid)]

    def stop(self) -> None:
        """SIGTERM every process of the cluster, SIGKILL those left after 3 s, and wait until they
        are gone; repeated while a fresh look finds any (one can start while the others stop)."""
        for _ in range(3):
            pids = [pid for pid in self.pids() if _alive(pid)]
            if not pids:
                return
            for sig, seconds in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):  # some ignore SIGTERM
                for pid in [pid for pid in pids if _alive(pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
                    time.sleep(0.1)
