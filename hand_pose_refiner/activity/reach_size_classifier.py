"""Grasp size: a calibrated linear classifier over one person's normalised size features.

Why size is not a third head of the reach network (:mod:`~hand_pose_refiner.activity.reach_model`):
measured leave-one-subject-out on the RtG recordings, a size head learnt across people tops out
near 0.6 top-1 at the end of the reach, because camera distance, hand size and grip style differ
more between people than the hand differs between a 2.5 and a 7.5 cm cube. Normalised by the
*same person's* other reaches, the same 2D aperture and position measures give over 0.8. So the
size classifier is a linear softmax over
:class:`~hand_pose_refiner.activity.reach_features.SizeFeatures` z-scored by a
:class:`SizeCalibration`: running statistics of the size features at the ends of this person's
earlier reaches (found by the network's own phase output, no labels), shrunk towards the
training people's statistics while few reaches have been seen. Its logits are divided by a
temperature fitted on held-out training people, so that a confidence of 0.8 is right about
80 % of the time. This assumes one person per recogniser (a cell's worker) who grasps a mix of
sizes; :meth:`~hand_pose_refiner.activity.reach.ReachRecognizer.reset` starts a new person.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hand_pose_refiner.activity.reach_features import NUM_SIZE_FEATURES


class SizeCalibration:
    """One person's running statistics of the size features at the ends of their reaches.

    :meth:`normalise` z-scores a size feature vector by the mean and variance of the reaches
    :meth:`add`-ed so far, each shrunk towards the training people's average (``prior_mean``,
    ``prior_var``) as if ``prior_reaches`` reaches had shown exactly that: with none seen yet,
    the vector is scored as an average person's; after a dozen it is this person's. Only the
    person's unlabelled poses feed it (the reach ends the recogniser detected itself).
    """

    def __init__(self, size: int = NUM_SIZE_FEATURES) -> None:
        self.count = 0
        self.total = np.zeros(size)
        self.squares = np.zeros(size)

    def add(self, size_features: np.ndarray) -> None:
        values = np.asarray(size_features, np.float64)
        self.count += 1
        self.total += values
        self.squares += values**2

    def normalise(
        self, size_features: np.ndarray, prior_mean: np.ndarray, prior_var: np.ndarray, prior_reaches: float
    ) -> np.ndarray:
        weight = prior_reaches + self.count
        mean = (prior_reaches * prior_mean + self.total) / weight
        spread = self.squares - 2 * mean * self.total + self.count * mean**2  # sum of (x - mean)^2
        var = (prior_reaches * prior_var + np.maximum(spread, 0.0)) / weight
        return (np.asarray(size_features, np.float64) - mean) / np.sqrt(var + 1e-12)


class SizeClassifier(nn.Module):
    """Linear softmax over person-normalised size features, with a fitted temperature.

    Its numbers are buffers, so they travel in the reach checkpoint: the weights, the training
    people's average size-feature mean and variance at the end of a reach (the calibration's
    prior), how many reaches that prior counts as, and the temperature.
    """

    weight: Tensor
    bias: Tensor
    prior_mean: Tensor
    prior_var: Tensor
    prior_reaches: Tensor
    temperature: Tensor

    def __init__(self, classes: int = 3, size: int = NUM_SIZE_FEATURES) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(classes, size))
        self.register_buffer("bias", torch.zeros(classes))
        self.register_buffer("prior_mean", torch.zeros(size))
        self.register_buffer("prior_var", torch.ones(size))
        self.register_buffer("prior_reaches", torch.tensor(3.0))
        self.register_buffer("temperature", torch.tensor(1.0))

    def normalised(self, size_features: np.ndarray, calibration: SizeCalibration | None) -> np.ndarray:
        """``(N, NUM_SIZE_FEATURES)`` raw features -> z-scored by the person's statistics."""
        calibration = calibration or SizeCalibration(self.weight.shape[1])
        return calibration.normalise(
            size_features,
            self.prior_mean.double().numpy(),
            self.prior_var.double().numpy(),
            float(self.prior_reaches),
        )

    def logits(self, normalised: np.ndarray) -> np.ndarray:
        """Uncalibrated logits of already normalised features (``(N, S)``)."""
        weight, bias = self.weight.double().numpy(), self.bias.double().numpy()
        return np.asarray(normalised, np.float64) @ weight.T + bias

    def probabilities(self, size_features: np.ndarray, calibration: SizeCalibration | None) -> np.ndarray:
        """``(N, NUM_SIZE_FEATURES)`` raw features -> ``(N, S)`` calibrated probabilities."""
        logits = self.logits(self.normalised(size_features, calibration)) / float(self.temperature)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
