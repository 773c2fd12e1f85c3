"""The U-Net, its ensemble and their inference copies with batch normalisation folded into the convolutions."""

from __future__ import annotations

import pytest
import torch

from flairseg.model import Ensemble, UNet, folded
from flairseg.predict import Segmenter
from flairseg.released_models import resolve


def _trained_unet(seed: int, batch_norm: bool) -> UNet:
    """A small U-Net with non-trivial weights and batch-norm statistics (a few training-mode passes)."""
    torch.manual_seed(seed)
    net = UNet(in_channels=3, features=4, depth=3, batch_norm=batch_norm)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for _ in range(3):
            net(torch.randn(2, 3, 32, 32) * 2 + 1)
    return net.eval()


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_folded_network_computes_what_the_original_computes(members: int, batch_norm: bool) -> None:
    nets = [_trained_unet(seed, batch_norm) for seed in range(members)]
    original = (nets[0] if members == 1 else Ensemble(nets)).eval()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    fast = folded(original)
    assert type(fast) is type(original) and not fast.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        expected, got = torch.sigmoid(original(x)), torch.sigmoid(fast(x))
        fast.to(memory_format=torch.channels_last)
        channels_last = torch.sigmoid(fast(x.to(memory_format=torch.channels_last)))
    assert got.shape == expected.shape == (5, 1, 32, 32)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(channels_last, expected, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())  # the original is untouched


def test_segmenter_runs_the_released_ensemble_folded() -> None:
    for folds, members in ((None, 5), ([2], 1)):
        model = Segmenter(resolve(None), device="cpu", folds=folds).model
        assert len(model.members) == members if isinstance(model, Ensemble) else members == 1
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
