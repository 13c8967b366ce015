from dataclasses import replace

import numpy as np
import pytest
from helpers import open_hand

from hand_pose_refiner.config import TemporalFilterConfig, TrackingConfig
from hand_pose_refiner.filters.temporal import FilterMode, TemporalFilter
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import KeypointState

TEMPORAL = TemporalFilterConfig(smoothing=False)
TRACKING = TrackingConfig(min_hits=2)


def tracked(stamp_s: float, *hands: tuple[int, np.ndarray]) -> FrameHands:
    count = len(hands)
    keypoints = np.stack([h for _, h in hands]) if hands else np.zeros((0, 21, 2))
    return FrameHands(round(stamp_s * 1e9), 640, 480, keypoints, keypoint_scores=np.full((count, 21), 0.9),
                      detection_scores=np.full(count, 0.9), track_ids=[i for i, _ in hands])


def moving_hand(stamp_s: float, speed_px_s: float = 60.0) -> np.ndarray:
    return open_hand((100 + speed_px_s * stamp_s, 200))


def test_single_frame_spike_is_rejected_then_interpolated_offline():
    stamps = np.arange(10) / 30
    frames = []
    for t in stamps:
        hand = moving_hand(t)
        if t == stamps[5]:
            hand[8] += (60.0, 0.0)  # index tip jumps ~ one hand size for one frame
        frames.append(tracked(t, (3, hand)))
    temporal = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE)
    out = temporal.process(frames)
    assert len(out) == 10
    assert out[5].keypoint_states[0, 8] == KeypointState.INTERPOLATED
    np.testing.assert_allclose(out[5].keypoints[0, 8], moving_hand(stamps[5])[8], atol=1e-3)
    assert temporal.stats.rejections["keypoint_speed"] == 1
    assert all((o.keypoint_states[0, np.arange(21) != 8] == KeypointState.OBSERVED).all() for o in out)


def test_fast_rigid_motion_is_kept():
    # 40 hand sizes per second, but every keypoint moves together
    frames = [tracked(t, (1, moving_hand(t, speed_px_s=3000.0))) for t in np.arange(12) / 30]
    temporal = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE)
    out = temporal.process(frames)
    assert temporal.stats.rejections["keypoint_speed"] == 0
    assert all((o.keypoint_states == KeypointState.OBSERVED).all() for o in out)


def test_speed_uses_real_time_stamps():
    # the fingertip moves 20 px relative to the hand between two frames: a jump in 10 ms,
    # ordinary motion over 0.2 s
    def run(dt: float) -> int:
        still, moved = open_hand(), open_hand()
        moved[8] += (20.0, 0.0)
        temporal = TemporalFilter(replace(TEMPORAL, max_gap_s=0.5), TRACKING, FilterMode.OFFLINE)
        temporal.process([tracked(0.0, (1, still)), tracked(dt, (1, moved))])
        return temporal.stats.rejections["keypoint_speed"]

    assert run(0.01) == 1
    assert run(0.2) == 0


def test_short_whole_hand_gap_is_interpolated_and_a_long_one_is_not():
    stamps = np.arange(20) / 30
    missing = {6, 7, 8}  # 0.13 s without a detection
    frames = [tracked(t, *([] if i in missing else [(1, moving_hand(t))])) for i, t in enumerate(stamps)]
    out = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE).process(frames)
    for i in missing:
        assert len(out[i]) == 1 and (out[i].keypoint_states == KeypointState.INTERPOLATED).all()
        np.testing.assert_allclose(out[i].keypoints[0], moving_hand(stamps[i]), atol=1e-3)
    long_gap = set(range(6, 16))  # 0.37 s > max_gap_s
    frames = [tracked(t, *([] if i in long_gap else [(1, moving_hand(t))])) for i, t in enumerate(stamps)]
    out = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE).process(frames)
    assert all(len(out[i]) == 0 for i in long_gap)


def test_missing_keypoint_gap_is_filled_with_interpolated_state():
    stamps = np.arange(8) / 30
    frames = []
    for i, t in enumerate(stamps):
        frame = tracked(t, (1, moving_hand(t)))
        if i in (3, 4):
            frame.keypoints[0, 12] = np.nan
            frame.keypoint_states[0, 12] = KeypointState.MISSING
        frames.append(frame)
    out = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE).process(frames)
    for i in (3, 4):
        assert out[i].keypoint_states[0, 12] == KeypointState.INTERPOLATED
        np.testing.assert_allclose(out[i].keypoints[0, 12], moving_hand(stamps[i])[12], atol=1e-3)


def test_spurious_single_frame_track_is_dropped():
    frames = [tracked(t, (1, moving_hand(t))) for t in np.arange(6) / 30]
    frames[2] = tracked(2 / 30, (1, moving_hand(2 / 30)), (9, open_hand((500, 400))))
    temporal = TemporalFilter(TEMPORAL, TRACKING, FilterMode.OFFLINE)
    out = temporal.process(frames)
    assert out[2].track_ids.tolist() == [1]
    assert temporal.stats.rejections["unconfirmed_track"] == 1


def test_online_delay_bounds_the_release():
    temporal = TemporalFilter(replace(TEMPORAL, online_delay_s=0.1), TRACKING, FilterMode.ONLINE)
    released_at = {}
    for i in range(12):
        for frame in temporal.push(tracked(i / 30, (1, moving_hand(i / 30)))):
            released_at[round(frame.stamp_ns / 1e9 * 30)] = i
    assert all(pushed - index == 3 for index, pushed in released_at.items())  # 0.1 s = 3 frames
    assert len(temporal.flush()) == 3


def test_online_without_delay_is_causal_and_immediate():
    temporal = TemporalFilter(replace(TEMPORAL, online_delay_s=0.0), TRACKING, FilterMode.ONLINE)
    out = [temporal.push(tracked(i / 30, (1, moving_hand(i / 30)))) for i in range(5)]
    assert [len(o) for o in out] == [1] * 5
    assert len(out[0][0]) == 0 and len(out[1][0]) == 1  # confirmed at its second observation


def test_one_euro_smoothing_reduces_jitter_in_online_mode():
    rng = np.random.default_rng(0)
    truth = [open_hand((320, 240)) for _ in range(60)]
    noisy = [h + rng.normal(0, 1.5, h.shape) for h in truth]
    frames = [tracked(i / 30, (1, h)) for i, h in enumerate(noisy)]
    config = replace(TemporalFilterConfig(), online_delay_s=0.0, smoothing=True)
    out = TemporalFilter(config, TRACKING, FilterMode.ONLINE).process(frames)
    raw_error = np.mean([np.abs(n - t).mean() for n, t in zip(noisy[30:], truth[30:], strict=True)])
    smooth_error = np.mean([np.abs(o.keypoints[0] - t).mean()
                            for o, t in zip(out[30:], truth[30:], strict=True)])
    assert smooth_error < 0.6 * raw_error


@pytest.mark.parametrize("mode", list(FilterMode))
def test_bad_stamps_and_track_ids_are_counted_not_raised(mode):
    temporal = TemporalFilter(TEMPORAL, TRACKING, mode)
    temporal.push(tracked(1.0, (1, open_hand())))
    assert temporal.push(tracked(1.0, (1, open_hand()))) == []  # duplicate stamp
    assert temporal.push(tracked(0.5, (1, open_hand()))) == []  # backwards
    temporal.push(tracked(1.1, (-1, open_hand()), (2, open_hand((300, 300))), (2, open_hand((400, 300)))))
    temporal.flush()
    assert temporal.stats.rejections["non_monotonic_stamp"] == 2
    assert temporal.stats.rejections["untracked_hand"] == 1
    assert temporal.stats.rejections["duplicate_track"] == 1
