"""The MediaPipe port's 'SAME' convolution: the fast paths compute exactly what TFLite pads for."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from hand_pose_refiner.models.mediapipe.layers import Conv2dSame, same_padding


def _reference(conv: Conv2dSame, x: torch.Tensor) -> torch.Tensor:
    """TFLite 'SAME': explicit zero padding (extra row and column after the image), then no padding."""
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    padded = functional.pad(x, (left, right, top, bottom))
    return functional.conv2d(padded, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("kernel", "stride", "groups", "size"), [
    (3, 2, 8, 28),   # depthwise, padding (0, 1): widened kernel
    (5, 2, 8, 28),   # depthwise, padding (1, 2): widened kernel
    (3, 2, 8, 27),   # odd size, symmetric padding (1, 1): explicit pad
    (5, 2, 8, 14),   # the last stride-2 layer of the landmark network
    (3, 2, 1, 28),   # dense stride-2 stem: explicit pad
    (5, 1, 8, 20),   # stride 1, odd kernel: built-in symmetric padding
])
def test_same_convolution_equals_explicit_padding(kernel, stride, groups, size, channels_last):
    torch.manual_seed(0)
    conv = Conv2dSame(8, 8, kernel, stride, groups=groups)
    x = torch.randn(2, 8, size, size + 2, requires_grad=True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
    inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.no_grad():  # inference: the widened-kernel form where it applies
        assert torch.equal(conv(inputs), _reference(conv, inputs))
    out = conv(inputs)  # training: the padded form, whose gradients data-parallel training checks
    expected = _reference(conv, inputs)
    assert out.shape == expected.shape == (2, 8, -(-size // stride), -(-(size + 2) // stride))
    assert torch.equal(out, expected)
    (grad_out,) = torch.autograd.grad(out.square().sum(), conv.weight)
    (grad_ref,) = torch.autograd.grad(expected.square().sum(), conv.weight)
    assert torch.equal(grad_out, grad_ref)
    assert conv.weight.shape == (8, 8 // groups, kernel, kernel)  # stored weights keep their shape
