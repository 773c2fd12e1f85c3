"""The U-Net, its ensemble and their inference copies with batch normalisation folded into the convolutions."""

from __future__ import annotations

import pytest
import torch

from flairseg import checkpoint
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
    assert before.keys() == original.state_dict().keys()  # the original is untouched
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())


def test_folded_network_under_bfloat16_autocast_stays_within_its_rounding() -> None:
    original = Ensemble([_trained_unet(seed, True) for seed in range(3)]).eval()
    fast = folded(original)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = torch.sigmoid(original(x).float()), torch.sigmoid(fast(x).float())
    assert 0 < (got - expected).abs().max() < 0.05  # bfloat16 keeps 8 bits of mantissa: not bit-identical, close


def test_folded_copy_is_frozen_and_keeps_the_weight_names() -> None:
    original = _trained_unet(0, True)
    fast = folded(original)
    assert not any(p.requires_grad for p in fast.parameters())
    assert all(p.requires_grad for p in original.parameters())
    convolutions = {k for k in original.state_dict() if k.endswith(".weight") and original.state_dict()[k].dim() == 4}
    assert convolutions <= set(fast.state_dict())


def test_segmenter_runs_the_chosen_members_folded() -> None:
    released = resolve(None)
    ensemble, _ = checkpoint.load_model(released)
    whole = Segmenter(released, device="cpu", precision="fp32").model
    assert isinstance(whole, Ensemble) and len(whole.members) == 5
    one = Segmenter(released, device="cpu", precision="fp32", folds=[2]).model
    assert isinstance(one, UNet)
    for model in (whole, one):
        assert not model.training and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        # logits: on random input every member's probabilities are all near 0, alike whichever member ran
        expected = ensemble.members[2].eval()(x)
        assert torch.allclose(one(x), expected, atol=1e-3)
        assert not torch.allclose(ensemble.members[1].eval()(x), expected, atol=0.1)  # member 2, not another
