"""Losses on logits: soft Dice over the whole batch (smoothing 1, as the paper), Dice + BCE and Dice + focal."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flairseg.config import LOSSES
from flairseg.errors import ConfigError

FOCAL_GAMMA = 2.0  # Lin et al. 2017


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice computed over every pixel of the batch at once."""
    prob = torch.sigmoid(logits).flatten()
    target = target.flatten().to(prob.dtype)
    intersection = (prob * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (prob.sum() + target.sum() + smooth)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss plus binary cross-entropy (on logits, numerically stable)."""
    return soft_dice_loss(logits, target) + F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def dice_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss plus focal loss: cross-entropy weighted by (1 - p_true)^gamma, so confident pixels count
    little.
    """
    target = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-bce)
    return soft_dice_loss(logits, target) + ((1.0 - p_true) ** FOCAL_GAMMA * bce).mean()


def loss_function(name: str):
    """The loss called ``name``: one of LOSSES."""
    if name == "dice":
        return soft_dice_loss
    if name == "dice+bce":
        return dice_bce_loss
    if name == "dice+focal":
        return dice_focal_loss
    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
