"""PCK@0.2 (box-normalised) and EPE of the default backend on ../shared/data/labelled_hands.

Runs the whole pipeline (palm detector, then landmarks on the detected hands) and scores each
labelled hand against the predicted hand closest to it; a hand that was not found scores 0.
Usage: python bench/pck_labelled_hands.py [--data DIR] [--alpha 0.2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np
import torch

from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.metrics import epe, pck
from hand_pose_refiner.models import create_backend

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "labelled_hands"
SETS = (("onehand10k/test_onehand10k.json", False), ("rhd/test_rhd.json", True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--alpha", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    detector, estimator = create_backend(ModelsConfig(device="cpu"))
    predicted, target, boxes = [], [], []
    for name, tip_first in SETS:
        for item in load_coco(args.data / name, tip_first=tip_first):
            image = read_rgb(item.path)
            hands = estimator.estimate([image], detector.detect([image]))[0]
            for k in range(len(item.hands)):
                truth = item.hands.keypoints[k]
                if len(hands):
                    error = np.nanmean(np.linalg.norm(hands.keypoints - truth, axis=-1), axis=-1)
                    guess = hands.keypoints[int(np.argmin(error))]
                else:
                    guess = np.full_like(truth, np.nan)
                hand_pck = pck(guess[None], truth[None], item.hands.boxes[k:k + 1], args.alpha)
                print(f"{name.split('/')[0]:10s} {item.path.name:10s} hands found {len(hands)}  "
                      f"PCK@{args.alpha:g} {hand_pck:.3f}  EPE {epe(guess[None], truth[None]):6.2f} px")
                predicted.append(guess)
                target.append(truth)
                boxes.append(item.hands.boxes[k])
    score = pck(np.stack(predicted), np.stack(target), np.stack(boxes), args.alpha)
    print(f"all {len(target)} hands: PCK@{args.alpha:g} = {score:.3f} (goal >= 0.9), "
          f"EPE = {epe(np.stack(predicted), np.stack(target)):.2f} px")


if __name__ == "__main__":
    main()
