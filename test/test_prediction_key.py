"""The prediction cache's key: each backend names the settings its predictions depend on
(``prediction_key``), and the key of a setting is the one caches made before were stored under."""

from __future__ import annotations

import pytest

from hand_pose_refiner.models.base import KEY_SETTINGS, settings_key
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.refinement.cache import model_key

# model_key of the packaged MediaPipe weights at each setting, as the prediction caches of earlier
# runs hold them: a change here makes every stored cache miss (and is then a deliberate one).
STORED_KEYS = {
    "class defaults": "9638d9c96df8842a",
    "+ tiles 0.5": "16f5975649847310",
    "+ self check (tiles off)": "2459d68508d2d07d",
    "+ surest crop, consistency 0.07": "ade89a4623454c8c",
    "+ search 0.22/0.35 (consistency off)": "ed6bc4dd67a21e4f",
    "+ presence 0.2, detector score 0.1 (no search)": "747eeb29b4a310d5",
}


def test_each_setting_keeps_the_key_caches_were_stored_under():
    detector = MediaPipeHandDetector(device="cpu", runtime="torch")
    estimator = MediaPipePoseEstimator(device="cpu", runtime="torch")
    assert not (estimator.self_check or estimator.surest_crop or estimator.consistency_check)
    keys = {"class defaults": model_key(detector, estimator)}
    detector.tile_size = 0.5
    keys["+ tiles 0.5"] = model_key(detector, estimator)
    detector.tile_size, estimator.self_check = 0.0, True
    keys["+ self check (tiles off)"] = model_key(detector, estimator)
    estimator.surest_crop, estimator.consistency_check, estimator.consistency_max_spread = True, True, 0.07
    keys["+ surest crop, consistency 0.07"] = model_key(detector, estimator)
    estimator.consistency_check, estimator.search_sizes = False, (0.22, 0.35)
    keys["+ search 0.22/0.35 (consistency off)"] = model_key(detector, estimator)
    estimator.search_sizes, estimator.min_presence, detector.score_threshold = (), 0.2, 0.1
    keys["+ presence 0.2, detector score 0.1 (no search)"] = model_key(detector, estimator)
    assert keys == STORED_KEYS


def test_the_key_names_every_key_setting_once_and_later_parts_after():
    parts = settings_key({"score_threshold": 0.5}, ["tile_size=0.5"])
    assert parts[0] == "score_threshold=0.5" and parts[-1] == "tile_size=0.5"
    assert [part.split("=")[0] for part in parts[:-1]] == list(KEY_SETTINGS)
    assert parts[1] == "min_presence=None"
    with pytest.raises(ValueError, match="add a setting as a later part"):
        settings_key({"tile_size": 0.5})


def test_predictions_of_the_openvino_runtime_are_stored_under_their_own_key():
    torch_key = model_key(MediaPipeHandDetector(device="cpu", runtime="torch"),
                          MediaPipePoseEstimator(device="cpu", runtime="torch"))
    openvino = MediaPipeHandDetector(device="cpu", runtime="openvino"), \
        MediaPipePoseEstimator(device="cpu", runtime="openvino")
    assert openvino[0].prediction_key()[-1] == openvino[1].prediction_key()[-1] == "runtime=openvino"
    assert model_key(*openvino) != torch_key == STORED_KEYS["class defaults"]
