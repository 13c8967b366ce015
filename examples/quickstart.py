"""The hands in one image, with the Python API: python examples/quickstart.py IMAGE [CONFIG]"""

import sys

import cv2

from hand_pose_refiner import HandPipeline
from hand_pose_refiner.skeleton import Handedness

pipeline = HandPipeline(sys.argv[2] if len(sys.argv) > 2 else None)  # a config file, e.g. a deploy.yaml
image = cv2.imread(sys.argv[1])  # BGR, what HandPipeline takes by default (color="rgb" for RGB)
hands = pipeline(image)
print(f"{len(hands)} hand(s) in {sys.argv[1]}")
for keypoints, score, side in zip(hands.keypoints, hands.detection_scores, hands.handedness, strict=True):
    print(f"  {Handedness(side).name.lower()} hand, score {score:.2f}, wrist at {keypoints[0].round(1)} px")
