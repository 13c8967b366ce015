"""One recording and how to read it (:class:`InputSpec`), what reading gives (:class:`Frame`)
and what it left out (:class:`ReadReport`).

A recording is a bag, a video or a folder of images (:func:`input_kind`, from what is on disk);
:func:`fingerprint` keys the caches on the recording's files and the way it is read.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclass
class ReadReport:
    """What reading one recording left out: frames skipped by reason, and damage that ended it.

    ``skips`` holds ``(frame index, reason)`` (the index a good frame there would have had, so a
    segment counts only its own frames); ``examples`` the first skip of each reason in words;
    ``damage`` says where a recording stopped being readable before its end and how many
    messages were read before it.
    """

    skips: list[tuple[int, str]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    damage: str | None = None

    def skip(self, index: int, reason: str, detail: str) -> None:
        self.skips.append((index, reason))
        self.examples.setdefault(reason, f"frame {index}: {detail}")

    def counts(self, owns: Callable[[int], bool] = lambda index: True) -> dict[str, int]:
        """Skipped frames per reason (of the frames ``owns`` accepts)."""
        return dict(sorted(Counter(reason for index, reason in self.skips if owns(index)).items()))

    def as_dict(self) -> dict[str, object]:
        return {"skips": [list(item) for item in self.skips], "examples": self.examples,
                "damage": self.damage}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadReport:
        return cls([(int(i), str(r)) for i, r in data.get("skips", [])], dict(data.get("examples", {})),
                   data.get("damage"))


@dataclass(frozen=True)
class Frame:
    """One decoded image of a recording."""

    index: int
    stamp_ns: int
    rgb: npt.NDArray[np.uint8]
    frame_id: str


@dataclass(frozen=True)
class InputSpec:
    """One recording and how to read it.

    ``fps`` stamps the frames of an image folder; ``stills`` says an image folder holds
    independent photographs (not consecutive frames), so temporal filtering must not apply.
    ``stride`` keeps every n-th frame from ``offset`` on (source frames ``offset``, ``offset +
    stride``, ...) and ``max_frames`` caps the count (for CPU-sized runs; an offset with stride 2
    splits a folder of stills into two alternate halves).
    ``window`` reads only the kept frames ``start <= index < stop`` (``stop`` None: to the end),
    numbered as in the whole recording: a segment of a long recording for a parallel replay.
    """

    path: Path
    image_topic: str | None = None
    fps: float = 10.0
    stills: bool = False
    stride: int = 1
    max_frames: int | None = None
    window: tuple[int, int | None] | None = None
    offset: int = 0

    @property
    def kind(self) -> str:
        return input_kind(self.path)

    @property
    def first_index(self) -> int:
        """The index of the first frame this spec reads (0 unless it is a window)."""
        return self.window[0] if self.window is not None else 0

    def whole(self) -> InputSpec:
        """The same recording without a window."""
        return replace(self, window=None)


def input_kind(path: Path) -> str:
    """``bag``, ``video`` or ``images`` from what is on disk."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return "video"
        if path.suffix.lower() in (".bag", ".mcap", ".db3"):
            return "bag"
        raise InputError(f"{path}: not a bag (.bag, .mcap, .db3, or a rosbag2 folder), a video "
                         f"({', '.join(VIDEO_SUFFIXES)}) or a folder of images")
    if (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")) or any(path.glob("*.db3")):
        return "bag"
    return "images"


def _file_signature(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def fingerprint(spec: InputSpec) -> str:
    """A key that changes when the recording or the way it is read changes (for the caches)."""
    path = spec.path
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(_file_signature(file).encode())
    window = "" if spec.window is None else f"|{spec.window[0]}:{spec.window[1]}"
    offset = f"|+{spec.offset}" if spec.offset else ""  # none: the keys made before offsets existed
    digest.update(f"{spec.image_topic}|{spec.fps}|{spec.stride}|{spec.max_frames}{window}{offset}".encode())
    return digest.hexdigest()[:16]
