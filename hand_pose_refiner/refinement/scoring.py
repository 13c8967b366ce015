"""True and false hands of a refinement run on stills a person has judged by eye.

A judgements file (JSON, ``{"images": {"VIEW/gloved/NAME": {"hands": [box, ...],
"not_hands": [box, ...]}}}``, boxes ``[x0, y0, x1, y1]`` in pixels) marks, per still, the regions
that are a hand and those that are not. Each hand a replay accepted (``predictions.jsonl``) is
matched to the judged region its keypoint box overlaps most (at least :data:`MIN_IOU`), or left
unjudged for a person to look at. A frame counts as true when one of its hands matches a hand, as
false when one matches a region judged not a hand. The stills are the gloved glovebox stills'
layout: ``DATA/VIEW/gloved/*`` for each view of :data:`VIEWS`, numbered as replay numbers them.

Each still belongs to a half, tuning or test
(:func:`~hand_pose_refiner.refinement.tuning_test_split.split_of`: alternate stills in name
order, the halves a recipe's ``split`` trains on); a score can be restricted to one half, so that
settings chosen on the tuning half are reported on the test half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hand_pose_refiner.hands import box_iou, boxes_from_keypoints
from hand_pose_refiner.refinement.image_folder_reader import image_files
from hand_pose_refiner.refinement.tuning_test_split import SPLITS, split_of, split_offset

VIEWS = ("side_view", "top_view")
# A hand matches the judged region it overlaps most when their keypoint boxes overlap this much.
MIN_IOU = 0.2

Judgements = dict[str, dict[str, list[list[float]]]]
# How a replay read each view's folder: (stride, offset) of its source images (all: (1, 0)).
Sampling = dict[str, tuple[int, int]]


def load_judgements(path: Path) -> Judgements:
    """The judged regions of each still, by ``VIEW/gloved/NAME``."""
    return json.loads(Path(path).read_text())["images"]


def stills(data: Path) -> dict[str, list[str]]:
    """Each view's gloved stills in the order replay numbers them (natural: J_GL2 before J_GL10)."""
    return {view: [path.name for path in image_files(data / view / "gloved")] for view in VIEWS}


def keypoint_box(keypoints: list[list[float | None]]) -> list[float]:
    """The tight box of an accepted hand's keypoints (as ``predictions.jsonl`` writes them)."""
    points = np.array([[np.nan if v is None else v for v in point] for point in keypoints], float)
    return boxes_from_keypoints(points)[0].tolist()


def judge(box: list[float], regions: dict[str, list[list[float]]]) -> str:
    """``"hand"``, ``"not_hand"`` or ``"unjudged"`` for an accepted hand's keypoint box."""
    best, label = MIN_IOU, "unjudged"
    for kind in ("hands", "not_hands"):
        for overlap in box_iou(box, regions[kind])[0] if regions[kind] else ():
            if overlap >= best:
                best, label = overlap, "hand" if kind == "hands" else "not_hand"
    return label


@dataclass
class RoundScore:
    """One round's frames with a true hand, with a false hand, and the hands nobody judged."""

    frames: int = 0
    true_frames: int = 0
    false_frames: int = 0
    false_only_frames: int = 0
    per_view: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIEWS, 0))
    unjudged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"frames": self.frames, "true_frames": self.true_frames,
                "true_rate": self.true_frames / self.frames if self.frames else 0.0,
                "false_frames": self.false_frames,
                "false_rate": self.false_frames / self.frames if self.frames else 0.0,
                "frames_with_only_false_hands": self.false_only_frames,
                "true_frames_per_view": self.per_view, "unjudged": self.unjudged}

    def table_row(self) -> str:
        """One table row's figures: true frames (side + top), false frames (those without a true
        hand) and the hands nobody has judged."""
        side, top = (self.per_view[view] for view in VIEWS)
        frames = max(self.frames, 1)
        return (f"{self.true_frames:3} {self.true_frames / frames:6.1%} ({side}+{top})    "
                f"{self.false_frames:3} {self.false_frames / frames:6.1%} ({self.false_only_frames})"
                f"                  {len(self.unjudged)}")


def score_predictions(predictions: Path, judgements: Judgements, data: Path, half: str = "",
                      sampling: Sampling | None = None) -> RoundScore:
    """Score one replay's ``predictions.jsonl`` against the judgements (gloved stills only).

    ``half`` (``tuning`` or ``test``) counts only that half's stills; ``sampling`` says how the
    replay read each view's folder when it did not read every image (a split run's targets)."""
    names = stills(data)
    score = RoundScore()
    for line in predictions.read_text().splitlines():
        row = json.loads(line)
        view = next((v for v in VIEWS if f"{v}/gloved" in row["input"].replace("\\", "/")), None)
        if view is None:
            continue  # a green-screen folder or another input
        stride, offset = (sampling or {}).get(view, (1, 0))
        position = offset + row["frame"] * stride
        if half and split_of(position) != half:
            continue
        name = f"{view}/gloved/{names[view][position]}"
        score.frames += 1
        boxes = [keypoint_box(hand["keypoints"]) for hand in row["filtered"]]
        labels = [judge(box, judgements[name]) for box in boxes]
        for box, label in zip(boxes, labels, strict=True):
            if label == "unjudged":
                score.unjudged.append(f"{name} {[round(v) for v in box]}")
        if "hand" in labels:
            score.true_frames += 1
            score.per_view[view] += 1
        if "not_hand" in labels:
            score.false_frames += 1
            score.false_only_frames += "hand" not in labels
    return score


def run_sampling(run: Path) -> Sampling:
    """How a refine run read each view's stills as targets (from its ``state.json``); a plain
    replay folder, or a run on whole folders, reads every image."""
    state = run / "state.json"
    if not state.is_file():
        return {}
    targets = json.loads(state.read_text()).get("options", {}).get("targets", [])
    return {view: (int(spec.get("stride", 1)), int(spec.get("offset", 0)))
            for spec in targets for view in VIEWS if f"{view}/gloved" in str(spec["path"]).replace("\\", "/")}


def score_run(run: Path, judgements: Judgements, data: Path, half: str = "",
              replay_split: str = "all") -> dict[str, RoundScore]:
    """Each round's score (``iterK`` -> its ``eval/predictions.jsonl`` scored), in round order;
    empty when the run has no evaluated round. ``half``: only that half's stills. A replay
    folder (``run/predictions.jsonl``) is scored as one round named ``replay``; ``replay_split``
    is the ``--split`` it was made with (a run folder says it in its ``state.json``)."""
    sampling = run_sampling(run)
    if replay_split in SPLITS and not sampling:
        sampling = {view: (2, split_offset(replay_split)) for view in VIEWS}
    if (run / "predictions.jsonl").is_file():
        return {"replay": score_predictions(run / "predictions.jsonl", judgements, data, half, sampling)}
    rounds = sorted(run.glob("iter*/eval/predictions.jsonl"),
                    key=lambda path: int(path.parent.parent.name.removeprefix("iter")))
    return {path.parent.parent.name: score_predictions(path, judgements, data, half, sampling)
            for path in rounds}
