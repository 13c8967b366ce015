"""COCO keypoint annotations <-> :class:`FrameHands`.

The COCO format is what mmpose, mmdet and pycocotools read: per annotation ``keypoints`` as a
flat list of ``x, y, v`` triples (v: 0 not labelled, 1 labelled but hidden, 2 visible) and
``bbox`` as ``x, y, width, height`` in pixels. Fields COCO has no place for (per-keypoint score
and state, handedness, track id) travel in extra annotation keys that COCO readers ignore, so a
round trip through COCO keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_refiner.errors import AnnotationError
from hand_pose_refiner.hands import FrameHands, boxes_from_keypoints
from hand_pose_refiner.skeleton import (
    BONES,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    Handedness,
    KeypointState,
    tip_first_to_base_first,
)

HAND_CATEGORY_ID = 1

# COCO visibility written for each keypoint state: interpolated points are labelled but were not
# seen; rejected and missing points are not labelled (and get 0, 0 coordinates, as COCO expects).
_VISIBILITY_OF_STATE = {
    KeypointState.OBSERVED: 2,
    KeypointState.INTERPOLATED: 1,
    KeypointState.REJECTED: 0,
    KeypointState.MISSING: 0,
}
# Foreign datasets mark labelled keypoints 1 or 2 (OneHand10K uses 1 throughout): both are labels.
_STATE_OF_VISIBILITY = {2: KeypointState.OBSERVED, 1: KeypointState.OBSERVED, 0: KeypointState.MISSING}


def hand_category() -> dict[str, Any]:
    """The COCO category of a 21-keypoint hand (skeleton 1-based, as COCO requires)."""
    return {
        "id": HAND_CATEGORY_ID,
        "name": "hand",
        "supercategory": "hand",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [[int(a) + 1, int(b) + 1] for a, b in BONES],
    }


def frame_hands_to_annotations(hands: FrameHands, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """One COCO annotation per hand; ids count up from ``first_id``.

    Keypoints that are rejected or missing are written as ``0, 0, 0``; the hand's box is written
    from ``hands.boxes`` (or from its labelled keypoints when the box is not finite).
    """
    annotations = []
    for i in range(len(hands)):
        states = hands.keypoint_states[i]
        visibility = np.array([_VISIBILITY_OF_STATE[KeypointState(s)] for s in states], np.int64)
        points = np.where(visibility[:, None] > 0, hands.keypoints[i], 0.0).astype(np.float64)
        triples = np.column_stack([points, visibility]).reshape(-1)
        box = hands.boxes[i].astype(np.float64)
        if not np.isfinite(box).all():
            labelled = points[visibility > 0]
            if labelled.size == 0:
                raise AnnotationError(f"hand {i} of image {image_id} has neither a box nor a keypoint")
            box = np.concatenate([labelled.min(axis=0), labelled.max(axis=0)])
        width, height = float(box[2] - box[0]), float(box[3] - box[1])
        annotations.append({
            "id": first_id + i,
            "image_id": image_id,
            "category_id": HAND_CATEGORY_ID,
            "iscrowd": 0,
            "bbox": [float(box[0]), float(box[1]), width, height],
            "area": width * height,
            "keypoints": [float(v) if k % 3 != 2 else int(v) for k, v in enumerate(triples)],
            "num_keypoints": int((visibility > 0).sum()),
            "score": float(hands.detection_scores[i]),
            "keypoint_scores": [float(s) for s in hands.keypoint_scores[i]],
            "keypoint_states": [int(s) for s in states],
            "handedness": Handedness(int(hands.handedness[i])).name.lower(),
            "handedness_score": float(hands.handedness_scores[i]),
            "track_id": int(hands.track_ids[i]),
        })
    return annotations


def _keypoint_triples(annotation: Mapping[str, Any]) -> np.ndarray:
    """``keypoints`` as a (21, 3) array, accepting the flat list and the list-of-triples forms."""
    raw = annotation.get("keypoints")
    try:
        triples = np.asarray(raw, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    except (TypeError, ValueError) as exc:
        size = np.asarray(raw, dtype=object).size if raw is not None else 0
        raise AnnotationError(
            f"annotation {annotation.get('id')}: 'keypoints' must hold {NUM_KEYPOINTS} x, y, v "
            f"triples ({NUM_KEYPOINTS * 3} numbers), got {size}"
        ) from exc
    return triples


def annotations_to_frame_hands(
    annotations: Sequence[Mapping[str, Any]],
    image_width: int,
    image_height: int,
    stamp_ns: int = 0,
    tip_first: bool = False,
) -> FrameHands:
    """The hands of one image from its COCO annotations.

    ``tip_first`` reorders datasets that list each finger tip first (RHD). Labelled keypoints
    (visibility 1 or 2) are OBSERVED; visibility 0 becomes NaN with state MISSING. Annotations
    written by this package carry ``keypoint_states``, which then win (INTERPOLATED, REJECTED).
    """
    if not annotations:
        return FrameHands.empty(stamp_ns, image_width, image_height)
    count = len(annotations)
    keypoints = np.full((count, NUM_KEYPOINTS, 2), np.nan, np.float32)
    states = np.full((count, NUM_KEYPOINTS), int(KeypointState.MISSING), np.uint8)
    scores = np.zeros((count, NUM_KEYPOINTS), np.float32)
    boxes = np.full((count, 4), np.nan, np.float32)
    for i, annotation in enumerate(annotations):
        triples = _keypoint_triples(annotation)
        if tip_first:
            triples = tip_first_to_base_first(triples)
        visibility = triples[:, 2].astype(np.int64)
        if not np.isin(visibility, (0, 1, 2)).all():
            raise AnnotationError(f"annotation {annotation.get('id')}: visibility must be 0, 1 or 2, "
                                  f"got {sorted(set(visibility.tolist()))}")
        labelled = visibility > 0
        keypoints[i][labelled] = triples[labelled, :2]
        states[i] = [_STATE_OF_VISIBILITY[int(v)] for v in visibility]
        if "keypoint_states" in annotation:
            states[i] = np.asarray(annotation["keypoint_states"], np.uint8)
        scores[i] = np.asarray(annotation.get("keypoint_scores", labelled.astype(np.float32)), np.float32)
        bbox = annotation.get("bbox")
        if bbox is not None:
            if len(bbox) != 4:
                raise AnnotationError(f"annotation {annotation.get('id')}: 'bbox' must be x, y, w, h")
            x, y, w, h = (float(v) for v in bbox)
            boxes[i] = (x, y, x + w, y + h)
    hands = FrameHands(
        stamp_ns, image_width, image_height, keypoints,
        keypoint_scores=scores,
        keypoint_states=states,
        boxes=boxes if np.isfinite(boxes).all() else boxes_from_keypoints(keypoints).astype(np.float32),
        detection_scores=np.array([float(a.get("score", 1.0)) for a in annotations], np.float32),
        handedness=np.array([Handedness.from_label(str(a.get("handedness", a.get("hand_type", ""))))
                             for a in annotations], np.uint8),
        handedness_scores=np.array([float(a.get("handedness_score", 1.0 if "hand_type" in a else 0.0))
                                    for a in annotations], np.float32),
        track_ids=np.array([int(a.get("track_id", -1)) for a in annotations], np.int64),
    )
    return hands


@dataclass(frozen=True)
class CocoImage:
    """One image entry of a COCO file and the hands annotated on it."""

    image_id: int
    path: Path
    hands: FrameHands


def build_coco(images: Iterable[tuple[str, FrameHands]], first_image_id: int = 1) -> dict[str, Any]:
    """A complete COCO keypoint document from ``(file_name, hands)`` pairs."""
    document: dict[str, Any] = {"images": [], "annotations": [], "categories": [hand_category()]}
    next_annotation = 1
    for image_id, (file_name, hands) in enumerate(images, start=first_image_id):
        document["images"].append({"id": image_id, "file_name": file_name,
                                   "width": hands.image_width, "height": hands.image_height})
        annotations = frame_hands_to_annotations(hands, image_id, next_annotation)
        document["annotations"].extend(annotations)
        next_annotation += len(annotations)
    return document


def load_coco(path: str | Path, images_dir: str | Path | None = None,
              tip_first: bool = False) -> list[CocoImage]:
    """Every image of a COCO keypoint file with its hands, in file order.

    Image paths are resolved against ``images_dir`` (default: the JSON file's folder).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read COCO JSON: {exc}") from exc
    for key in ("images", "annotations"):
        if not isinstance(document.get(key), list):
            raise AnnotationError(f"{path}: missing the '{key}' list")
    base = Path(images_dir) if images_dir is not None else path.parent
    by_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in document["annotations"]:
        by_image.setdefault(int(annotation["image_id"]), []).append(annotation)
    result = []
    for image in document["images"]:
        image_id = int(image["id"])
        try:
            hands = annotations_to_frame_hands(by_image.get(image_id, []), int(image["width"]),
                                               int(image["height"]), tip_first=tip_first)
        except AnnotationError as exc:
            raise AnnotationError(f"{path}: image {image_id}: {exc}") from exc
        result.append(CocoImage(image_id, base / image["file_name"], hands))
    return result
