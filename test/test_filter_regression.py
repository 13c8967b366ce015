"""The filter chain gives the same results as the original implementation (fingerprints).

Speed-ups of the spatial filter, tracker and temporal filter must not change which hands are
accepted, the rejection reasons and counts, or the output keypoints and states. The reference in
``test/data/filter_reference.json`` was written by the original code (see ``filter_reference.py``);
float outputs must match bit for bit, or else their sums within 1e-6 relative (an operation order
that changed the last bits of a float64, then rounded to the float32 outputs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from filter_reference import REFERENCE, fingerprints


@pytest.fixture(scope="module")
def current(shared_data):
    return fingerprints(shared_data)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


def test_every_reference_run_is_reproduced(current, reference):
    assert sorted(current) == sorted(reference)


@pytest.mark.parametrize("name", sorted(json.loads(REFERENCE.read_text())))
def test_outputs_match_the_original_implementation(name, current, reference):
    got, want = current[name], reference[name]
    assert got["stats"] == want["stats"]
    assert got["frames_out"] == want["frames_out"]
    assert got["integers"] == want["integers"], "states, track ids, handedness or reasons differ"
    if got["floats"] != want["floats"]:
        np.testing.assert_allclose(got["sums"], want["sums"], rtol=1e-6, atol=1e-6)
