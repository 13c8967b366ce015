"""MediaPipe's full palm detection network (BlazePalm, 192x192 input) as a torch module.

The layout mirrors ``palm_detection_full.tflite`` layer for layer: a stem, five stages of
residual depthwise blocks (5x5 depthwise, 1x1 pointwise, PReLU), and a two-level feature
pyramid whose heads score and regress 2016 SSD anchors (24x24 cells x 2 at stride 8, 12x12 x 6
at stride 16). Keeping it a plain ``nn.Module`` makes it trainable with any torch optimiser.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import cast

import torch
from torch import nn
from torch.nn import functional

from hand_pose_refiner.models.mediapipe.layers import Conv2dSame

INPUT_SIZE = 192
NUM_ANCHORS = 2016
NUM_COORDS = 18  # box (x, y, w, h) + 7 palm keypoints (x, y)
NUM_PALM_KEYPOINTS = 7
# The layers after the backbone: the feature pyramid and the score and box heads.
HEADS = ("up12", "fpn12", "cls12", "reg12", "up24", "fpn24", "cls24", "reg24")
KEPT_HEADS = "kept_heads"


class PalmBlock(nn.Module):
    """Residual block: 5x5 depthwise + 1x1 pointwise, added to the (pooled, zero-padded) input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = Conv2dSame(in_channels, in_channels, 5, stride, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.act = nn.PReLU(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        if self.stride == 2:
            x = functional.max_pool2d(x, 2)
        if self.extra_channels:
            x = functional.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(y.add_(x))  # y is the convolution's fresh output: add in place

    def weight_layers(self) -> list[nn.Module]:
        return [self.depthwise, self.pointwise, self.act]


def _stage(in_channels: int, out_channels: int, repeats: int, downsample: bool) -> nn.Sequential:
    blocks: list[nn.Module] = [PalmBlock(in_channels, in_channels) for _ in range(repeats)]
    if downsample:
        blocks.append(PalmBlock(in_channels, out_channels, stride=2))
    return nn.Sequential(*blocks)


class Upsample(nn.Module):
    """x2 bilinear upsampling (half-pixel centres, as TFLite's RESIZE_BILINEAR), 1x1 conv, PReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.act(self.conv(x))


class PalmDetectorNet(nn.Module):
    """Image batch ``(B, 3, 192, 192)``, RGB in 0..1 -> anchor regressions and score logits.

    Returns ``(regressions, logits)`` shaped ``(B, 2016, 18)`` and ``(B, 2016)``; regressions are
    in input pixels relative to each anchor centre (see :mod:`.anchors`).

    After :meth:`keep_heads`, the net also holds a frozen copy of its heads as they were then
    (``kept_heads``); :meth:`all_outputs` evaluates both sets on one backbone pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dSame(3, 32, 5, stride=2)
        self.stem_act = nn.PReLU(32)
        self.stage96 = _stage(32, 64, 4, downsample=True)  # 96x96 -> 48x48
        self.stage48 = _stage(64, 128, 4, downsample=True)  # -> 24x24
        self.stage24 = _stage(128, 256, 4, downsample=True)  # -> 12x12
        self.stage12 = _stage(256, 256, 4, downsample=False)
        self.down12 = PalmBlock(256, 256, stride=2)  # -> 6x6
        self.stage6 = _stage(256, 256, 4, downsample=False)
        self.up12 = Upsample(256, 256)
        self.fpn12 = _stage(256, 256, 2, downsample=False)
        self.cls12 = nn.Conv2d(256, 6, 1)
        self.reg12 = nn.Conv2d(256, 6 * NUM_COORDS, 1)
        self.up24 = Upsample(256, 128)
        self.fpn24 = _stage(128, 128, 2, downsample=False)
        self.cls24 = nn.Conv2d(128, 2, 1)
        self.reg24 = nn.Conv2d(128, 2 * NUM_COORDS, 1)
        self.kept_heads: nn.ModuleDict | None = None

    def keep_heads(self) -> None:
        """Keep a frozen copy of the current heads next to the (then retrained) own ones."""
        self.kept_heads = nn.ModuleDict(copy.deepcopy(self.own_heads()))
        self.kept_heads.requires_grad_(False)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The backbone's three feature maps (24x24, 12x12, 6x6) the heads read."""
        x = self.stem_act(self.stem(x))
        x = self.stage96(x)
        x = self.stage48(x)
        skip24 = self.stage24[:-1](x)
        skip12 = self.stage12(self.stage24[-1](skip24))
        return skip24, skip12, self.stage6(self.down12(skip12))

    def head_outputs(self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                     heads: Mapping[str, nn.Module] | nn.ModuleDict) -> tuple[torch.Tensor, torch.Tensor]:
        skip24, skip12, x = features
        p12 = heads["fpn12"](skip12 + heads["up12"](x))
        p24 = heads["fpn24"](skip24 + heads["up24"](p12))
        logits = torch.cat([_flatten(heads["cls24"](p24), 1), _flatten(heads["cls12"](p12), 1)], dim=1)
        regressions = torch.cat([_flatten(heads["reg24"](p24), NUM_COORDS),
                                 _flatten(heads["reg12"](p12), NUM_COORDS)], dim=1)
        return regressions, logits[..., 0]

    def own_heads(self) -> dict[str, nn.Module]:
        """The heads trained with the net (not the kept ones), by name."""
        return {name: getattr(self, name) for name in HEADS}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head_outputs(self.features(x), self.own_heads())

    def all_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Own and kept heads' outputs, concatenated along the anchors (4032 with kept heads)."""
        features = self.features(x)
        regressions, logits = self.head_outputs(features, self.own_heads())
        if self.kept_heads is None:
            return regressions, logits
        kept_regressions, kept_logits = self.head_outputs(features, self.kept_heads)
        return torch.cat([regressions, kept_regressions], dim=1), torch.cat([logits, kept_logits], dim=1)

    def weight_layers(self) -> list[nn.Module]:
        """Layers with weights, in the order of the TFLite graph's operators."""
        layers: list[nn.Module] = [self.stem, self.stem_act]
        for stage in (self.stage96, self.stage48, self.stage24, self.stage12):
            layers += _block_layers(stage)
        layers += self.down12.weight_layers()
        layers += _block_layers(self.stage6)
        layers += [self.up12.conv, self.up12.act]
        layers += _block_layers(self.fpn12)
        layers += [self.cls12, self.reg12, self.up24.conv, self.up24.act]
        layers += _block_layers(self.fpn24)
        layers += [self.cls24, self.reg24]
        return layers


def _block_layers(stage: nn.Module) -> list[nn.Module]:
    """The weight layers of a stage of :class:`PalmBlock` s, in order."""
    return [layer for block in stage.children() for layer in cast(PalmBlock, block).weight_layers()]


def _flatten(x: torch.Tensor, values: int) -> torch.Tensor:
    """``(B, A*values, H, W)`` -> ``(B, H*W*A, values)`` in TFLite's (row, column, anchor) order."""
    batch = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(batch, -1, values)
