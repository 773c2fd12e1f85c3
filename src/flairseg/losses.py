"""Losses on logits: soft Dice over the whole batch (smoothing 1, as the paper) and Dice + BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flairseg.errors import ConfigError

LOSSES = ("dice", "dice+bce")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice computed over every pixel of the batch at once."""
    prob = torch.sigmoid(logits).flatten()
    target = target.flatten().to(prob.dtype)
    intersection = (prob * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (prob.sum() + target.sum() + smooth)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss plus binary cross-entropy (on logits, numerically stable)."""
    return soft_dice_loss(logits, target) + F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def loss_function(name: str):
    """The loss called ``name``: 'dice' or 'dice+bce'."""
    if name == "dice":
        return soft_dice_loss
    if name == "dice+bce":
        return dice_bce_loss
    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
