"""Training lowers the loss; the activity subcommands run end to end on a tiny synthetic dataset."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hand_pose_refiner.activity.dataset import WindowSet, labelled_windows
from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.synthetic import SyntheticSettings, generate_recording
from hand_pose_refiner.activity.training import (
    TrainSettings,
    evaluate,
    evaluation_from_predictions,
    train_activity_model,
)
from hand_pose_refiner.cli import main
from hand_pose_refiner.config import ActivityConfig, Config
from hand_pose_refiner.errors import ModelError

TINY = {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 5}


@pytest.fixture(autouse=True)
def quiet_filters():
    logger = logging.getLogger("hand_pose_refiner.filters")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def windows() -> WindowSet:
    config = Config()
    settings = SyntheticSettings(clips_per_class=1, noise=(0.0, 0.02), missing=(0.0, 0.1))
    sets = []
    for seed in (12, 13):
        recording, segments = generate_recording(seed, settings)
        sets.append(labelled_windows(recording.frames(), segments, config, stride_frames=4))
    return WindowSet.concatenate(sets)


def test_training_lowers_the_loss(windows):
    config = Config().activity
    settings = TrainSettings(epochs=6, batch_size=32, learning_rate=5e-3, threads=1, **TINY)
    model, history = train_activity_model(windows, config, settings, log=None)
    assert len(history.losses) == 6 and all(np.isfinite(history.losses))
    assert history.losses[-1] < 0.7 * history.losses[0]
    result = evaluate(model, windows)
    assert result.top1 > 0.5  # on its own training windows; chance is 1/6
    assert not model.training


def test_training_refuses_mismatched_or_empty_data(windows):
    config = ActivityConfig(class_names=("a", "b"))
    with pytest.raises(ModelError, match="labelled with"):
        train_activity_model(windows, config, TrainSettings(epochs=1), log=None)
    empty = WindowSet.empty(Config().activity.class_names, 32, 7)
    with pytest.raises(ModelError, match="no labelled windows"):
        train_activity_model(empty, Config().activity, TrainSettings(epochs=1), log=None)


def test_evaluation_counts():
    truth, predicted = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    result = evaluation_from_predictions(truth, predicted, ("a", "b", "c"))
    assert result.top1 == pytest.approx(3 / 5)
    assert result.per_class_recall == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert result.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_synth_train_and_eval_commands(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["synth-activity", "--out", str(data), "--subjects", "12", "13",
                 "--clips-per-class", "1"]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["labels.csv", "subject_012.npz", "subject_013.npz"]
    header = (data / "labels.csv").read_text().splitlines()[0]
    assert header == "source,start_s,end_s,hand,label"

    checkpoint = tmp_path / "model" / "activity.safetensors"
    assert main(["train-activity", str(data / "labels.csv"), "--out", str(checkpoint), "--epochs", "2",
                 "--threads", "1", "--train-stride", "8"]) == 0
    out = capsys.readouterr().out
    assert "labelled training windows" in out and "epoch 2/2" in out
    assert checkpoint.is_file() and [p.name for p in checkpoint.parent.iterdir()] == ["activity.safetensors"]
    model = ActivityModel.load(checkpoint, Config().activity)
    assert model.class_names == Config().activity.class_names

    report = tmp_path / "eval"
    assert main(["eval-activity", str(data / "labels.csv"), "--checkpoint", str(checkpoint),
                 "--out", str(report)]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "recall per class" in out
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["windows"] > 0 and 0.0 <= metrics["top1"] <= 1.0
    assert np.array(metrics["confusion"]).sum() == metrics["windows"]
    assert (report / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_refuses_a_checkpoint_for_other_classes(tmp_path, capsys):
    checkpoint = ActivityModel(("idle", "hold"), window_frames=32, **TINY).save(tmp_path / "m.safetensors")
    labels = tmp_path / "labels.csv"
    labels.write_text("source,start_s,end_s,hand,label\nx.npz,0,1,any,idle\n")
    assert main(["eval-activity", str(labels), "--checkpoint", str(checkpoint), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "['idle', 'hold']" in error and "['idle', 'reach', 'grasp', 'screw', 'insert', 'hold']" in error
    assert main(["eval-activity", str(labels), "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
