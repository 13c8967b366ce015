"""Property-based tests: the filters never raise, never move accepted keypoints, never peek."""

from dataclasses import replace

import numpy as np
from helpers import open_hand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hand_pose_refiner.config import Config
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.spatial import SpatialFilter, valid_keypoints
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)
HUGE_OR_ODD = st.one_of(ANY_FLOAT, st.sampled_from([0.0, -1e30, 1e30, 3.4e38, np.nan, np.inf]))
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw, max_hands: int = 8, stamp_ns: int | None = None) -> FrameHands:
    count = draw(st.integers(0, max_hands))
    if draw(st.booleans()):
        keypoints = draw(arrays(np.float32, (count, 21, 2), elements=HUGE_OR_ODD))
    else:  # mostly plausible hands with a few corrupt values
        centers = draw(arrays(np.float64, (count, 2), elements=st.floats(0, 640)))
        keypoints = np.stack([open_hand(tuple(c)) for c in centers]) if count else np.zeros((0, 21, 2))
        corrupt = draw(arrays(np.bool_, keypoints.shape))
        keypoints = np.where(corrupt, draw(st.sampled_from([np.nan, np.inf, 1e9])), keypoints)
    return FrameHands(
        stamp_ns if stamp_ns is not None else draw(st.integers(0, 10**12)),
        draw(st.integers(0, 4000)), draw(st.integers(0, 4000)), keypoints,
        keypoint_scores=draw(arrays(np.float32, (count, 21), elements=HUGE_OR_ODD)),
        keypoint_states=draw(arrays(np.uint8, (count, 21), elements=st.integers(0, 3))),
        detection_scores=draw(arrays(np.float32, count, elements=HUGE_OR_ODD)),
        handedness=draw(arrays(np.uint8, count, elements=st.integers(0, 2))),
        handedness_scores=draw(arrays(np.float32, count, elements=HUGE_OR_ODD)),
    )


@PROPERTY_SETTINGS
@given(frame=frames(max_hands=60))
def test_spatial_filter_never_raises_and_never_moves_an_accepted_keypoint(frame):
    result = SpatialFilter(Config().spatial_filter)(frame)
    assert len(result.accepted) + len(result.rejected) == len(frame)
    assert len(result.rejected_reasons) == len(result.rejected)
    assert len(result.accepted) <= Config().spatial_filter.max_hands
    for index in range(len(result.accepted)):
        kept = valid_keypoints(result.accepted.keypoint_states[index])
        assert np.isfinite(result.accepted.keypoints[index][kept]).all()
        candidates = [i for i in range(len(frame))
                      if np.array_equal(frame.keypoints[i][kept], result.accepted.keypoints[index][kept])]
        assert candidates, "an accepted keypoint was moved"


@st.composite
def sequences(draw) -> list[FrameHands]:
    length = draw(st.integers(0, 25))
    steps = draw(st.lists(st.integers(-40_000_000, 80_000_000), min_size=length, max_size=length))
    stamps = np.cumsum(steps) + 10**9  # includes repeated and backwards stamps
    return [draw(frames(max_hands=5, stamp_ns=int(s))) for s in stamps]


@PROPERTY_SETTINGS
@given(sequence=sequences(), mode=st.sampled_from(list(FilterMode)))
def test_pipeline_never_raises_on_any_sequence(sequence, mode):
    pipeline = PoseFilterPipeline(Config(), mode)
    out = pipeline.process(sequence)
    stamps = [frame.stamp_ns for frame in out]
    assert stamps == sorted(set(stamps)), "output stamps strictly increase"
    for frame in out:
        assert len(frame) <= Config().spatial_filter.max_hands + 8
        assert (frame.track_ids >= 0).all()


@st.composite
def diverging_streams(draw) -> tuple[list[FrameHands], list[FrameHands], int]:
    """Two plausible streams equal up to a cut, different after it."""
    length = draw(st.integers(4, 30))
    gaps = draw(st.lists(st.integers(5_000_000, 120_000_000), min_size=length, max_size=length))
    stamps = np.cumsum(gaps)
    cut = draw(st.integers(1, length - 1))

    def stream(seed: int, start: int) -> list[FrameHands]:
        rng = np.random.default_rng(seed)
        out = []
        for s in stamps[start:]:
            count = int(rng.integers(0, 3))
            hands = [open_hand((150 + 300 * k + rng.normal(0, 5), 200 + rng.normal(0, 5)))
                     for k in range(count)]
            hands = [h + rng.normal(0, 3 if rng.random() < 0.8 else 40, h.shape) for h in hands]
            keypoints = np.stack(hands) if hands else np.zeros((0, 21, 2))
            out.append(FrameHands(int(s), 640, 480, keypoints,
                                  keypoint_scores=rng.uniform(0.2, 1, (count, 21)),
                                  detection_scores=rng.uniform(0.4, 1, count)))
        return out

    common = stream(draw(st.integers(0, 1000)), 0)[:cut]
    first = common + stream(draw(st.integers(0, 1000)), cut)
    second = common + stream(draw(st.integers(1001, 2000)), cut)
    return first, second, int(stamps[cut])


@PROPERTY_SETTINGS
@given(streams=diverging_streams(), delay_ms=st.sampled_from([0, 30, 100, 250]))
def test_online_mode_never_looks_beyond_its_delay(streams, delay_ms):
    first, second, first_difference_ns = streams
    temporal = replace(Config().temporal_filter, online_delay_s=delay_ms / 1000)
    config = replace(Config(), temporal_filter=temporal)
    outputs = []
    for stream in (first, second):
        pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
        outputs.append(pipeline.process(stream))
    horizon_ns = delay_ms * 1_000_000
    settled = [frame.stamp_ns for frame in outputs[0] if frame.stamp_ns + horizon_ns < first_difference_ns]
    a = {f.stamp_ns: f for f in outputs[0]}
    b = {f.stamp_ns: f for f in outputs[1]}
    for stamp in settled:
        assert a[stamp].equals(b[stamp]), f"frame {stamp} depends on frames after {first_difference_ns}"
