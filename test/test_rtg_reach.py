"""The reach recogniser on the real reach-to-grasp recordings: loader, bad stamps, model, training."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from hand_pose_refiner.activity.reach import ReachDecider, ReachRecognizer, ReachSettings
from hand_pose_refiner.activity.reach_calibration import fit_size_classifier
from hand_pose_refiner.activity.reach_checkpoint import FORMAT, checkpoint_format
from hand_pose_refiner.activity.reach_data import prepare_sequence
from hand_pose_refiner.activity.reach_evaluation import predict_sequence, score_predictions
from hand_pose_refiner.activity.reach_features import (
    GRASP_MOVE,
    IDLE,
    NUM_FEATURES,
    NUM_SIZE_FEATURES,
    NUM_SIZE_QUANTITIES,
    REACH,
    SizeFeatures,
)
from hand_pose_refiner.activity.reach_fit import ReachTrainSettings
from hand_pose_refiner.activity.reach_model import ReachModel, ReachOutput
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration
from hand_pose_refiner.activity.rtg_dataset import (
    UNLABELLED,
    StampCounts,
    check_stamps,
    load_rtg_dataset,
)
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import ActivityCheckpointError, ActivityLabelError
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.skeleton import OBSERVED


@pytest.fixture(scope="module")
def sequences(rtg_sequences):
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    return rtg_sequences


@pytest.fixture(scope="module")
def by_name(sequences):
    return {s.name: s for s in sequences}


def test_loader_reads_every_sequence_with_its_labels(sequences):
    assert len(sequences) == 715
    assert sorted({s.participant for s in sequences}) == [f"P{i}" for i in range(1, 9)]
    assert np.bincount([s.object_size for s in sequences]).tolist() == [239, 238, 238]
    assert sum(len(s) for s in sequences) == 246_727
    for s in sequences[:50]:
        reach = s.phase == REACH
        assert reach.any()
        assert np.all(s.time_s[reach] >= s.onset_s) and np.all(s.time_s[reach] <= s.end_s)
        assert np.all(s.phase[s.time_s < s.onset_s] == IDLE)


def test_zero_keypoints_are_missing_not_the_image_corner(sequences):
    # In these recordings OpenPose lost the whole hand when it lost any point (1,932 frames).
    lost = [(s, int(i)) for s in sequences
            for i in np.flatnonzero(~np.isfinite(s.keypoints[..., 0]).all(axis=1))]
    assert len(lost) == 1932
    assert all(np.isnan(s.keypoints[i]).all() and not s.scores[i].any() for s, i in lost)
    assert not any((s.keypoints == 0).all(axis=-1).any() for s in sequences)  # no point left at (0, 0)
    usable_lost = [(s, i) for s, i in lost if s.usable[i]]
    assert all(len(s.frame(i)) == 0 for s, i in usable_lost[:200])  # a lost hand is no hand
    sequence, index = next((s, i) for s in sequences for i in range(len(s)) if s.usable[i])
    frame = sequence.frame(index)
    assert len(frame) == 1 and np.all(frame.keypoint_states[0] == OBSERVED)
    points = frame.keypoints[0]
    assert np.allclose(frame.boxes[0], [*points.min(axis=0), *points.max(axis=0)])


def test_stamp_problems_of_the_recordings_are_counted(sequences, by_name):
    total = sum((s.stamp_counts for s in sequences), StampCounts())
    assert total == StampCounts(repeated=571, corrupt=1, gaps=345)
    corrupt = by_name["P4_S_07"]
    assert corrupt.time_s[-1] < 0 and not corrupt.usable[-1] and corrupt.phase[-1] == UNLABELLED
    assert corrupt.stamp_counts.corrupt == 1
    # every usable stamp is strictly after the previous usable one
    for s in sequences:
        assert np.all(np.diff(s.time_s[s.usable]) > 0)


def test_check_stamps_rules():
    usable, counts = check_stamps(np.array([0.0, 0.016, 0.016, 0.1, -5.0, np.nan, 0.09, 0.12]))
    assert usable.tolist() == [True, True, False, True, False, False, False, True]
    assert counts == StampCounts(repeated=1, corrupt=3, gaps=1)


def test_loader_refuses_a_folder_without_the_data(tmp_path):
    with pytest.raises(ActivityLabelError, match=r"right_hand\.npz"):
        load_rtg_dataset(tmp_path)


def _with_repeats_and_gaps(sequences):
    return next(s for s in sequences if s.stamp_counts.repeated and s.stamp_counts.gaps)


def test_bad_stamps_of_real_frames_pass_the_online_filters_without_a_crash(sequences, by_name):
    """Repeated stamps, gaps over 50 ms and the corrupt negative stamp, on the real frames."""
    config = Config()
    for sequence in (by_name["P4_S_07"], _with_repeats_and_gaps(sequences)):
        prepared = prepare_sequence(sequence, config)
        assert len(prepared.rows) > 0.9 * sequence.usable.sum()
        assert np.all(sequence.usable[prepared.rows])  # unusable frames are never fed
        assert np.all(np.diff(prepared.rows) > 0)
        # the filters never saw a non-increasing stamp: the loader took those out
        assert "non_monotonic_stamp" not in prepared.filter_stats["temporal_filter"]["rejections"]
    # fed raw, a repeated stamp is dropped and counted by the filter chain itself
    sequence = _with_repeats_and_gaps(sequences)
    repeat = int(np.flatnonzero(np.diff(sequence.time_s) == 0)[0]) + 1
    pipeline = PoseFilterPipeline(config, FilterMode.ONLINE)
    for index in range(repeat + 1):
        pipeline.push(sequence.frame(index))
    assert pipeline.stats.temporal.as_dict()["rejections"]["non_monotonic_stamp"] == 1


def test_predictions_cover_every_frame_including_unusable_ones(by_name):
    sequence = by_name["P4_S_07"]
    prepared = prepare_sequence(sequence, Config())
    prediction = predict_sequence(_untrained_model(), prepared)
    assert prediction.phase.shape == (len(sequence),)
    last_row = prepared.rows[-1]
    # the corrupt last frame holds the decision of the last usable one
    assert prediction.phase[-1] == prediction.phase[last_row]
    scores = score_predictions([prediction])
    assert scores.frames == len(sequence) - 1  # the unlabelled frame is not scored
    assert scores.stamp_counts.corrupt == 1


def _untrained_model() -> ReachModel:
    torch.manual_seed(0)
    return ReachModel(hidden=16, levels=3).eval()


def test_streaming_steps_equal_the_whole_sequence_pass():
    torch.manual_seed(1)
    model = ReachModel(hidden=24, levels=4).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        model.size_classifier.weight.normal_()
    features = rng.normal(size=(80, NUM_FEATURES)).astype(np.float32)
    sizes = rng.normal(size=(80, NUM_SIZE_FEATURES)).astype(np.float32)
    with torch.no_grad():
        phase, time_to_grasp = model(torch.from_numpy(features)[None])
    state = None
    calibration = SizeCalibration()
    for t, row in enumerate(features):
        output, state = model.step(row, state, sizes[t], calibration)
        assert np.allclose(output.phase, torch.softmax(phase[0, t], 0).numpy(), atol=1e-5)
        assert np.allclose(output.size, model.size_classifier.probabilities(sizes[t : t + 1], calibration)[0])
        assert output.time_to_grasp_s == pytest.approx(float(time_to_grasp[0, t]), abs=1e-5)
    assert not np.allclose(output.size, 1 / 3)
    assert np.allclose(model.step(features[0], None)[0].size, 1 / 3)  # no size features: uniform


def test_every_new_track_starts_from_one_initial_state_as_the_model_would_make_it():
    """The recogniser computes a new track's state once; each track's outputs are those of the
    model stepping from a fresh state (``step(..., None)``), bit for bit."""
    torch.manual_seed(2)
    model = ReachModel(hidden=16, levels=3).eval()
    rng = np.random.default_rng(1)
    frames = []
    for index in range(12):
        keypoints = rng.uniform(100, 300, size=(2, 21, 2)).astype(np.float32)
        frames.append(FrameHands(stamp_ns=index * 33_000_000, image_width=640, image_height=480,
                                 keypoints=keypoints, track_ids=np.array([1, 2 + index // 6], np.int64)))
    recognizer = ReachRecognizer(model)
    results = [result for frame in frames for result in recognizer.push(frame)]
    assert recognizer._new_track_state() is recognizer._new_track_state()
    reference = ReachRecognizer(model)
    reference._new_track_state = lambda: None  # type: ignore[method-assign]  # step() makes each one
    expected = [result for frame in frames for result in reference.push(frame)]
    assert [r.track_id for r in results] == [r.track_id for r in expected] and len(results) == 24
    assert all(np.array_equal(a.phase_scores, b.phase_scores) and a.phase == b.phase
               and np.array_equal(a.time_to_grasp_s, b.time_to_grasp_s, equal_nan=True)
               for a, b in zip(results, expected, strict=True))


def test_size_calibration_shrinks_a_new_persons_statistics_towards_the_prior():
    rng = np.random.default_rng(3)
    prior_mean, prior_var = np.zeros(4), np.ones(4)
    person = rng.normal(5.0, 2.0, size=(400, 4))
    calibration = SizeCalibration(4)
    x = np.array([7.0, 5.0, 3.0, 9.0])
    # no reach seen yet: scored as an average (training) person
    assert np.allclose(calibration.normalise(x, prior_mean, prior_var, 3.0), x)
    for row in person[:2]:
        calibration.add(row)
    # two reaches and a prior worth three: the weighted mean and spread, exactly
    mean = (3 * prior_mean + person[:2].sum(0)) / 5
    var = (3 * prior_var + ((person[:2] - mean) ** 2).sum(0)) / 5
    assert np.allclose(calibration.normalise(x, prior_mean, prior_var, 3.0), (x - mean) / np.sqrt(var))
    for row in person[2:]:
        calibration.add(row)
    # many reaches: the person's own z-score
    z = calibration.normalise(x, prior_mean, prior_var, 3.0)
    assert np.allclose(z, (x - person.mean(0)) / person.std(0), atol=0.05)


def test_size_features_hold_a_missing_point_and_keep_a_one_second_window():
    features = SizeFeatures()
    points = np.zeros((21, 2))
    points[[0, 5, 9, 13, 17], :] = [[100, 100], [110, 80], [100, 78], [90, 80], [80, 84]]
    points[4] = [130, 90]
    valid = np.ones(21, bool)
    apertures = []
    for k in range(120):  # 2 s at 60 fps: the thumb tip opens, then closes
        points[8] = [130 + (k if k < 60 else 120 - k), 60]
        out = features.push(10**9 + round(k * 1e9 / 60), points, valid, (320, 240))
        apertures.append(np.hypot(*(points[4] - points[8])) / 240)
        assert out.shape == (NUM_SIZE_FEATURES,) and np.isfinite(out).all()
        assert out[0] == pytest.approx(apertures[-1], rel=1e-5)  # thumb-index, image heights
        # maximum over the last second, mean over the last quarter second (both ends included)
        assert out[NUM_SIZE_QUANTITIES] == pytest.approx(max(apertures[-61:]), rel=1e-5)
        assert out[2 * NUM_SIZE_QUANTITIES] == pytest.approx(np.mean(apertures[-16:]), rel=1e-4)
    missing = valid.copy()
    missing[8] = False  # index tip lost: its apertures keep their last values
    held = features.push(10**9 + 3 * 10**9, points, missing, (320, 240))
    assert held[0] == pytest.approx(out[0]) and held[5] == pytest.approx(out[5])
    mirrored = SizeFeatures().push(0, points, valid, (320, 240), mirror=True)
    plain = SizeFeatures().push(0, points, valid, (320, 240))
    assert np.allclose(mirrored[:13], plain[:13]) and mirrored[13] == pytest.approx(320 / 240 - plain[13])


def test_decider_says_the_size_only_after_the_reach_end_it_detected():
    decider = ReachDecider(("S", "M", "L"), ReachSettings())
    confident = np.array([0.05, 0.9, 0.05], np.float32)
    phases = [IDLE] * 3 + [REACH] * 5 + [GRASP_MOVE] * 4
    results = []
    for k, phase in enumerate(phases):
        scores = np.full(3, 0.05, np.float32)
        scores[phase] = 0.9
        results.append(decider.decide(10**9 + k * 16_000_000, ReachOutput(scores, confident, 0.3)))
    assert [r.onset for r in results].count(True) == 1
    ends = [k for k, r in enumerate(results) if r.reach_end]
    assert ends == [phases.index(GRASP_MOVE)]  # once, where the network first says grasp
    assert all(r.grasp_size == "" for r in results[: ends[0]])
    assert all(r.grasp_size == "M" for r in results[ends[0] :])
    # confident only later than size_window_s after the reach end: nothing is said
    decider = ReachDecider(("S", "M", "L"), ReachSettings(size_window_s=0.1))
    unsure = np.array([0.3, 0.4, 0.3], np.float32)
    for k, phase in enumerate(phases + [GRASP_MOVE] * 10):
        scores = np.full(3, 0.05, np.float32)
        scores[phase] = 0.9
        late = k > len(phases) + 5  # about 0.2 s after the reach end
        output = ReachOutput(scores, confident if late else unsure, 0.3)
        result = decider.decide(10**9 + k * 16_000_000, output)
        assert result.grasp_size == ""


def test_model_is_causal():
    model = _untrained_model()
    features = torch.randn(1, 60, NUM_FEATURES)
    changed = features.clone()
    changed[0, 40:] += 5.0
    with torch.no_grad():
        before, after = model(features)[0], model(changed)[0]
    assert torch.allclose(before[0, :40], after[0, :40])
    assert not torch.allclose(before[0, 40:], after[0, 40:])


def test_checkpoint_round_trip_and_refusals(tmp_path):
    model = _untrained_model()
    path = model.save(tmp_path / "reach.safetensors")
    assert checkpoint_format(path) == FORMAT
    loaded = ReachModel.load(path)
    assert loaded.size_names == model.size_names and loaded.receptive_field == model.receptive_field
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name])
    with pytest.raises(ActivityCheckpointError, match="not found"):
        ReachModel.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ActivityCheckpointError, match=r"junk\.safetensors"):
        ReachModel.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "x/1"})
    with pytest.raises(ActivityCheckpointError, match="format 'x/1'"):
        ReachModel.load(tmp_path / "other.safetensors")
    # a reach checkpoint from before the size classifier: refused, with what to do
    old = "hand_pose_refiner.activity.reach_tcn/1"
    save_file({"w": torch.zeros(1)}, str(tmp_path / "old.safetensors"), metadata={"format": old})
    with pytest.raises(ActivityCheckpointError, match=r"older format.*reach_tcn/1.*train-activity --rtg"):
        ReachModel.load(tmp_path / "old.safetensors")


@pytest.mark.slow
def test_the_size_classifier_travels_in_the_checkpoint(small_reach_model, tmp_path):
    loaded = ReachModel.load(small_reach_model.save(tmp_path / "reach.safetensors"))
    for name, value in small_reach_model.size_classifier.state_dict().items():
        assert torch.equal(value, loaded.size_classifier.state_dict()[name]), name
    assert loaded.size_classifier.weight.abs().sum() > 0
    assert 0.25 <= float(loaded.size_classifier.temperature) <= 8


def test_size_features_tell_the_sizes_apart_for_unseen_people(small_reach_split, one_torch_thread):
    """Leave one of the six training people out (ten reaches each, all sizes): the classifier
    fitted on the others, the person's features normalised by their own reach ends, must do far
    better than chance (1/3) at the labelled end of the reach. Fails if the size features or the
    per-person normalisation break."""
    train = small_reach_split[0]
    people = sorted({p.sequence.participant for p in train})
    right = total = 0
    for person in people:
        model = ReachModel(hidden=8, levels=1)
        fit_size_classifier(model.size_classifier, [p for p in train if p.sequence.participant != person],
                            ReachTrainSettings())
        mine = [p for p in train if p.sequence.participant == person]
        calibration = SizeCalibration()
        for p in mine:
            calibration.add(p.size_features[p.end_row])
        scores = model.size_classifier.probabilities(np.array([p.size_features[p.end_row] for p in mine]),
                                                     calibration)
        right += int((scores.argmax(1) == [p.sequence.object_size for p in mine]).sum())
        total += len(mine)
    assert right / total >= 0.6, right / total


@pytest.mark.slow
def test_a_small_model_learns_the_phases_of_unseen_people(small_reach_split, small_reach_model, tmp_path):
    test = small_reach_split[1]
    model = small_reach_model
    scores = score_predictions([predict_sequence(model, p) for p in test])
    assert scores.phase_macro_f1 > 0.75, scores.as_dict()
    assert scores.onset_missed <= 2
    # a 32-channel model from 60 recordings, median over 12 held-out ones (265 ms measured on
    # these, which span all sizes; the full leave-one-subject-out figure is 75 ms)
    assert scores.time_to_grasp_median_error_ms < 300
    # the online recogniser, fed the same filtered frames, says what the evaluation measured
    path = model.save(tmp_path / "reach.safetensors")
    recognizer = ReachRecognizer(ReachModel.load(path))
    prepared = test[0]
    sequence = prepared.sequence
    pipeline = PoseFilterPipeline(Config(), FilterMode.ONLINE)
    online = {}
    for _, frame in sequence.frames():
        for filtered in pipeline.push(frame):
            for result in recognizer.push(filtered):
                online[result.stamp_ns] = result
    offline = predict_sequence(model, prepared)
    stamps = [sequence.stamp_ns(int(row)) for row in prepared.rows]
    assert [online[s].phase for s in stamps] == offline.phase[prepared.rows].tolist()
    onsets = [float(sequence.time_s[row])
              for row, stamp in zip(prepared.rows, stamps, strict=True) if online[stamp].onset]
    assert onsets == offline.onset_times_s
    # the size scores too: same classifier, same calibration fed by the same detected reach end
    assert np.allclose([online[s].size_scores for s in stamps], offline.size_scores[prepared.rows], atol=1e-5)
    assert [online[s].reach_end for s in stamps].count(True) <= 1
    assert recognizer.calibration.count == [online[s].reach_end for s in stamps].count(True)


@pytest.mark.slow
def test_eval_activity_runs_leave_one_subject_out_on_the_recordings(shared_data, tmp_path):
    from hand_pose_refiner.cli import main

    out = tmp_path / "eval"
    data = shared_data / "hand_actions/rtg_object_size"
    code = main(["eval-activity", "--rtg", str(data), "--participants", "P2", "P3", "P4",
                 "--max-sequences", "4", "--epochs", "2", "--jobs", "2", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"] == "leave-one-subject-out"
    assert sorted(report["folds"]) == ["P2", "P3", "P4"]
    assert all(fold["sequences"] == 4 for fold in report["folds"].values())
    assert report["pooled"]["sequences"] == 12
    # spread over each person's recordings (stored L, M, S): every size is in
    assert all(sum(row) > 0 for row in report["pooled"]["size_confusion"])
    assert "size_confident_accuracy_at_end" in report["mean_of_folds"]
    assert "labelled reach end" in report["size_evaluation"]
    assert set(report["mean_of_folds"]) >= {"phase_macro_f1", "onset_median_delay_ms", "size_accuracy_at_end",
                                            "time_to_grasp_median_error_ms",
                                            "size_accuracy_by_reach_fraction"}
    for name in ("phase_confusion.png", "size_confusion.png", "size_by_reach_fraction.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_activity_wants_exactly_one_kind_of_source(shared_data, tmp_path, capsys):
    from hand_pose_refiner.cli import main

    assert main(["eval-activity", "--out", str(tmp_path)]) == 2
    assert "one of them" in capsys.readouterr().err
    assert main(["eval-activity", "labels.csv", "--rtg", str(shared_data), "--out", str(tmp_path)]) == 2
