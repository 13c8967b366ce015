"""The small-array helpers give exactly what the numpy expressions they replace give."""

from __future__ import annotations

import numpy as np
import pytest

from hand_pose_refiner.arrays import all_set, any_set, vector_lengths


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-300, 1e-3, 1.0, 1e3, 1e200])
def test_vector_lengths_equal_the_square_root_of_the_summed_squares(dtype, scale):
    rng = np.random.default_rng(0)
    with np.errstate(over="ignore"):
        vectors = (rng.standard_normal((50, 21, 2)) * scale).astype(dtype)
    vectors[0, :3] = [[np.nan, 1.0], [np.inf, -np.inf], [-0.0, 0.0]]
    with np.errstate(all="ignore"):
        expected = np.sqrt(np.square(vectors).sum(axis=-1))
        expected_kept = np.sqrt(np.square(vectors).sum(axis=-1, keepdims=True))
        lengths, kept = vector_lengths(vectors), vector_lengths(vectors, keepdims=True)
    assert lengths.dtype == expected.dtype and kept.shape == expected_kept.shape
    np.testing.assert_array_equal(lengths, expected)
    np.testing.assert_array_equal(kept, expected_kept)


def test_all_set_and_any_set_follow_all_and_any():
    cases = (np.zeros(3), np.ones(3), np.array([0.0, np.nan]), np.array([], bool), np.eye(2, dtype=bool))
    for values in cases:
        assert all_set(values) == bool(values.all())
        assert any_set(values) == bool(values.any())
