"""The online activity recogniser: filtered, tracked poses in, one activity per track and window out.

The node (or any caller) pushes every frame of the temporal filter's output; the recogniser
keeps a buffer per track id, classifies each track's newest ``activity.window_frames`` poses
every ``activity.stride_frames`` poses, and returns the results. Windows use the poses' real
time stamps (velocities are per second of stamp time, and a result's window bounds are the
first and last pose stamps). Bad input is never an exception: see
:mod:`hand_pose_refiner.activity.windows` for what is waited for, skipped and counted in
:attr:`ActivityRecognizer.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.windows import WindowCutter
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands


@dataclass(frozen=True)
class ActivityResult:
    """The activity of one track over one window (the content of a HandActivity message).

    ``scores`` are the class probabilities (float32, summing to 1) in the order of
    ``class_names``; ``label`` is the most likely class and ``confidence`` its probability.
    """

    track_id: int
    label: str
    confidence: float
    class_names: tuple[str, ...]
    scores: np.ndarray
    window_start_ns: int
    window_end_ns: int


class ActivityRecognizer:
    """Classifies each track's pose windows online with an :class:`ActivityModel`.

    The model must have been trained for ``config``'s classes and window length
    (:class:`~hand_pose_refiner.errors.ActivityClassMismatchError` otherwise, at construction).

    Cost: about 1.4 ms per window on one CPU thread (``bench/bench_activity.py``). A window is too
    small for torch's intra-op threads to pay off, and on a loaded CPU they hurt badly (23-350 ms
    per window measured with 2 threads on the project's 2-core machine while other jobs ran), so
    a process that runs only the recogniser should call ``torch.set_num_threads(1)``. It is not
    done here because the setting is process-wide.
    """

    def __init__(self, config: ActivityConfig, model: ActivityModel) -> None:
        model.check_config(config)
        self.config = config
        self.model = model.eval()
        self.stats = RejectionStats("activity")
        self._cutter = WindowCutter(config.window_frames, config.stride_frames, config.max_gap_s,
                                    config.min_valid_fraction, self.stats)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    def push(self, frame: FrameHands) -> list[ActivityResult]:
        """Add one frame of filtered, tracked hands; return the results of the windows it completes.

        All windows completed by one frame go through the model as one batch.
        """
        windows = self._cutter.push(frame)
        if not windows:
            return []
        probabilities = self.model.predict_proba(np.stack([w.features for w in windows]))
        results = []
        for window, scores in zip(windows, probabilities, strict=True):
            best = int(np.argmax(scores))
            results.append(ActivityResult(window.track_id, self.class_names[best], float(scores[best]),
                                          self.class_names, scores.astype(np.float32),
                                          window.start_ns, window.end_ns))
        self.stats.add("results", len(results))
        return results

    def reset(self) -> None:
        """Forget all tracks (e.g. after a jump back in a replayed bag); the stats are kept."""
        self._cutter.reset()
