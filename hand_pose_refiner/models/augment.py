"""Training-time image changes for hand models, backend-independent.

Geometry is applied by the caller as part of its own crop (one resampling per sample keeps the
image sharp and fast); this module draws the random geometry, and changes appearance: colour,
blur and a glove-like recolouring of skin, which is the gap between bare-hand training data and
the gloved glovebox footage the models must handle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from hand_pose_refiner.models.base import AugmentSettings

# Glove colours (RGB) seen in glovebox and lab work: white, off-white, nitrile blue, black, green.
GLOVE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (235, 235, 230), (205, 200, 185), (70, 110, 200), (40, 40, 45), (90, 150, 90),
)


@dataclass(frozen=True)
class Geometry:
    """A random similarity transform and mirror for one sample."""

    scale: float
    rotation: float  # radians
    flip: bool
    shift: tuple[float, float]  # fraction of the crop size


def draw_geometry(rng: np.random.Generator, config: AugmentSettings, max_shift: float = 0.05) -> Geometry:
    low, high = config.scale_range
    return Geometry(
        scale=float(math.exp(rng.uniform(math.log(low), math.log(high)))),
        rotation=math.radians(float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))),
        flip=bool(rng.random() < config.flip_probability),
        shift=(float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))),
    )


def skin_mask(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Likely skin pixels of an RGB image (a classic YCrCb box, smoothed)."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    mask = cv2.inRange(ycrcb, (40, 133, 77), (255, 173, 127))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask > 0


def recolour_skin(image: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Paint skin in a glove colour, keeping the shading so that fingers stay visible."""
    mask = skin_mask(image)
    if not mask.any():
        return image
    colour = np.asarray(GLOVE_COLOURS[rng.integers(len(GLOVE_COLOURS))], np.float32)
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    shading = np.clip(luma / max(float(luma[mask].mean()), 1.0), 0.4, 1.6)[..., None]
    glove = np.clip(colour * shading + rng.normal(0, 4, image.shape), 0, 255)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)[..., None]
    return (image * (1 - soft) + glove * soft).astype(np.uint8)


def jitter_colour(image: npt.NDArray[np.uint8], rng: np.random.Generator,
                  config: AugmentSettings) -> npt.NDArray[np.uint8]:
    """Random brightness, contrast, saturation and hue."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue_deg, config.hue_deg) / 2) % 180
    hsv[..., 1] *= 1 + rng.uniform(-config.saturation, config.saturation)
    rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = rgb.mean()
    rgb = (rgb - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    rgb *= 1 + rng.uniform(-config.brightness, config.brightness)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def change_appearance(image: npt.NDArray[np.uint8], rng: np.random.Generator,
                      config: AugmentSettings) -> npt.NDArray[np.uint8]:
    """Glove recolouring, colour jitter and blur, each with its configured probability."""
    if rng.random() < config.glove_probability:
        image = recolour_skin(image, rng)
    if rng.random() < config.colour_probability:
        image = jitter_colour(image, rng, config)
    if rng.random() < config.blur_probability:
        sigma = float(rng.uniform(0.3, config.max_blur_sigma))
        image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)
    return image
