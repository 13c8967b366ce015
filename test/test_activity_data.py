"""Annotations, pose recordings, the synthetic generator and labelled windows."""

from __future__ import annotations

import numpy as np
import pytest

from hand_pose_refiner.activity.dataset import labelled_windows, window_label
from hand_pose_refiner.activity.labels import (
    ActivitySegment,
    PoseRecording,
    load_annotations,
    load_pose_frames,
    parse_annotations,
    resolve_source,
    write_annotations,
)
from hand_pose_refiner.activity.synthetic import (
    ACTIVITIES,
    SyntheticSettings,
    generate_recording,
    hand_keypoints_3d,
)
from hand_pose_refiner.activity.windows import Window
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import ActivityLabelError
from hand_pose_refiner.filters.anatomy import BONE_RATIO_MAX, BONE_RATIO_MIN, PALM_BONES
from hand_pose_refiner.filters.spatial import SpatialFilter
from hand_pose_refiner.skeleton import BONES, Handedness

GOOD_CSV = """# assembly station 3, annotated by hand
source,start_s,end_s,hand,label
cell.bag,0.5,2.0,right,screw

subject_001.npz , 3 , 6.5 , 4 , insert
other/rec.npz,0,1,ANY,idle
"""


def test_annotations_are_parsed_with_comments_blank_lines_and_track_ids():
    segments = parse_annotations(GOOD_CSV, "labels.csv", ACTIVITIES)
    assert segments == [
        ActivitySegment("cell.bag", 0.5, 2.0, "right", "screw"),
        ActivitySegment("subject_001.npz", 3.0, 6.5, "4", "insert"),
        ActivitySegment("other/rec.npz", 0.0, 1.0, "any", "idle"),
    ]
    right, track, anyone = segments
    assert right.matches(7, int(Handedness.RIGHT)) and not right.matches(7, int(Handedness.LEFT))
    assert track.matches(4, int(Handedness.LEFT)) and not track.matches(5, int(Handedness.LEFT))
    assert anyone.matches(0, int(Handedness.UNKNOWN))


@pytest.mark.parametrize(("row", "message"), [
    ("a.npz,1,0.5,left,idle", r"labels.csv:3: needs 0 <= start_s < end_s"),
    ("a.npz,x,2,left,idle", r"labels.csv:3: start_s 'x'"),
    ("a.npz,0,2,both,idle", r"labels.csv:3: hand 'both'"),
    ("a.npz,0,2,-1,idle", r"labels.csv:3: hand '-1'"),
    ("a.npz,0,2,left,dance", r"labels.csv:3: label 'dance' is not one of the classes"),
    (",0,2,left,idle", r"labels.csv:3: empty source"),
    ("a.npz,0,2,left", r"labels.csv:3: 4 fields, the header has 5"),
])
def test_bad_annotation_rows_are_refused_with_file_and_line(row, message):
    with pytest.raises(ActivityLabelError, match=message):
        parse_annotations(f"source,start_s,end_s,hand,label\na.npz,0,1,left,idle\n{row}\n", "labels.csv",
                          ACTIVITIES)


def test_annotation_header_must_name_every_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("source,start,end,label\na,0,1,idle\n")
    with pytest.raises(ActivityLabelError, match="missing start_s, end_s, hand"):
        load_annotations(path)
    with pytest.raises(ActivityLabelError, match="cannot read"):
        load_annotations(tmp_path / "nope.csv")


def test_annotations_and_recordings_round_trip(tmp_path):
    segments = parse_annotations(GOOD_CSV)
    path = write_annotations(tmp_path / "out" / "labels.csv", segments)
    assert load_annotations(path) == segments
    assert resolve_source(path, "rec.npz") == (tmp_path / "out" / "rec.npz").resolve()
    recording, _ = generate_recording(3, SyntheticSettings(clips_per_class=1, activities=("reach", "hold")))
    saved = recording.save(tmp_path / "rec.npz")
    loaded = PoseRecording.load(saved)
    np.testing.assert_array_equal(loaded.stamps_ns, recording.stamps_ns)
    np.testing.assert_array_equal(loaded.keypoints, recording.keypoints)
    frames = load_pose_frames(saved)
    assert len(frames) == len(recording) and frames[0].stamp_ns == recording.stamps_ns[0]
    assert sum(len(f) for f in frames) == int(np.isfinite(recording.keypoints).any(axis=(2, 3)).sum())
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ActivityLabelError, match="not a readable pose recording"):
        load_pose_frames(tmp_path / "junk.npz")
    with pytest.raises(ActivityLabelError, match="not found"):
        load_pose_frames(tmp_path / "missing.npz")


def test_synthetic_hand_has_anatomical_proportions():
    rng = np.random.default_rng(0)
    proportions = {"thumb": np.array([0.45, 0.35, 0.30]), "index": np.array([0.45, 0.265, 0.235]),
                   "middle": np.array([0.50, 0.30, 0.24]), "ring": np.array([0.46, 0.29, 0.24]),
                   "pinky": np.array([0.36, 0.21, 0.21])}
    curl, pinch = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    points = hand_keypoints_3d(curl, pinch, rng.uniform(0, 1, 50), proportions)
    lengths = np.linalg.norm(points[:, BONES[:, 1]] - points[:, BONES[:, 0]], axis=-1)
    palm = np.median(lengths[:, PALM_BONES], axis=1, keepdims=True)
    ratios = lengths / palm
    assert (ratios >= BONE_RATIO_MIN - 1e-6).all() and (ratios <= BONE_RATIO_MAX + 1e-6).all()
    # curling moves the finger tips towards the palm side (+z), never backwards
    open_hand = hand_keypoints_3d(np.zeros(1), np.zeros(1), np.ones(1), proportions)
    fist = hand_keypoints_3d(np.ones(1), np.zeros(1), np.ones(1), proportions)
    tips = [8, 12, 16, 20]
    assert (fist[0, tips, 2] > open_hand[0, tips, 2] + 0.15).all()


def test_synthetic_recordings_are_reproducible_and_mostly_plausible():
    settings = SyntheticSettings(clips_per_class=1, noise=(0.01, 0.01), missing=(0.05, 0.05))
    first, segments = generate_recording(7, settings)
    again, _ = generate_recording(7, settings)
    other, _ = generate_recording(8, settings)
    np.testing.assert_array_equal(first.keypoints, again.keypoints)
    assert first.keypoints.shape != other.keypoints.shape or not np.array_equal(
        first.keypoints, other.keypoints, equal_nan=True)
    assert sorted(s.label for s in segments) == sorted(ACTIVITIES)
    assert all(s.end_s > s.start_s >= 0 for s in segments)
    assert {s.hand for s in segments} <= {"left", "right"}
    spatial = SpatialFilter(Config().spatial_filter)
    accepted = sum(len(spatial(frame).accepted) for frame in first.frames())
    seen = int(np.isfinite(first.keypoints).any(axis=(2, 3)).sum())
    assert accepted / seen > 0.6  # the anatomical filter keeps most synthetic hands


def test_window_label_needs_the_right_hand_and_enough_overlap():
    origin = 1_000_000_000_000
    window = Window(3, np.array([origin + 1_000_000_000, origin + 2_000_000_000]), np.zeros((2, 21, 2)),
                    np.ones((2, 21), bool), int(Handedness.LEFT), np.zeros((7, 2, 21), np.float32))
    segments = [ActivitySegment("a", 0.0, 1.2, "left", "reach"),
                ActivitySegment("a", 1.2, 5.0, "left", "hold"),
                ActivitySegment("a", 0.0, 5.0, "right", "idle")]
    assert window_label(window, segments, origin) == "hold"  # 80 % of the window
    assert window_label(window, segments[:1], origin) is None  # 20 %: a transition, left out
    assert window_label(window, segments[2:], origin) is None  # the other hand
    assert window_label(window, [ActivitySegment("a", 0.0, 5.0, "3", "screw")], origin) == "screw"


def test_labelled_windows_come_through_the_filters_for_every_class():
    config = Config()
    recording, segments = generate_recording(12, SyntheticSettings(clips_per_class=1, noise=(0.01, 0.01),
                                                                   missing=(0.05, 0.05)))
    windows = labelled_windows(recording.frames(), segments, config, stride_frames=8)
    assert windows.features.shape[1:] == (7, config.activity.window_frames, 21)
    counts = windows.class_counts()
    assert set(counts) == set(ACTIVITIES) and sum(counts.values()) == len(windows) > 0
    assert sum(1 for c in counts.values() if c > 0) >= 5  # a clip may be lost to the filters
    assert np.isfinite(windows.features).all()
