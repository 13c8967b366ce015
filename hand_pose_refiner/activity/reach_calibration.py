"""The grasp-size classifier of a reach model: its weights fitted on the training people, its
temperature calibrated on people held out in turn.

Grasp size, as live: one
:class:`~hand_pose_refiner.activity.reach_size_classifier.SizeCalibration` per person, fed by
that person's reach ends in a fixed shuffled order; the classifier's weights see each
training person's size features normalised by that person's own statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hand_pose_refiner.activity.reach_data import PreparedSequence
from hand_pose_refiner.activity.reach_fit import ReachTrainSettings
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration, SizeClassifier


def _reach_end_features(
    prepared: Sequence[PreparedSequence],
) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]]:
    """Per training person: size features at the labelled reach end of each recording, sizes."""
    people: dict[str, tuple[list, list]] = {}
    for item in prepared:
        if len(item.rows) == 0:
            continue
        features, sizes = people.setdefault(item.sequence.participant, ([], []))
        features.append(item.size_features[item.end_row])
        sizes.append(item.sequence.object_size)
    return {p: (np.array(f, np.float64), np.array(y, np.int64)) for p, (f, y) in people.items()}


def _fit_softmax(
    features: npt.NDArray[np.float64], sizes: npt.NDArray[np.int64], classes: int, c: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Multinomial logistic regression (L-BFGS; L2 on the weights as scikit-learn's ``C``)."""
    x = torch.from_numpy(features)
    y = torch.from_numpy(sizes)
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, y) + (weight**2).sum() / (2 * c * len(y))
        loss.backward()
        return loss

    optimiser.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def _zscore(features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-9)


def fit_size_classifier(
    classifier: SizeClassifier,
    train: Sequence[PreparedSequence],
    settings: ReachTrainSettings,
    log: Callable[[str], None] | None = None,
) -> None:
    """Fit the size classifier on the training people, and its temperature on held-out ones.

    Weights: each training person's reach-end size features z-scored by that person's own mean
    and spread. Prior: the average of the people's means and variances. Temperature: every
    training person is held out once (inner leave-one-person-out): a classifier fitted on the
    others scores that person's reaches as a new person's would be scored (in a shuffled
    order, each normalised by the reaches before it, shrunk towards the others' prior); the
    temperature minimises the negative log-likelihood of all those held-out scores.
    """
    people = _reach_end_features(train)
    classes = classifier.weight.shape[0]

    def prior(names: Sequence[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return (
            np.mean([people[p][0].mean(axis=0) for p in names], axis=0),
            np.mean([people[p][0].var(axis=0) for p in names], axis=0),
        )

    names = sorted(people)
    features = np.concatenate([_zscore(people[p][0]) for p in names])
    sizes = np.concatenate([people[p][1] for p in names])
    weight, bias = _fit_softmax(features, sizes, classes, settings.size_c)
    mean, var = prior(names)
    held_logits, held_sizes = [], []
    for out in names if len(names) > 1 else []:
        rest = [p for p in names if p != out]
        inner = SizeClassifier(classes, features.shape[1])
        w, b = _fit_softmax(
            np.concatenate([_zscore(people[p][0]) for p in rest]),
            np.concatenate([people[p][1] for p in rest]),
            classes,
            settings.size_c,
        )
        inner_mean, inner_var = prior(rest)
        _set_size_classifier(inner, w, b, inner_mean, inner_var, settings.size_prior_reaches, 1.0)
        calibration = SizeCalibration(features.shape[1])
        x, y = people[out]
        for i in np.random.default_rng(settings.seed).permutation(len(y)):
            held_logits.append(inner.logits(inner.normalised(x[i : i + 1], calibration))[0])
            held_sizes.append(y[i])
            calibration.add(x[i])
    temperature = _fit_temperature(np.array(held_logits), np.array(held_sizes)) if held_logits else 1.0
    _set_size_classifier(classifier, weight, bias, mean, var, settings.size_prior_reaches, temperature)
    if log is not None:
        log(f"size classifier: {len(sizes)} reaches of {len(names)} people, temperature {temperature:.2f}")


def _fit_temperature(logits: npt.NDArray[np.float64], sizes: npt.NDArray[np.int64]) -> float:
    """The temperature (0.25..8, log grid) with the least negative log-likelihood."""
    best, best_nll = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.25), np.log(8.0), 121)):
        scaled = logits / temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(scaled).sum(axis=1)) - scaled[np.arange(len(sizes)), sizes]))
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def _set_size_classifier(
    classifier: SizeClassifier,
    weight: npt.NDArray[np.float64],
    bias: npt.NDArray[np.float64],
    mean: npt.NDArray[np.float64],
    var: npt.NDArray[np.float64],
    prior_reaches: float,
    temperature: float,
) -> None:
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(weight))
        classifier.bias.copy_(torch.from_numpy(bias))
        classifier.prior_mean.copy_(torch.from_numpy(mean))
        classifier.prior_var.copy_(torch.from_numpy(var))
        classifier.prior_reaches.fill_(prior_reaches)
        classifier.temperature.fill_(temperature)
