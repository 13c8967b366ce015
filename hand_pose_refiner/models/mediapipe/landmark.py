"""MediaPipe's full hand landmark network (224x224 rotated hand crop) as a torch module.

The layout mirrors ``hand_landmark_full.tflite``: an inverted-residual (MobileNetV2-style)
backbone with ReLU6, global average pooling and four linear heads: 21 x (x, y, z) landmarks in
crop pixels, hand presence, handedness and 21 x 3 world landmarks in metres.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import nn

from hand_pose_refiner.models.mediapipe.layers import Conv2dSame

INPUT_SIZE = 224

# (input channels, expanded channels, output channels, depthwise kernel, stride) per block.
_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (16, 64, 24, 3, 2),
    (24, 144, 24, 3, 1),
    (24, 144, 40, 5, 2),
    (40, 240, 40, 5, 1),
    (40, 240, 80, 3, 2),
    (80, 480, 80, 3, 1),
    (80, 480, 80, 3, 1),
    (80, 480, 112, 5, 1),
    (112, 672, 112, 5, 1),
    (112, 672, 112, 5, 1),
    (112, 672, 192, 5, 2),
    (192, 1152, 192, 5, 1),
    (192, 1152, 192, 5, 1),
    (192, 1152, 192, 5, 1),
)


class LandmarkOutput(NamedTuple):
    """Raw network outputs for a batch of ``B`` crops."""

    landmarks: torch.Tensor  # (B, 21, 3): x, y in crop pixels (0..224), z relative depth
    presence_logit: torch.Tensor  # (B,)
    handedness_logit: torch.Tensor  # (B,): sigmoid = probability of MediaPipe's "Left"
    world_landmarks: torch.Tensor  # (B, 21, 3) metres, origin near the hand centre


def _conv_relu6(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                depthwise: bool = False) -> nn.Sequential:
    groups = in_channels if depthwise else 1
    # In place: the clamp then reuses the convolution's fresh output instead of writing a second
    # activation map (a third of the CPU time at batch 2); autograd allows it after a convolution.
    return nn.Sequential(Conv2dSame(in_channels, out_channels, kernel, stride, groups),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (ReLU6), depthwise (ReLU6), linear 1x1 projection, skip when shapes agree."""

    def __init__(self, in_channels: int, expanded: int, out_channels: int, kernel: int,
                 stride: int) -> None:
        super().__init__()
        self.expand = _conv_relu6(in_channels, expanded, 1)
        self.depthwise = _conv_relu6(expanded, expanded, kernel, stride, depthwise=True)
        self.project = nn.Conv2d(expanded, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return y.add_(x) if self.residual else y  # y is a fresh tensor: add in place

    def weight_layers(self) -> list[nn.Module]:
        return [self.expand[0], self.depthwise[0], self.project]


class HandLandmarkNet(nn.Module):
    """Crop batch ``(B, 3, 224, 224)``, RGB in 0..1 -> :class:`LandmarkOutput`."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_relu6(3, 24, 3, stride=2)
        self.first_depthwise = _conv_relu6(24, 24, 3, depthwise=True)
        self.first_project = nn.Conv2d(24, 16, 1)
        self.blocks = nn.Sequential(*(InvertedResidual(*spec) for spec in _BLOCKS))
        self.last_expand = _conv_relu6(192, 1152, 1)
        self.last_depthwise = _conv_relu6(1152, 1152, 3, depthwise=True)
        self.handedness = nn.Linear(1152, 1)
        self.presence = nn.Linear(1152, 1)
        self.landmarks = nn.Linear(1152, 63)
        self.world_landmarks = nn.Linear(1152, 63)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_project(self.first_depthwise(self.stem(x)))
        x = self.blocks(x)
        x = self.last_depthwise(self.last_expand(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> LandmarkOutput:
        features = self.features(x)
        batch = features.shape[0]
        return LandmarkOutput(
            landmarks=self.landmarks(features).reshape(batch, 21, 3),
            presence_logit=self.presence(features)[:, 0],
            handedness_logit=self.handedness(features)[:, 0],
            world_landmarks=self.world_landmarks(features).reshape(batch, 21, 3),
        )

    def weight_layers(self) -> list[nn.Module]:
        """Layers with weights, in the order of the TFLite graph's operators."""
        layers: list[nn.Module] = [self.stem[0], self.first_depthwise[0], self.first_project]
        for block in self.blocks.children():
            layers += cast(InvertedResidual, block).weight_layers()
        layers += [self.last_expand[0], self.last_depthwise[0],
                   self.handedness, self.presence, self.landmarks, self.world_landmarks]
        return layers
