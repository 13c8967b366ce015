"""Data-parallel fine-tuning with PyTorch's own distributed package (torchrun, DDP).

``torchrun`` starts one process per device (``--nproc-per-node``, and across nodes with its usual
``--nnodes``/``--node-rank``/``--master-addr`` flags) and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``; :func:`init_from_env` joins them into a process group (gloo on CPU, NCCL on GPU).
The training loops (``models/mediapipe/landmark_training.py``, ``palm_training.py``) then ask
:func:`current` whether they run data-parallel. Every rank draws the *same* global batch (same seed,
same augmentation stream) and trains on its slice of it; DistributedDataParallel averages the
gradients, and each rank's loss is weighted by its share of the batch, so a step equals the
one-process step on the whole batch (exactly for per-sample mean losses; the keypoint loss,
normalised by the count of labelled keypoints in the batch, within float noise). Checkpoints are
written by rank 0 only.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hand_pose_refiner.errors import ClusterError

# Ranks other than 0 wait in a collective while rank 0 replays and evaluates (refine): long.
WAIT_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the process group."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` under DDP (parameters broadcast from rank 0; gradients averaged).

        Unused trainable parameters (heads no loss reaches) are allowed.
        """
        device = next(net.parameters()).device
        ids = [device.index] if device.type == "cuda" and device.index is not None else None
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)

    def part(self, count: int) -> tuple[int, int]:
        """This rank's rows ``[start, stop)`` of a global batch of ``count`` (contiguous, balanced)."""
        base, extra = divmod(count, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def all_sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()


def current() -> DataParallel | None:
    """The process group this process trains in, or None (one process)."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return DataParallel(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str) -> DataParallel | None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA); None if not launched."""
    if not launched():
        return None
    if not dist.is_initialized():
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=WAIT_TIMEOUT)
    return current()


def leave(code: int) -> NoReturn:
    """End this rank: wait for every rank, leave the process group, exit with ``code``.

    A rank that ends while another still works (rank 0 evaluating, writing its report) tears down
    the connections under it, and gloo aborts the process; so after a run that went well every
    rank waits for all before it leaves. After a failure (``code`` not 0) it does not wait: the
    others may be in another collective, and torchrun stops them when this rank exits.

    The rank then exits without the interpreter's teardown (``os._exit``, after flushing the
    output and the logs; every file of the run is written atomically before this): with torch
    2.13 and gloo, a process that destroyed its process group still aborts now and then while the
    interpreter shuts down ("terminate called without an active exception"): 1 of 20 runs of a
    two-rank script that only trains a DDP model and leaves the group, and 4 of 58 runs of the
    two-process refine test. Exiting this way: 0 of 60 and 0 of 25.
    """
    try:
        if code == 0 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def rank_device(device: str) -> str:
    """The device of this rank: its own GPU (``cuda:LOCAL_RANK``) under a launcher, else ``device``."""
    if launched() and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def check_processes(nproc_per_node: int, device: str) -> None:
    """Refuse more processes per node than devices: GPUs when training on CUDA, else CPU cores."""
    if nproc_per_node < 1:
        raise ClusterError(f"--nproc-per-node {nproc_per_node}: must be >= 1")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    available = torch.cuda.device_count() if cuda else (os.cpu_count() or 1)
    kind = "CUDA devices" if cuda else "CPU cores"
    if nproc_per_node > available:
        raise ClusterError(f"--nproc-per-node {nproc_per_node}: this node has only {available} {kind}; "
                           f"use at most {available} processes per node")


def torchrun_command(nproc_per_node: int, launcher: list[str], module: str,
                     arguments: list[str]) -> list[str]:
    """The torchrun command that runs ``python -m module arguments`` in every process."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node),
            *launcher, "-m", module, *arguments]
