"""Inference precision: bfloat16 where the hardware has it, float32 on request, same masks within a voxel's worth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flairseg.errors import ConfigError, WeightsError
from flairseg.inference import InferenceOptions, predict_probabilities, resolve_device, resolve_precision
from flairseg.io import read_case, sample_case_path
from flairseg.metrics import case_metrics
from flairseg.predict import Segmenter
from flairseg.released_models import resolve


def test_resolve_precision() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if native else None)
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision("fp16", cpu)


def test_bfloat16_masks_match_float32_on_the_sample_case() -> None:
    case = read_case(sample_case_path(), masks="required")
    model = resolve(None)
    # one member of the released ensemble: the same arithmetic at a fifth of the time
    fp32, bf16 = (Segmenter(model, precision=p, folds=[0])(case, with_probability=True) for p in ("fp32", "bf16"))
    fp32_mask, fp32_prob, bf16_mask, bf16_prob = fp32.mask, fp32.probability, bf16.mask, bf16.probability
    assert fp32_prob is not None and bf16_prob is not None and bf16_prob.dtype == np.float32
    assert not np.array_equal(fp32_prob, bf16_prob)  # bfloat16 did run
    assert np.abs(bf16_prob - fp32_prob).max() < 0.1
    assert case_metrics("sample", bf16_mask, fp32_mask).dice > 0.99
    assert (
        abs(case_metrics("sample", bf16_mask, case.mask).dice - case_metrics("sample", fp32_mask, case.mask).dice)
        < 0.005
    )


def test_cuda_device_names_are_checked_against_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one CUDA device: cuda and cuda:0 pass; cuda:1 and malformed names are one-line refusals, not torch's,
    naming the devices there are."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError) as refused:
        resolve_device("cuda:1")
    assert str(refused.value) == "device 'cuda:1' requested but this machine has 1 CUDA device (cuda:0)"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(ConfigError) as refused:
        resolve_device("cuda:4")
    assert str(refused.value) == "device 'cuda:4' requested but this machine has 4 CUDA devices (cuda:0 .. cuda:3)"
    for name in ("cudafoo", "cuda:x", "cuda:-1", "cuda:0,1"):
        with pytest.raises(ConfigError, match="unknown device"):
            resolve_device(name)


class _Diverged(torch.nn.Module):
    """A network whose weights overflow: NaN logits for every pixel."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.full_like(batch[:, :1], float("nan"))


def test_nan_probabilities_are_refused_not_thresholded_into_empty_masks() -> None:
    inputs = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(WeightsError, match="answers NaN probabilities"):
        predict_probabilities(_Diverged(), inputs, InferenceOptions(batch_size=2, device=torch.device("cpu")))
