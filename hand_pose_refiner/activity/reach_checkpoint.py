"""The reach checkpoint's file format: its format tag, byte-stable header, and metadata read back.

A reach checkpoint (:meth:`~hand_pose_refiner.activity.reach_model.ReachModel.save`) is a
safetensors file whose metadata holds the format tag, the network's settings and what it was
trained on; its JSON header is written with sorted keys, so the same weights always give the
same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "hand_pose_refiner.activity.reach_tcn/2"
FORMAT_PREFIX = "hand_pose_refiner.activity.reach_tcn/"


def sorted_header(data: bytes) -> bytes:
    """A safetensors file with its JSON header's keys in sorted order.

    safetensors writes the metadata in hash order, which changes from run to run; sorted, the
    same weights and metadata always give the same bytes. Tensor offsets count from the end of
    the header, so they stay valid; the header is padded with spaces to 8 bytes, as safetensors does.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + length]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + length :]


def checkpoint_metadata(path: Path | str) -> dict[str, str]:
    """The metadata of a safetensors checkpoint (empty if it has none or is unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:
        return {}


def checkpoint_format(path: Path | str) -> str | None:
    """The ``format`` metadata of a safetensors checkpoint (None if it has none or is unreadable)."""
    return checkpoint_metadata(path).get("format")


def checkpoint_training(path: Path | str) -> dict[str, object]:
    """What a reach checkpoint says it was trained on and how (empty if it says nothing)."""
    text = checkpoint_metadata(path).get("training")
    try:
        return dict(json.loads(text)) if text else {}
    except (ValueError, TypeError):
        return {}
