"""Caches of decoded frames and of model predictions, keyed by input and model: they store and
load; the replay's stages decode (:mod:`.shards`) and run the models (:mod:`.inference`).

Decoding a video and running the networks are the slow parts of a replay; the filters are fast.
So each input's decoded frames are stored once as a folder of JPEG files (the exact pixels the
models see and the dataset ships), and each (input, model, thresholds) gets its raw predictions
stored once: re-running the filters with other settings then needs neither decoding nor inference.
Every entry is written to a temporary name and renamed when complete, so a killed run never
leaves a half entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.atomic import atomic_write_json, commit_dir, fresh_partial_dir
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models.base import HandDetector, OnDevice, PoseEstimator
from hand_pose_refiner.refinement.input_spec import Frame, InputSpec, ReadReport, fingerprint
from hand_pose_refiner.refinement.records import load_frames, save_frames

JPEG_QUALITY = 95
INDEX = "index.json"


@dataclass(frozen=True)
class StoredFrame:
    """One frame of a :class:`FrameStore`: its JPEG file, stamp and size."""

    index: int
    path: Path
    stamp_ns: int
    frame_id: str
    width: int
    height: int

    def rgb(self) -> npt.NDArray[np.uint8]:
        try:
            return read_rgb(self.path)
        except InputError:
            raise InputError(f"{self.path}: cached frame cannot be read; delete the cache folder") from None


class FrameStore:
    """The decoded frames of one input as JPEG files plus an index, built once."""

    def __init__(self, root: Path, spec: InputSpec) -> None:
        self.spec = spec
        self.key = fingerprint(spec)
        self.folder = root / "frames" / f"{spec.path.name}-{self.key}"

    @property
    def complete(self) -> bool:
        return (self.folder / INDEX).is_file()

    def build(self, frames: Iterable[Frame], report: ReadReport,
              progress: Callable[[int], None] | None = None) -> None:
        """Store the input's decoded ``frames`` and what reading them skipped (``report``, filled
        while ``frames`` is iterated); raises InputError on a bad input, and nothing is kept.

        A window past the end of a recording (its frame count was an estimate) is an empty store,
        not an error; a whole recording without frames is refused.
        """
        if self.complete:
            return
        partial = fresh_partial_dir(self.folder)
        rows = []
        try:
            for frame in frames:
                name = f"{frame.index:06d}.jpg"
                ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise InputError(f"{self.spec.path}: frame {frame.index} cannot be encoded")
                (partial / name).write_bytes(data.tobytes())
                height, width = frame.rgb.shape[:2]
                rows.append([name, frame.stamp_ns, frame.frame_id, width, height])
                if progress is not None:
                    progress(len(rows))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if not rows and self.spec.first_index == 0:
            shutil.rmtree(partial, ignore_errors=True)
            reasons = ", ".join(f"{count} {reason}" for reason, count in report.counts().items())
            raise InputError(f"{self.spec.path}: no frames" + (f" (skipped: {reasons})" if reasons else ""))
        atomic_write_json(partial / INDEX, {"input": str(self.spec.path), "frames": rows,
                                            "read_report": report.as_dict()}, indent=None)
        commit_dir(self.folder, replace=True)

    def frames(self) -> list[StoredFrame]:
        """The stored frames, numbered as in the whole recording (a skipped frame leaves a gap)."""
        rows = json.loads((self.folder / INDEX).read_text())["frames"]
        return [StoredFrame(int(Path(name).stem), self.folder / name, int(stamp), str(frame_id), int(w),
                            int(h)) for name, stamp, frame_id, w, h in rows]

    def read_report(self) -> ReadReport:
        """The frames decoding skipped and any damage it met (none for a store built before they
        were recorded)."""
        return ReadReport.from_dict(json.loads((self.folder / INDEX).read_text()).get("read_report", {}))


def model_key(detector: HandDetector, estimator: PoseEstimator) -> str:
    """A hash of both models' names, settings (:meth:`~HandDetector.prediction_key`) and network
    weights: what their predictions depend on."""
    digest = hashlib.sha256()
    for model in (detector, estimator):
        digest.update(model.name.encode())
        for part in model.prediction_key():
            digest.update(part.encode())
        if isinstance(model, OnDevice):
            for name, tensor in model.net.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class PredictionCache:
    """Raw predictions (before any filter) per input and model, as npz files."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "predictions"

    def path(self, store: FrameStore, key: str) -> Path:
        return self.folder / f"{store.folder.name}-{key}.npz"

    def load(self, store: FrameStore, key: str) -> list[FrameHands] | None:
        path = self.path(store, key)
        return load_frames(path) if path.is_file() else None

    def save(self, store: FrameStore, key: str, frames: list[FrameHands]) -> None:
        save_frames(self.path(store, key), frames)

