"""True and false hands of a refinement run on the gloved glovebox stills, per round.

Reads the accepted hands of every round's evaluation (``RUN/iter*/eval/predictions.jsonl``, the
hands the report's overlays draw) and matches each one to the by-eye judgements in
``bench/data/gloved_stills_judgements.json`` (regions judged a hand or not a hand). Prints, per
round, the frames with a true hand and the frames with a false one, of the 56 gloved stills
(every one shows a hand), and lists the accepted hands no judgement covers, for a person to look
at (and add to the file): a new round can find a hand no earlier one found.

    .venv/bin/python bench/score_gloved.py runs/gloved [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run the checkout's code

from hand_pose_refiner.hands import box_iou, boxes_from_keypoints
from hand_pose_refiner.refinement.inputs import image_files

JUDGEMENTS = Path(__file__).resolve().parent / "data" / "gloved_stills_judgements.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hags_gloved_assembly"
VIEWS = ("side_view", "top_view")
# A hand matches the judged region it overlaps most when their keypoint boxes overlap this much.
MIN_IOU = 0.2


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


def score_predictions(predictions: Path, judgements: dict[str, dict[str, list[list[float]]]],
                      data: Path) -> RoundScore:
    """Score one replay's ``predictions.jsonl`` against the judgements (gloved stills only)."""
    names = stills(data)
    score = RoundScore()
    for line in predictions.read_text().splitlines():
        row = json.loads(line)
        view = next((v for v in VIEWS if f"{v}/gloved" in row["input"].replace("\\", "/")), None)
        if view is None:
            continue  # a green-screen folder or another input
        name = f"{view}/gloved/{names[view][row['frame']]}"
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


def counts(score: RoundScore) -> str:
    """One table row's figures: true frames (side + top), false frames (those without a true
    hand) and the hands nobody has judged."""
    side, top = (score.per_view[view] for view in VIEWS)
    return (f"{score.true_frames:3} {score.true_frames / score.frames:6.1%} ({side}+{top})    "
            f"{score.false_frames:3} {score.false_frames / score.frames:6.1%} ({score.false_only_frames})"
            f"                  {len(score.unjudged)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a refine run folder (RUN/iter*/eval)")
    parser.add_argument("--data", type=Path, default=DATA, help="the hags_gloved_assembly folder")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    judgements = json.loads(JUDGEMENTS.read_text())["images"]
    rounds = sorted(args.run.glob("iter*/eval/predictions.jsonl"),
                    key=lambda path: int(path.parent.parent.name.removeprefix("iter")))
    if not rounds:
        sys.exit(f"{args.run}: no iter*/eval/predictions.jsonl")
    scores = {path.parent.parent.name: score_predictions(path, judgements, args.data) for path in rounds}
    if args.json:
        print(json.dumps({name: score.as_dict() for name, score in scores.items()}, indent=1))
        return
    print("round   frames  true (side+top)      false (of them without a true hand)  unjudged")
    for name, score in scores.items():
        print(f"{name:7} {score.frames:6}  {counts(score)}")
    for name, score in scores.items():
        for hand in score.unjudged:
            print(f"unjudged {name}: {hand}")


if __name__ == "__main__":
    main()
