"""The recurring-object filter: hand-shaped things that come back at one place across stills."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from hand_pose_refiner.config import Config, RecurringObjectsConfig
from hand_pose_refiner.filters.recurring import RULE, drop_recurring_objects, recurring_hands
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.inputs import InputSpec
from hand_pose_refiner.refinement.replay import ReplayOptions, replay

OBJECT = np.random.default_rng(0).uniform(0, 80, size=(21, 2)) + np.array([400, 200])  # hand-shaped "object"


def _frame(index: int, *hands: np.ndarray, size: tuple[int, int] = (640, 480)) -> FrameHands:
    keypoints = np.array(hands, np.float32).reshape(-1, 21, 2)
    return FrameHands(index * 10**9, *size, keypoints, keypoint_scores=np.ones((len(hands), 21), np.float32))


def _moving_hand(index: int) -> np.ndarray:
    """A real hand: somewhere else, and shaped differently, in every frame."""
    rng = np.random.default_rng(100 + index)
    return rng.uniform(0, 60, size=(21, 2)) + np.array([50 + 40 * index, 300])


def test_a_hand_at_the_same_place_in_many_frames_is_dropped_a_moving_one_kept():
    jitter = np.random.default_rng(1)
    frames = [_frame(i, OBJECT + jitter.normal(0, 1.0, OBJECT.shape), _moving_hand(i)) for i in range(6)]
    stats = RejectionStats("recurring_objects", logger=None)
    kept = drop_recurring_objects(frames, RecurringObjectsConfig(), stats)
    assert [len(frame) for frame in kept] == [1] * 6
    for frame, original in zip(kept, frames, strict=True):
        assert np.array_equal(frame.keypoints[0], original.keypoints[1])  # the moving hand stays
    assert stats.rejections[RULE] == 6
    assert stats.totals["hands_in"] == 12 and stats.totals["hands_out"] == 6


def test_how_many_other_frames_make_an_object():
    # the object in 4 frames: each copy recurs in 3 others
    frames = [_frame(i, OBJECT) for i in range(4)] + [_frame(4, _moving_hand(4))]
    assert [m.tolist() for m in recurring_hands(frames, 3, 0.1)] == [[True]] * 4 + [[False]]
    assert [m.tolist() for m in recurring_hands(frames, 4, 0.1)] == [[False]] * 5
    # the distance is in hand sizes (about 80 px here): 5 px apart recurs at 0.1, not at 0.05
    shifted = [_frame(i, OBJECT + np.array([5.0 * i, 0.0])) for i in range(4)]
    assert all(m.all() for m in recurring_hands(shifted[:2], 1, 0.1))
    assert not any(m.any() for m in recurring_hands(shifted[:2], 1, 0.05))


def test_frames_of_another_size_and_hands_of_the_same_frame_do_not_count():
    other_camera = [_frame(i, OBJECT, size=(1280, 720)) for i in range(3)]
    frames = [_frame(0, OBJECT), *other_camera]
    assert not recurring_hands(frames, 1, 0.1)[0].any()
    assert all(m.all() for m in recurring_hands(frames, 2, 0.1)[1:])
    twice_in_one = [_frame(0, OBJECT, OBJECT), _frame(1, _moving_hand(1))]
    assert not any(m.any() for m in recurring_hands(twice_in_one, 1, 0.1))


def test_a_hand_without_keypoints_never_recurs_and_no_hands_is_fine():
    lost = np.full((21, 2), np.nan)
    frames = [_frame(0, OBJECT, lost), _frame(1, OBJECT, lost), _frame(2)]
    masks = recurring_hands(frames, 1, 0.25)
    assert masks[0].tolist() == [True, False] and masks[1].tolist() == [True, False] and masks[2].size == 0
    assert recurring_hands([], 1, 0.25) == []
    assert recurring_hands([_frame(0)], 1, 0.25)[0].size == 0


@pytest.mark.slow
def test_the_block_tray_of_the_top_view_is_dropped_on_the_real_frames(shared_data, tmp_path):
    """The live models take a tray of wooden blocks near (705, 284) for a hand in several of the
    28 top-view stills; nothing else recurs there. Fails if the rule stops running in replay."""
    folder = shared_data / "hags_gloved_assembly" / "top_view" / "gloved"
    config = Config()
    detector, estimator = create_backend(config.models)
    options = ReplayOptions(cache_dir=tmp_path / "cache", progress=False)
    spec = (InputSpec(folder, stills=True),)
    without = replace(config, recurring_objects=RecurringObjectsConfig(enabled=False))
    off = replay(spec, tmp_path / "off", without, detector, estimator, options)
    on = replay(spec, tmp_path / "on", config, detector, estimator, options)

    def tray_frames(out) -> int:
        count = 0
        for line in (out / "predictions.jsonl").read_text().splitlines():
            hands = json.loads(line)["filtered"]
            count += any(np.linalg.norm(np.nanmean(np.array(h["keypoints"], float).reshape(21, 2), axis=0)
                                        - [705, 284]) < 40 for h in hands)
        return count

    assert tray_frames(tmp_path / "off") >= 4
    assert tray_frames(tmp_path / "on") == 0
    assert on.stats[str(folder)]["recurring_objects"]["rejections"][RULE] >= 4
    assert off.total("frames_with_hands") - on.total("frames_with_hands") >= 4
