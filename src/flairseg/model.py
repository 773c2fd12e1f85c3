"""The U-Net of Buda et al. (2019) and its PyTorch port, with named stages, returning logits.

``enc1``..``encN`` (two 3x3 convolutions each, then 2x2 max pooling before the next
stage), ``bottleneck``, ``decN``..``dec1`` (2x2 transposed convolution halving the
channels, concatenation with the encoder map of the same size, two 3x3 convolutions),
``head`` (1x1 convolution to one channel). The sigmoid lives in the loss and the predictor.
:class:`Ensemble` averages several U-Nets in probability and stands wherever one U-Net does;
:func:`folded` makes either faster for inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels_in, out_channels, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """2-D U-Net: ``depth`` encoder levels of ``features * 2**i`` channels and a bottleneck.

    Args:
        in_channels: modalities x neighbouring slices (3 for both of the paper's tasks).
        features: channels of the first level (32 in the paper).
        depth: number of encoder/decoder levels (4 in the paper).
        batch_norm: batch normalisation after every convolution (the port) or none (the paper).
    """

    def __init__(self, in_channels: int = 3, features: int = 32, depth: int = 4, batch_norm: bool = False) -> None:
        super().__init__()
        self.depth = depth
        widths = [features * 2**level for level in range(depth + 1)]
        channels = in_channels
        for level in range(1, depth + 1):
            self.add_module(f"enc{level}", _double_conv(channels, widths[level - 1], batch_norm))
            channels = widths[level - 1]
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = _double_conv(widths[depth - 1], widths[depth], batch_norm)
        for level in range(depth, 0, -1):
            self.add_module(f"up{level}", nn.ConvTranspose2d(widths[level], widths[level - 1], kernel_size=2, stride=2))
            self.add_module(f"dec{level}", _double_conv(2 * widths[level - 1], widths[level - 1], batch_norm))
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, 1, H, W) logits; H and W must be multiples of 2**depth."""
        skips = []
        for level in range(1, self.depth + 1):
            x = getattr(self, f"enc{level}")(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for level in range(self.depth, 0, -1):
            x = getattr(self, f"up{level}")(x)
            x = getattr(self, f"dec{level}")(torch.cat([x, skips[level - 1]], dim=1))
        return self.head(x)


class Ensemble(nn.Module):
    """U-Nets averaged in probability (e.g. the models of the k cross-validation folds).

    ``forward`` returns the logit of the mean probability, so an ensemble stands wherever one
    U-Net does: prediction, flip TTA, thresholds, ONNX export.
    """

    def __init__(self, members: Sequence[UNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, 1, H, W) logits of the members' mean probability."""
        probability = torch.stack([torch.sigmoid(member(x).float()) for member in self.members]).mean(dim=0)
        return torch.logit(probability, eps=1e-6)

    def subset(self, indices: Sequence[int]) -> nn.Module:
        """The chosen members: one U-Net for one index, else a smaller ensemble."""
        chosen = [self.members[i] for i in indices]
        return chosen[0] if len(chosen) == 1 else Ensemble(chosen)


def folded(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference with each batch normalisation folded into the convolution before it.

    The same function in float32 (to its rounding; under bfloat16 autocast the folded weights round
    differently, within bfloat16's precision) in fewer passes over memory: under bfloat16 autocast
    every batch normalisation otherwise runs in float32 between two conversions. The copy is frozen
    (no gradients), for inference only.
    """
    copy = deepcopy(model).eval().requires_grad_(False)
    for block in copy.modules():
        if not isinstance(block, nn.Sequential):
            continue
        for i in range(len(block) - 1):
            if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                block[i + 1] = nn.Identity()
    return copy
