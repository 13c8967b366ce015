"""Label-free quality filters for hand poses: anatomy per frame, consistency over time.

* :mod:`.spatial` — one frame: confidence, hand size, bone lengths and ratios, joint angles,
  duplicates, number of hands;
* :mod:`.temporal` — per track: keypoint speed limit, gap interpolation, One Euro smoothing,
  in an offline (look-ahead) and an online (bounded delay) mode; its steps in
  :mod:`.velocity_gate` (the speed limit) and :mod:`.interpolation` (gap filling), the data it
  works on in :mod:`.temporal_state`;
* :mod:`.recurring` — offline, over a folder of stills: hand-shaped objects that come back at
  one place in many frames;
* :mod:`.anatomy` — the anatomical reference values the spatial filter checks against;
* :mod:`.smoothing` — the One Euro filter (with real time steps) the temporal filter smooths with;
* :mod:`.stats` — every rejection counted with its reason;
* :mod:`.tracking` — which hand is which across frames (track ids for the temporal filter);
* :mod:`.pipeline` — :class:`~.pipeline.PoseFilterPipeline` chains spatial filter, tracker and
  temporal filter the same way for live nodes and offline tools.
"""

from hand_pose_refiner.filters.spatial import SpatialFilter, SpatialResult
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter

__all__ = ["FilterMode", "RejectionStats", "SpatialFilter", "SpatialResult", "TemporalFilter"]
