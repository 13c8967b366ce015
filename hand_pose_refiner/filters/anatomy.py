"""Anatomical reference values for the spatial filter.

Bone lengths are expressed relative to the *palm size*: the median distance from the wrist to
the four finger MCP joints (index, middle, ring, pinky), which is robust to one misplaced MCP.

The ranges are approximate adult ranges (both sexes) of segment length / palm size, based on
the hand anthropometry of
  * T. M. Greiner, "Hand Anthropometry of U.S. Army Personnel", Technical Report
    NATICK/TR-92/011, U.S. Army Natick RD&E Center, 1991 (palm length, finger and thumb lengths);
  * A. Buryanov and V. Kotiuk, "Proportions of Hand Segments", International Journal of
    Morphology 28(3):755-758, 2010 (proportions of the phalanges of each finger);
turned into distances between joint centres as 21-keypoint models place them (the tip keypoint
is the finger tip, not the end of the distal bone) and rounded outwards. They are deliberately
wide, and the filter multiplies the maxima by ``spatial_filter.bone_ratio_tolerance`` to leave
room for a palm foreshortened in a 2D image. Minima are kept for reference but not checked: a
finger pointing at the camera may look arbitrarily short.
"""

from __future__ import annotations

import numpy as np

from hand_pose_refiner.skeleton import BONES, KEYPOINT_NAMES

# (parent keypoint, child keypoint) -> (min, max) of bone length / palm size.
_BONE_RATIO_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("wrist", "thumb_cmc"): (0.15, 0.50),
    ("thumb_cmc", "thumb_mcp"): (0.30, 0.60),
    ("thumb_mcp", "thumb_ip"): (0.25, 0.45),
    ("thumb_ip", "thumb_tip"): (0.20, 0.40),
    ("wrist", "index_mcp"): (0.85, 1.15),
    ("index_mcp", "index_pip"): (0.35, 0.55),
    ("index_pip", "index_dip"): (0.20, 0.33),
    ("index_dip", "index_tip"): (0.17, 0.30),
    ("wrist", "middle_mcp"): (0.90, 1.15),
    ("middle_mcp", "middle_pip"): (0.40, 0.60),
    ("middle_pip", "middle_dip"): (0.24, 0.36),
    ("middle_dip", "middle_tip"): (0.18, 0.30),
    ("wrist", "ring_mcp"): (0.85, 1.10),
    ("ring_mcp", "ring_pip"): (0.37, 0.55),
    ("ring_pip", "ring_dip"): (0.23, 0.35),
    ("ring_dip", "ring_tip"): (0.18, 0.30),
    ("wrist", "pinky_mcp"): (0.75, 1.05),
    ("pinky_mcp", "pinky_pip"): (0.28, 0.45),
    ("pinky_pip", "pinky_dip"): (0.15, 0.27),
    ("pinky_dip", "pinky_tip"): (0.15, 0.27),
}

# Same order as skeleton.BONES.
BONE_RATIO_MIN = np.array([_BONE_RATIO_RANGES[(KEYPOINT_NAMES[a], KEYPOINT_NAMES[b])][0] for a, b in BONES])
BONE_RATIO_MAX = np.array([_BONE_RATIO_RANGES[(KEYPOINT_NAMES[a], KEYPOINT_NAMES[b])][1] for a, b in BONES])

# Bones from the wrist to the four finger MCPs: their median is the palm size.
PALM_BONES = np.array([i for i, (a, b) in enumerate(BONES) if a == 0 and b in (5, 9, 13, 17)])

# Index MCP and pinky MCP: the width of the palm across the knuckles.
MCP_SPAN = (5, 17)
# Palm length (wrist to MCPs) per MCP span. Adult palms are 1.5-2 times as long as their knuckle
# span between the index and pinky joint centres (Greiner 1991; 1.5-2.0 on the labelled images in
# shared/data). The lower end is used, so an estimate from the span errs towards a small palm,
# the strict side: it only stands in when the wrist-to-MCP distances look foreshortened.
PALM_LENGTH_PER_MCP_SPAN = 1.5

# Finger joints checked for backward bending: PIP and DIP of index..pinky, as
# (previous keypoint, joint, next keypoint). The thumb and the MCPs are left out: MCPs normally
# hyperextend 30-45 degrees, and the thumb's joints move in another plane.
BEND_JOINTS = np.array([(base + k - 1, base + k, base + k + 1)
                        for base in (5, 9, 13, 17) for k in (1, 2)])
# A finger segment shorter than this many palm sizes gives no reliable direction in the image: a
# distal phalanx is 0.17-0.30 palm sizes long, so this is a short one foreshortened by a third or
# more (curled fingers seen from above), where a few pixels of keypoint noise turn it any way.
# Joints beside such a segment are not judged. Measured on the synthetic assembly hands
# (hand_pose_refiner.activity.synthetic, 2,845 frames): without this, 5% of clean frames were
# rejected as bent backwards; with it, none, and 2% at 0.02 palm sizes of keypoint noise.
MIN_BEND_SEGMENT = 0.12
