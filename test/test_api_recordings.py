"""HandPipeline.track on a recording's path: what the live graph drops is skipped and counted."""

from __future__ import annotations

import cv2

from hand_pose_refiner import HandPipeline
from hand_pose_refiner.ros.bags import BagWriter

START_NS = 1_700_000_000_000_000_000


def test_a_repeated_stamp_in_a_bag_is_skipped_and_counted(shared_data, tmp_path):
    capture = cv2.VideoCapture(str(shared_data / "bare_hand_clips" / "hands1.webm"))
    bag = tmp_path / "camera"
    with BagWriter(bag) as writer:
        for index in range(6):
            ok, frame = capture.read()
            assert ok
            stamp = START_NS + (index if index != 3 else 2) * 33_000_000  # frame 3 repeats frame 2's stamp
            writer.write_image("/camera/image_raw", frame, "bgr8", stamp, "camera")
    capture.release()
    pipeline = HandPipeline(device="cpu")
    results = list(pipeline.track(bag))
    assert len(results) == 5
    assert [r.stamp_ns for r in results] == sorted({START_NS + i * 33_000_000 for i in (0, 1, 2, 4, 5)})
    assert pipeline.last_read_report.counts() == {"stamp not newer than the frame before": 1}
    assert sum(len(r) for r in results) >= 6  # two hands in view; the first frames wait for a 2nd hit
