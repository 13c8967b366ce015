"""The palm detector's tiles (``mediapipe.detector_tile_size``): small hands found, cut boxes dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_pose_refiner.coco import CocoImage, load_coco
from hand_pose_refiner.config import Config, MediaPipeConfig, ModelsConfig
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.models.base import FineTuneSettings
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector
from hand_pose_refiner.models.mediapipe.detector import _inside_tile
from hand_pose_refiner.models.mediapipe.palm_detector import INPUT_SIZE
from hand_pose_refiner.models.mediapipe.palm_training import _detector_sample
from hand_pose_refiner.refinement.cache import model_key


def test_the_whole_frame_comes_first_and_half_overlapping_tiles_cover_the_image():
    detector = MediaPipeHandDetector(device="cpu", tile_size=0.5)
    rois = detector.rois(1920, 1080)
    assert rois[0].tolist() == [960, 540, 1920, 0]
    tiles = rois[1:]
    assert np.allclose(tiles[:, 2], 540) and np.allclose(tiles[:, 3], 0)
    assert len(tiles) == 3 * 7  # rows 0, 270, 540 and columns 270 px apart
    assert tiles[:, 0].min() - 270 == 0 and tiles[:, 0].max() + 270 == 1920
    assert tiles[:, 1].min() - 270 == 0 and tiles[:, 1].max() + 270 == 1080
    # The tile side is a fraction of the short side, portrait images too.
    assert np.allclose(MediaPipeHandDetector(device="cpu", tile_size=0.5).rois(1080, 1920)[1:, 2], 540)
    assert len(MediaPipeHandDetector(device="cpu").rois(1920, 1080)) == 1
    assert len(MediaPipeHandDetector(device="cpu", tile_size=1.0).rois(480, 480)) == 1  # no tile = frame
    # No tile smaller than the detector's input: 180-px tiles of a 640x360 frame are left out.
    assert len(MediaPipeHandDetector(device="cpu", tile_size=0.5).rois(640, 360)) == 1
    assert len(MediaPipeHandDetector(device="cpu", tile_size=0.5).rois(640, 384)) == 1 + 3 * 6
    assert len(MediaPipeHandDetector(device="cpu", tile_size=0.5).rois(1280, 720)) == 1 + 3 * 7


@pytest.mark.parametrize(("index", "scale"), [(2, 0.35), (3, 0.25)])
def test_a_hand_too_small_for_the_whole_frame_is_found_in_a_tile(shared_data, index, scale):
    """A labelled hand shrunk to 35-50 px in a 1080p frame: under the whole frame's 192-pixel
    input it is 4-5 px and the palm detector misses it; in a 540-px tile it is found."""
    item = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")[index]
    image = read_rgb(item.path)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    top, left = 700, 1300
    frame[top:top + small.shape[0], left:left + small.shape[1]] = small[:1080 - top]
    keypoints = item.hands.keypoints[0] * scale + (left, top)
    low, high = np.nanmin(keypoints, axis=0), np.nanmax(keypoints, axis=0)

    assert len(MediaPipeHandDetector(device="cpu").detect([frame])[0]) == 0
    found = MediaPipeHandDetector(device="cpu", tile_size=0.5).detect([frame])[0]
    assert len(found) == 1
    centre = (found.boxes[0, :2] + found.boxes[0, 2:]) / 2
    assert (centre >= low - 5).all() and (centre <= high + 5).all()


def test_a_box_cut_by_a_tiles_inner_edge_is_dropped_one_at_the_image_edge_is_kept():
    tile = np.array([270.0, 270.0, 540.0, 0.0])  # the top-left tile of a 1920x1080 frame
    rows = np.zeros((4, 18), np.float32)
    rows[0, :4] = (0.40, 0.40, 0.60, 0.60)  # inside
    rows[1, :4] = (0.90, 0.40, 1.05, 0.60)  # across the right edge: inside the image
    rows[2, :4] = (-0.05, 0.40, 0.10, 0.60)  # across the left edge: the image's edge
    rows[3, :4] = (0.40, -0.05, 0.60, 0.10)  # across the top edge: the image's edge
    assert _inside_tile(rows, tile, 1920, 1080).tolist() == [True, False, True, True]
    # The whole frame has no inner edge: a box across its edge is a detection.
    detector = MediaPipeHandDetector(device="cpu", score_threshold=0.5)
    scores = np.zeros(len(detector.anchors), np.float32)
    decoded = np.zeros((len(detector.anchors), 18), np.float32)
    scores[0], decoded[0, :4] = 0.9, (-0.05, 0.40, 0.10, 0.60)
    found = detector._postprocess([(decoded, scores, detector.rois(1920, 1080)[0])], 1920, 1080)
    assert len(found) == 1 and found.boxes[0, 0] < 0


def test_training_samples_are_drawn_from_the_views_and_leave_cut_hands_unlabelled():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    hands = np.zeros((2, 21, 2), np.float32)
    hands[0] = np.linspace((200, 200), (320, 320), 21)  # in the top-left tiles only
    hands[1] = np.linspace((1400, 700), (1700, 1000), 21)
    views = MediaPipeHandDetector(device="cpu", tile_size=0.5).rois(1920, 1080)
    config = FineTuneSettings()
    rng = np.random.default_rng(5)
    seen_tile, seen_cut = False, False
    for _ in range(60):
        patch, points = _detector_sample(frame, hands, rng, config, views)
        assert patch.shape == (INPUT_SIZE, INPUT_SIZE, 3)
        labelled = np.isfinite(points).all(axis=-1)
        assert labelled.any(axis=-1).all()  # a hand wholly outside the view is not there at all
        inside = points[labelled]
        pixel = 1 / INPUT_SIZE  # a flip mirrors x to size - 1 - x
        assert ((inside >= -pixel) & (inside <= 1)).all()  # in a tile, no keypoint outside it
        seen_tile |= len(points) < 2
        seen_cut |= bool((~labelled).any())
    assert seen_tile and seen_cut
    # Without tiles the random stream, and so the sample, is the one drawn before tiles existed.
    whole_only = views[:1]
    first = _detector_sample(frame, hands, np.random.default_rng(2), config, whole_only)
    second = _detector_sample(frame, hands, np.random.default_rng(2), config, None)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_the_tile_size_is_part_of_the_prediction_cache_key():
    plain = create_backend(ModelsConfig(device="cpu"))
    tiled = create_backend(Config(models=ModelsConfig(device="cpu"),
                                   mediapipe=MediaPipeConfig(detector_tile_size=0.5)))
    assert tiled[0].tile_size == 0.5
    assert model_key(*plain) != model_key(*tiled)


@pytest.mark.parametrize("tile_samples", [False, True])
def test_a_tiled_detector_trains_on_whole_frames_unless_tile_samples_is_set(shared_data, monkeypatch,
                                                                            tmp_path, tile_samples):
    """Tiles are for finding small hands; training on them taught the gloves the pseudo-labels
    missed as background (see FineTuneSettings.tile_samples), so by default samples are whole frames."""
    from hand_pose_refiner.models.mediapipe import palm_training as training

    labelled = load_coco(shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json")[2]
    image = cv2.imread(str(labelled.path))
    frame = np.full((1080, 1920, 3), 90, np.uint8)  # large enough for tiles
    frame[:image.shape[0], :image.shape[1]] = image
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    item = CocoImage(1, tmp_path / "frame.png", labelled.hands)
    detector = MediaPipeHandDetector(device="cpu", tile_size=0.5)
    views_seen: list[int] = []
    draw = training._detector_sample

    def recording(image, hands, rng, config, views=None):
        if rng is not None:  # a training sample (the fit loss draws unaugmented whole frames)
            views_seen.append(0 if views is None else len(views))
        return draw(image, hands, rng, config, views)

    monkeypatch.setattr(training, "_detector_sample", recording)
    config = FineTuneSettings(epochs=1, batch_size=4, samples_per_image=4, tile_samples=tile_samples)
    detector.fine_tune([item], config, val_dataset=[item])
    tiles = len(detector.rois(1920, 1080))
    assert views_seen == [tiles if tile_samples else 0] * 4
