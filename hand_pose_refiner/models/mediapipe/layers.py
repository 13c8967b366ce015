"""Building blocks shared by the two MediaPipe networks.

TFLite pads 'SAME' convolutions asymmetrically (the extra row and column go after the image),
which ``nn.Conv2d(padding=...)`` cannot express; a strided convolution therefore pads explicitly
so that the port computes exactly what the original model computes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite 'SAME' padding (before, after) of one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A convolution with TFLite 'SAME' padding, also when the padding is asymmetric.

    Stride 1 with an odd kernel pads symmetrically, so it uses the fast built-in padding; only
    strided layers pad in ``forward``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=kernel_size // 2 if symmetric else 0, groups=groups)
        self._explicit = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._explicit:
            kernel, stride = self.kernel_size[0], self.stride[0]
            top, bottom = same_padding(x.shape[-2], kernel, stride)
            left, right = same_padding(x.shape[-1], kernel, stride)
            x = functional.pad(x, (left, right, top, bottom))
        return super().forward(x)
