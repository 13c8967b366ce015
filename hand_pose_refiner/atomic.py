"""Writes that either happen completely or not at all (temp file or folder + rename).

A run that is killed leaves either the old file or the new one, never a half-written one, so a
resumed run can trust every file it finds and a reader never sees a truncated dataset. Files get
the mode a plain ``open`` would give them (0666 less the umask), not the temporary file's 0600,
so the other users of a shared machine can read a dataset as they could before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTIAL = ".partial"


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary file beside ``path``, then rename it to ``path``.

    For writers that want a file name (safetensors, matplotlib); a failed write removes the
    temporary file and leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process's umask: from /proc where it says (no race with other threads), else by
    setting it and setting it back (there is no getter)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write_with(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any, indent: int | None = 1) -> Path:
    """JSON (NaN written as null, so strict readers accept it) written atomically."""
    return atomic_write_text(path, json.dumps(_no_nan(data), indent=indent) + "\n")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def partial_dir(final: Path) -> Path:
    """The folder a result is built in before :func:`commit_dir` renames it to ``final``."""
    return final.with_name(final.name + PARTIAL)


def fresh_partial_dir(final: Path) -> Path:
    """An empty build folder for ``final`` (the leftovers of a killed run are removed)."""
    partial = partial_dir(final)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def commit_dir(final: Path, replace: bool = False) -> Path:
    """Rename the finished build folder to ``final`` (replacing an old one when asked)."""
    if final.exists():
        if not replace:
            raise FileExistsError(f"{final} exists already; choose a new output folder")
        shutil.rmtree(final)
    os.replace(partial_dir(final), final)
    return final
