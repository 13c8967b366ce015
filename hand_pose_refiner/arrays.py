"""Whole-array truth tests for the tiny arrays of one frame (21 keypoints, a few hands).

``ndarray.all()`` and ``.any()`` go through numpy's generic ufunc reduction, about 0.65 us per
call on this project's CPU; ``np.count_nonzero`` answers the same question in about 0.17 us. The
filters ask it some 25 times per frame, which is a tenth of their whole budget. Same semantics:
an element is true when it is non-zero (NaN included), as for ``all()`` and ``any()``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def all_set(values: npt.NDArray[np.generic]) -> bool:
    """``bool(values.all())``, faster on small arrays."""
    return bool(np.count_nonzero(values) == values.size)


def any_set(values: npt.NDArray[np.generic]) -> bool:
    """``bool(values.any())``, faster on small arrays."""
    return bool(np.count_nonzero(values) > 0)


def vector_lengths(vectors: npt.NDArray[np.floating], keepdims: bool = False) -> npt.NDArray[np.floating]:
    """Lengths of 2D vectors (last axis of size 2) as ``numpy.linalg.norm`` computes them.

    ``sqrt(x*x + y*y)``: the same values as ``np.sqrt(np.square(v).sum(axis=-1))`` (a sum of two
    terms rounds once, in either order), not ``np.hypot``'s, which may differ in the last bit. The
    two columns are added directly, skipping the reduction, which on a keypoint array costs
    several times an element-wise operation.
    """
    squares = np.square(vectors)
    if keepdims:
        return np.sqrt(squares[..., :1] + squares[..., 1:])
    return np.sqrt(squares[..., 0] + squares[..., 1])
