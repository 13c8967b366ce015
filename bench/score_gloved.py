"""True and false hands of a refinement run on the gloved glovebox stills, per round.

Reads the accepted hands of every round's evaluation (``RUN/iter*/eval/predictions.jsonl``, the
hands the report's overlays draw), or of a replay folder (``OUT/predictions.jsonl``: a run's kept
models replayed on the stills; ``--split`` says which half it read), and matches each one to the
by-eye judgements in ``bench/data/gloved_stills_judgements.json`` (regions judged a hand or not a
hand). Prints, per round, the frames with a true hand and the frames with a false one among the gloved stills
(every one shows a hand) — of the tuning half and of the test half separately (alternate stills
of each view; a run with ``refinement.split`` trains on one half only), and of all of them where
both halves were replayed — and lists the accepted hands no judgement covers, for a person to
look at (and add to the file): a new round can find a hand no earlier one found.

    .venv/bin/python bench/score_gloved.py runs/gloved [--json]

The scoring is :mod:`hand_pose_refiner.refinement.scoring`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)

from hand_pose_refiner.refinement.scoring import load_judgements, score_run
from hand_pose_refiner.refinement.tuning_test_split import SPLITS

JUDGEMENTS = Path(__file__).resolve().parent / "data" / "gloved_stills_judgements.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hags_gloved_assembly"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a refine run folder (RUN/iter*/eval) or a replay folder")
    parser.add_argument("--data", type=Path, default=DATA, help="the hags_gloved_assembly folder")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--split", choices=("all", *SPLITS), default="all",
                        help="a replay folder: the --split it was made with (a run folder says it itself)")
    args = parser.parse_args()
    judgements = load_judgements(JUDGEMENTS)
    scores = {half: score_run(args.run, judgements, args.data, half, args.split) for half in ("", *SPLITS)}
    if not scores[""]:
        sys.exit(f"{args.run}: no iter*/eval/predictions.jsonl or predictions.jsonl")
    both = all(score.frames for half in SPLITS for score in scores[half].values())
    shown = {half or "all": rounds for half, rounds in scores.items()
             if (half and any(score.frames for score in rounds.values())) or (not half and both)}
    if args.json:
        print(json.dumps({half: {name: score.as_dict() for name, score in rounds.items()}
                          for half, rounds in shown.items()}, indent=1))
        return
    print("stills  round   frames  true (side+top)      false (of them without a true hand)  unjudged")
    for half, rounds in shown.items():
        for name, score in rounds.items():
            print(f"{half:7} {name:7} {score.frames:6}  {score.table_row()}")
    for name, score in scores[""].items():
        for hand in score.unjudged:
            print(f"unjudged {name}: {hand}")


if __name__ == "__main__":
    main()
