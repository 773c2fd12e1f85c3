"""Applying a model to prepared cases: batched slices, optional flip TTA, back to the input grid.

Used by training (validation on the input grid) and prediction alike, so the numbers a
run selects its model on are computed exactly as users will get them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from flairseg.data import Prepared
from flairseg.errors import ConfigError
from flairseg.postprocess import postprocess
from flairseg.preprocess import invert_mask, invert_probability


def resolve_device(name: str) -> torch.device:
    """A torch device from 'cpu', 'cuda' or 'cuda:N', refusing CUDA where there is none."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    return torch.device(name)


@torch.inference_mode()
def predict_probabilities(model: nn.Module, inputs: np.ndarray, batch_size: int = 8, device: torch.device | None = None, tta: bool = False) -> np.ndarray:
    """(S, C, H, W) model inputs -> (S, H, W) float32 foreground probabilities, a batch of slices at a time.

    With ``tta`` the left-right flipped slices are predicted too and the probabilities averaged.
    """
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    out = np.empty((inputs.shape[0], *inputs.shape[2:]), dtype=np.float32)
    for start in range(0, inputs.shape[0], batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size])).to(device, memory_format=torch.channels_last)
        prob = torch.sigmoid(model(batch))
        if tta:
            prob = (prob + torch.sigmoid(model(batch.flip(-1))).flip(-1)) / 2
        out[start : start + batch.shape[0]] = prob[:, 0].float().cpu().numpy()
    model.train(was_training)
    return out


def segment_prepared(
    model: nn.Module,
    prepared: Prepared,
    task: str,
    threshold: float = 0.5,
    batch_size: int = 8,
    device: torch.device | None = None,
    tta: bool = False,
    with_probability: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mask (and optionally probability) on the case's own grid, postprocessed for the task."""
    prob = predict_probabilities(model, prepared.inputs, batch_size, device, tta)
    mask = postprocess(invert_mask(prob >= threshold, prepared.transform), task)
    probability = invert_probability(prob, prepared.transform) if with_probability else None
    return mask, probability
