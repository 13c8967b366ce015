"""Which detector tiles a live stream looks at on each frame (the detection schedule's rotation).

Backend-neutral: it counts tiles by index and hands by image position; any detector with tiles
(:class:`~hand_pose_refiner.models.base.SupportsTiles`) can be scheduled with it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hand_pose_refiner.hands import FloatArray


class TileRotation:
    """Which tiles one stream's next frame looks at, beside the whole frame (the live schedule).

    Each frame gets ``tiles_per_frame`` tiles: first every tile not looked at for ``period``
    frames (so that, from the stream's first ``ceil(tiles / tiles_per_frame)`` frames on, every
    tile is looked at at least once every ``period`` frames), then the tiles where hands were
    detected most (a decaying count, :meth:`saw`), then those waiting longest. ``period`` 0 (or
    one too short for the tiles) is ``ceil(tiles / tiles_per_frame)``: a plain rotation ordered
    by where hands were; a longer one leaves slots for the tiles where hands were seen.
    """

    HEAT_DECAY = 0.97  # per frame: a detection counts for about a second at 30 Hz

    def __init__(self, tiles_per_frame: int, period: int = 0) -> None:
        if tiles_per_frame < 1 or period < 0:
            raise ValueError(f"tiles_per_frame must be >= 1 and period >= 0, got {tiles_per_frame}, {period}")
        self.tiles_per_frame = tiles_per_frame
        self.period = period
        self.reset(0)

    def reset(self, tiles: int) -> None:
        """Start over for a frame of ``tiles`` tiles: nothing looked at, no hand seen."""
        self.frame = 0
        self.due = np.zeros(tiles, np.int64)  # the frame by which each tile must be looked at
        self.heat = np.zeros(tiles, np.float64)

    def cycle(self, tiles: int) -> int:
        """Frames within which every one of ``tiles`` tiles is looked at (after the first round)."""
        return max(self.period, math.ceil(tiles / self.tiles_per_frame))

    def select(self, tiles: int) -> npt.NDArray[np.intp]:
        """Indices of the tiles (of ``tiles``) the next frame looks at, ascending."""
        if tiles != len(self.due):
            self.reset(tiles)
        # overdue first, then where hands were, then the nearest deadline, then grid order
        order = np.lexsort((np.arange(tiles), self.due, -self.heat, self.due > self.frame))
        chosen = np.sort(order[:self.tiles_per_frame])
        self.due[chosen] = self.frame + self.cycle(tiles)
        self.frame += 1
        self.heat *= self.HEAT_DECAY
        return chosen

    def saw(self, tiles: FloatArray, points: npt.ArrayLike) -> None:
        """Count hands detected at ``points`` (``(n, 2)`` image pixels) in each tile that holds
        them (``tiles``: the ROI rows ``select`` counted)."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        if not len(points) or len(tiles) != len(self.heat):
            return
        half = tiles[:, 2:3] / 2
        inside = (np.abs(points[:, None, :] - tiles[None, :, :2]) <= half[None]).all(axis=-1)
        self.heat += inside.sum(axis=0)
