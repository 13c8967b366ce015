"""Reading a weight file safely, whatever its name: every loader of the package reads through here.

The format is told by the file's first bytes, not its extension: a safetensors header (an 8-byte
length, then ``{``), the zip archive ``torch.save`` writes, or the pickle protocol byte of an older
``torch.save``. Torch files are read with ``torch.load(weights_only=True)``, so nothing but tensors
and plain containers is ever unpickled. Every value must be a dense tensor and every floating
tensor finite: NaN or infinite weights (a diverged training run) would load and then find nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hand_pose_refiner.errors import HandPoseRefinerError, UnreadableTorchFileError, WeightsError, shown

SAFETENSORS = "safetensors"
TORCH = "torch"

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


@dataclass(frozen=True)
class CheckpointContents:
    """What a weight file holds: its tensors, and what it says besides them."""

    format: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)  # a safetensors file's header metadata
    extra: dict[str, Any] = field(default_factory=dict)  # a torch file's entries next to its state_dict


def file_format(path: Path) -> str | None:
    """SAFETENSORS or TORCH by the file's first bytes; None for anything else or an unreadable file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
            size = path.stat().st_size
    except OSError:
        return None
    header_start = len(head) == 9 and head[8:9] == b"{"
    header_fits = header_start and int.from_bytes(head[:8], "little") <= size - 8
    if head.startswith(_ZIP_MAGIC):
        return TORCH
    if header_fits:
        return SAFETENSORS
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5:
        return TORCH
    return SAFETENSORS if header_start else None  # a safetensors file cut short in its header


def read_checkpoint(path: Path, error: type[HandPoseRefinerError] = WeightsError, *,
                    torch_files: bool = True) -> CheckpointContents:
    """The checked contents of the weight file ``path``; ``error`` (naming the file) if it is
    missing, of another format, unreadable, or holds anything but finite tensors.

    ``torch_files=False`` accepts safetensors files only (checkpoints whose settings live in the
    safetensors metadata).
    """
    if not path.is_file():
        raise error(f"{path}: weight file not found")
    found = file_format(path)
    if found == SAFETENSORS:
        contents = _read_safetensors(path, error)
    elif found == TORCH and torch_files:
        contents = _read_torch(path, error)
    elif found == TORCH:
        raise error(f"{path}: a torch file; this checkpoint must be a safetensors file")
    else:
        raise error(f"{path}: neither a safetensors nor a torch weight file "
                    f"({path.stat().st_size} bytes)")
    check_tensors(contents.tensors, path, error)
    return contents


def check_tensors(tensors: Mapping[Any, Any], path: Path, error: type[HandPoseRefinerError]) -> None:
    """Every entry a dense tensor under a string name, every floating one finite; else ``error``."""
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise error(f"{path}: entry {shown(name)} is not named by a string")
        if not isinstance(value, torch.Tensor):
            raise error(f"{path}: {name} holds {type(value).__name__} {shown(value)}, not a tensor")
        if value.layout != torch.strided:
            raise error(f"{path}: {name} is a {value.layout} tensor; weights are dense tensors")
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            nan = int(torch.isnan(value).sum())
            raise error(f"{path}: tensor {name} holds {nan} NaN and {int(torch.isinf(value).sum())} "
                        f"infinite values (of {value.numel()}); weights like these find nothing")


def _read_safetensors(path: Path, error: type[HandPoseRefinerError]) -> CheckpointContents:
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise error(f"{path}: not a complete safetensors file ({path.stat().st_size} bytes; "
                    f"truncated or corrupt): {err}") from err
    return CheckpointContents(SAFETENSORS, tensors, metadata)


def _read_torch(path: Path, error: type[HandPoseRefinerError]) -> CheckpointContents:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on a corrupt or foreign file
        raise UnreadableTorchFileError(path, _torch_refusal(str(err))) from err
    if not isinstance(raw, dict):
        raise error(f"{path}: holds a {type(raw).__name__}, not a state dict")
    if isinstance(raw.get("state_dict"), dict):
        extra = {key: value for key, value in raw.items() if key != "state_dict"}
        return CheckpointContents(TORCH, raw["state_dict"], extra=extra)
    return CheckpointContents(TORCH, raw)


def _torch_refusal(message: str) -> str:
    """Why torch.load refused a file, in a few words: the pickled global, the unpickler's complaint,
    or the first line of its message."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if found:
        return f"it pickles {found.group(1)}"
    found = re.search(r"WeightsUnpickler error:\s*(\S.*)", message)
    return found.group(1).strip() if found else (message.splitlines() or ["?"])[0]
