"""The tuning and test halves of a folder of stills: what a recipe's ``split`` reads as targets,
and how the gloved-stills scorer tells the halves apart."""

from __future__ import annotations

import json

from support import REPO

from hand_pose_refiner.config import RefinementConfig
from hand_pose_refiner.refinement import report_data, report_html, scoring
from hand_pose_refiner.refinement.image_folder_reader import image_files
from hand_pose_refiner.refinement.input_spec import fingerprint
from hand_pose_refiner.refinement.inputs import count_frames, read_frames
from hand_pose_refiner.refinement.recipe import refine_options


def _targets(shared_data, split: str, stride: int = 1):
    hags = shared_data / "hags_gloved_assembly"
    recipe = RefinementConfig(targets=(str(hags / "side_view" / "gloved"), str(hags / "top_view" / "gloved"),
                                       str(shared_data / "bare_hand_clips" / "hands1.webm")),
                              stills=True, split=split, stride=stride, max_frames=0)
    return refine_options(recipe).targets


def _files_read(spec) -> list[str]:
    """The image files a spec decodes, told by their stamps ((source index + 1) / fps)."""
    files = image_files(spec.path)
    period = round(1e9 / spec.fps)
    return [files[frame.stamp_ns // period - 1].name for frame in read_frames(spec)]


def test_the_halves_are_alternate_stills_of_each_folder_and_together_all_of_them(shared_data):
    halves = {split: _targets(shared_data, split) for split in ("tuning", "test")}
    whole = _targets(shared_data, "all")
    for view in range(2):
        names = [path.name for path in image_files(whole[view].path)]
        tuning, test = (_files_read(halves[split][view]) for split in ("tuning", "test"))
        assert tuning == names[0::2] and test == names[1::2]
        assert len(tuning) == len(test) == 14
        assert [count_frames(halves[split][view]) for split in ("tuning", "test")] == [14, 14]
        assert _files_read(whole[view]) == names
    # a video target is not split: neighbouring frames are no held-out data
    assert halves["test"][2] == whole[2]
    # each half caches its decoded frames and predictions apart from the other and the whole
    assert len({fingerprint(t[0]) for t in (halves["tuning"], halves["test"], whole)}) == 3


def test_a_split_of_a_strided_recipe_halves_the_strided_images(shared_data):
    tuning, test = (_targets(shared_data, split, stride=2)[0] for split in ("tuning", "test"))
    names = [path.name for path in image_files(tuning.path)]
    assert _files_read(tuning) == names[0::4] and _files_read(test) == names[2::4]


def _hand(box: list[float]) -> dict[str, object]:
    centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    return {"keypoints": [[box[0], box[1]], [box[2], box[3]], *[centre] * 19]}


def test_a_split_run_is_scored_on_the_stills_it_read(shared_data, tmp_path):
    """A run on the test half numbers its frames 0..13; the scorer maps them back to the test
    stills through the run's state.json, and counts them only in the test half."""
    hags = shared_data / "hags_gloved_assembly"
    judgements = scoring.load_judgements(REPO / "bench" / "data" / "gloved_stills_judgements.json")
    (test_spec, *_) = _targets(shared_data, "test")
    names = scoring.stills(hags)["side_view"]
    state = {"options": {"targets": [{"path": str(test_spec.path), "stride": test_spec.stride,
                                      "offset": test_spec.offset}]}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    hand = judgements[f"side_view/gloved/{names[3]}"]["hands"][0]  # the 2nd still of the test half
    rows = [{"input": str(test_spec.path), "frame": 1, "filtered": [_hand(hand)]},
            {"input": str(test_spec.path), "frame": 0, "filtered": []}]
    evaluation = tmp_path / "iter0" / "eval"
    evaluation.mkdir(parents=True)
    (evaluation / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = scoring.score_run(tmp_path, judgements, hags, "test")["iter0"]
    assert (test.frames, test.true_frames, test.unjudged) == (2, 1, [])
    assert scoring.score_run(tmp_path, judgements, hags, "tuning")["iter0"].frames == 0
    # a replay folder of whole folders: frame k is the k-th still, halves by position
    replay = tmp_path / "replay"
    replay.mkdir()
    rows = [{"input": str(test_spec.path), "frame": k, "filtered": [_hand(hand)] if k == 3 else []}
            for k in range(len(names))]
    (replay / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_half = {half: scoring.score_run(replay, judgements, hags, half)["replay"]
               for half in ("tuning", "test")}
    assert [(s.frames, s.true_frames) for s in by_half.values()] == [(14, 0), (14, 1)]
    # a replay made with --split test numbers the test half's stills 0..13
    rows = [{"input": str(test_spec.path), "frame": 1, "filtered": [_hand(hand)]}]
    (replay / "predictions.jsonl").write_text(json.dumps(rows[0]) + "\n")
    read_test = scoring.score_run(replay, judgements, hags, "test", replay_split="test")["replay"]
    assert (read_test.frames, read_test.true_frames) == (1, 1)


def test_replay_and_refine_take_the_split_on_the_command_line(shared_data):
    import argparse

    from hand_pose_refiner.refinement.cli import add_commands, input_specs, recipe_config

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    side = str(shared_data / "hags_gloved_assembly" / "side_view" / "gloved")
    clip = str(shared_data / "bare_hand_clips" / "hands1.webm")
    replay = parser.parse_args(["replay", side, clip, "--stills", "--split", "test", "--out", "x"])
    specs = input_specs(replay)
    assert [(spec.stride, spec.offset) for spec in specs] == [(2, 1), (1, 0)]
    args = parser.parse_args(["refine", side, "--stills", "--split", "tuning", "--out", "x"])
    assert recipe_config(args).refinement.split == "tuning"
    assert parser.parse_args(["refine", side, "--out", "x"]).split is None  # the recipe file decides



def test_the_report_says_which_frames_each_input_gave_and_for_what(shared_data):
    """report.html lists every input by role with the frames read: a split run's targets are
    named as the half they are, and the other half as not read."""
    from dataclasses import asdict

    test = _targets(shared_data, "test")
    spec = {**json.loads(json.dumps(asdict(test[0]), default=str))}
    state = {"options": {"targets": [spec], "checks": [], "anchors": [],
                         "labelled": [{"path": "onehand10k.json", "tip_first": False}]},
             "steps": [{"name": "iter0/evaluate",
                        "result": {"targets": {"inputs": [{"path": spec["path"], "frames": 14}]}}}]}
    roles = report_data.input_roles(state)
    assert [(item["role"], item["frames"]) for item in roles] == [("targets", 14), ("labelled", None)]
    assert roles[0]["frames_used"] == ("every 2nd frame from the 2nd (2nd, 4th, ... in name order): "
                                       "the test half; the tuning half is not read")
    assert "never trained on" in roles[1]["use"]
    assert report_data.frames_used({**spec, "stride": 1, "offset": 0}) == "every frame"
    assert "the test half" in report_html._inputs_html(roles)
