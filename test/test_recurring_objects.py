"""The recurring-object filter: hand-shaped things that look the same in other stills."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_pose_refiner.config import Config, RecurringObjectsConfig
from hand_pose_refiner.filters.recurring import RULE, drop_recurring_objects, recurring_hands
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.cache import FrameStore
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.replay import ReplaySettings, replay

WIDTH, HEIGHT = 200, 150
OBJECT_PATCH = np.random.default_rng(0).integers(0, 200, size=(50, 50, 3), dtype=np.uint8)
# A hand-shaped layout of 21 points inside a 50-pixel square, at (x, y) = (20, 20) and (120, 20).
LAYOUT = np.random.default_rng(1).uniform(8, 42, size=(21, 2))
AT_OBJECT = LAYOUT + np.array([20, 20])
AT_WORK = LAYOUT + np.array([120, 20])


def _image(index: int, with_object: bool = True, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """Fresh noise everywhere (things that change), plus the same object patch when asked."""
    image = np.random.default_rng(1000 + index).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    if with_object:
        image[20:70, 20:70] = OBJECT_PATCH
    return image


def _hands(index: int, *hands: np.ndarray, size: tuple[int, int] = (WIDTH, HEIGHT)) -> FrameHands:
    keypoints = np.array(hands, np.float32).reshape(-1, 21, 2)
    return FrameHands(index * 10**9, *size, keypoints, keypoint_scores=np.ones((len(hands), 21), np.float32))


def _config(**changes: object) -> RecurringObjectsConfig:
    """Every other frame compared, unless a test says otherwise (few frames per test)."""
    return replace(RecurringObjectsConfig(compare_width=WIDTH, neighbour_frames=0), **changes)


def test_a_fixed_object_is_dropped_a_hand_at_the_same_place_that_changes_is_kept():
    # The "hand" comes back to exactly the same place in every frame (a worker at the station),
    # but the picture there changes; the object's picture does not.
    images = [_image(i) for i in range(6)]
    frames = [_hands(i, AT_OBJECT, AT_WORK) for i in range(6)]
    stats = RejectionStats("recurring_objects", logger=None)
    kept = drop_recurring_objects(frames, images.__getitem__, _config(), stats)
    assert [len(frame) for frame in kept] == [1] * 6
    for frame in kept:
        assert np.allclose(frame.keypoints[0], AT_WORK)
    assert stats.rejections[RULE] == 6
    assert stats.totals["hands_in"] == 12 and stats.totals["hands_out"] == 6


def test_how_many_other_frames_make_an_object():
    # the object in frames 0-3 only: each of those copies looks the same in 3 others
    images = [_image(i, with_object=i < 4) for i in range(6)]
    frames = [_hands(i, AT_OBJECT) for i in range(6)]
    masks = recurring_hands(frames, images.__getitem__, _config(min_other_frames=3))
    assert [m.tolist() for m in masks] == [[True]] * 4 + [[False]] * 2
    masks = recurring_hands(frames, images.__getitem__, _config(min_other_frames=4))
    assert [m.tolist() for m in masks] == [[False]] * 6


def test_a_hand_resting_for_a_few_stills_is_kept_an_object_in_stills_far_apart_is_not():
    # frames 0-3: a hand at rest (the same picture at AT_WORK); the object is in all 10 frames
    rest = np.random.default_rng(7).integers(0, 256, size=(50, 50, 3), dtype=np.uint8)

    def image(index: int) -> np.ndarray:
        picture = _image(index)
        if index < 4:
            picture[20:70, 120:170] = rest
        return picture

    frames = [_hands(i, AT_OBJECT, AT_WORK) if i < 4 else _hands(i, AT_OBJECT) for i in range(10)]
    every_other = recurring_hands(frames, image, _config(neighbour_frames=0))
    assert [m.tolist() for m in every_other[:4]] == [[True, True]] * 4
    # with 3 neighbours either side left out, the resting hand has no look-alike left
    far_apart = recurring_hands(frames, image, _config(neighbour_frames=3))
    assert [m.tolist() for m in far_apart[:4]] == [[True, False]] * 4
    assert all(m.tolist() == [True] for m in far_apart[4:])
    # 10 frames less 7 neighbours leave 3 to compare with: enough for min_other_frames 3, not 4
    assert not any(m.any() for m in recurring_hands(frames, image, _config(neighbour_frames=3,
                                                                          min_other_frames=4))[3:7])


def test_a_quarter_of_the_keypoints_on_the_object_is_enough():
    # 6 of 21 keypoints on the object (a robot arm or a shadow over the rest), 15 on noise
    half_on = AT_WORK.copy()
    half_on[:6] = AT_OBJECT[:6]
    images = [_image(i) for i in range(5)]
    frames = [_hands(i, half_on) for i in range(5)]
    quarter = recurring_hands(frames, images.__getitem__, _config(keypoint_fraction=0.25))
    half = recurring_hands(frames, images.__getitem__, _config(keypoint_fraction=0.5))
    assert all(m.all() for m in quarter) and not any(m.any() for m in half)


def test_a_small_change_still_looks_the_same_a_large_one_does_not():
    def brighter(index: int) -> np.ndarray:
        image = _image(index)
        image[20:70, 20:70] = np.clip(image[20:70, 20:70].astype(int) + 5 * index, 0, 255)
        return image

    frames = [_hands(i, AT_OBJECT) for i in range(4)]
    # frame 0 differs from frames 1-3 by 5, 10, 15 levels: its third-best match is 15 levels off
    assert recurring_hands(frames, brighter, _config(max_difference=16.0))[0].all()
    assert not recurring_hands(frames, brighter, _config(max_difference=14.0))[0].any()


def test_frames_of_another_size_do_not_count_and_the_comparison_width_scales_keypoints():
    other_camera = [_image(i, size=(400, 300)) for i in range(3)]
    images = [_image(0), *other_camera]
    frames = [_hands(0, AT_OBJECT), *[_hands(i, AT_OBJECT, size=(400, 300)) for i in range(1, 4)]]
    masks = recurring_hands(frames, images.__getitem__, _config(min_other_frames=2))
    assert masks[0].tolist() == [False]  # its object only in frames of another size
    assert all(m.all() for m in masks[1:])
    # the same folder compared at half its width finds the same object
    big = [cv2.resize(_image(i), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for i in range(4)]
    frames = [_hands(i, AT_OBJECT * 2, size=(2 * WIDTH, 2 * HEIGHT)) for i in range(4)]
    assert all(m.all() for m in recurring_hands(frames, big.__getitem__, _config(compare_width=WIDTH)))


def test_references_are_capped_and_spread_over_the_folder():
    images = [_image(i) for i in range(8)]
    frames = [_hands(i, AT_OBJECT) for i in range(8)]
    read: list[int] = []

    def image(index: int) -> np.ndarray:
        read.append(index)
        return images[index]

    masks = recurring_hands(frames, image, _config(max_reference_frames=3, min_other_frames=2))
    assert all(m.all() for m in masks)
    # the three references (first, middle, last) are read once; every other frame once, then dropped
    assert sorted(read) == list(range(8))
    # two references (first and last): those two have one other frame each, too few
    masks = recurring_hands(frames, images.__getitem__, _config(max_reference_frames=2, min_other_frames=2))
    assert [m.tolist() for m in masks] == [[False]] + [[True]] * 6 + [[False]]


def test_a_hand_without_keypoints_or_at_the_border_is_kept_and_no_hands_is_fine():
    lost = np.full((21, 2), np.nan)
    at_border = np.zeros((21, 2))
    images = [_image(i) for i in range(5)]
    frames = [_hands(i, AT_OBJECT, lost, at_border) for i in range(4)] + [_hands(4)]
    masks = recurring_hands(frames, images.__getitem__, _config())
    assert [m.tolist() for m in masks] == [[True, False, False]] * 4 + [[]]
    assert recurring_hands([], images.__getitem__, _config()) == []
    assert recurring_hands([_hands(0)], images.__getitem__, _config())[0].size == 0


GLOVED = Path("hags_gloved_assembly")


def _real_frames(folder: Path) -> list[np.ndarray]:
    return [read_rgb(path) for path in sorted(folder.glob("*.jpg"))]


def test_on_the_real_side_view_the_robot_base_looks_the_same_in_every_still(shared_data):
    """Real JPEG noise and light stay under the threshold on a fixed object: the robot's base,
    in all 28 side-view stills, while the arm moves above it. No models needed."""
    images = _real_frames(shared_data / GLOVED / "side_view" / "gloved")
    height, width = images[0].shape[:2]
    base = LAYOUT / 50 * 150 + np.array([0.60 * width, 0.36 * height])
    frames = [_hands(i, base, size=(width, height)) for i in range(len(images))]
    assert all(m.all() for m in recurring_hands(frames, images.__getitem__, RecurringObjectsConfig()))


def test_a_cached_still_that_cannot_be_read_back_fails_its_folder_by_name_not_the_others(
        shared_data, tmp_path):
    capture = cv2.VideoCapture(str(shared_data / "bare_hand_clips" / "hands1.webm"))
    stills = [capture.read()[1] for _ in range(8)]  # BGR frames with a hand in each
    folders = []
    for name in ("station_a", "station_b"):
        folder = tmp_path / name
        folder.mkdir()
        for index in range(4):
            cv2.imwrite(str(folder / f"{index}.png"), stills[index + 4 * len(folders)])
        folders.append(InputSpec(folder, stills=True))
    config = Config()
    models = create_backend(config.models)
    options = ReplaySettings(cache_dir=tmp_path / "cache", progress=False)
    replay(folders, tmp_path / "first", config, *models, options)
    broken = sorted(FrameStore(tmp_path / "cache", folders[0]).folder.glob("*.jpg"))[1]
    broken.write_bytes(b"not a jpeg")  # the models' predictions stay cached: only the filter reads it
    summary = replay(folders, tmp_path / "second", config, *models, options)
    assert [failure.path for failure in summary.failed] == [str(folders[0].path)]
    assert str(broken) in (summary.failed[0].error or "")
    assert summary.total("frames") == 4  # the other folder's


@pytest.mark.slow
def test_the_block_tray_of_the_top_view_is_dropped_on_the_real_frames(shared_data, tmp_path):
    """The live models take a tray of wooden blocks near (705, 284) for a hand in several of the
    28 top-view stills; nothing else recurs there. Fails if the rule stops running in replay."""
    folder = shared_data / GLOVED / "top_view" / "gloved"
    config = Config()
    detector, estimator = create_backend(config.models)
    options = ReplaySettings(cache_dir=tmp_path / "cache", progress=False)
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
