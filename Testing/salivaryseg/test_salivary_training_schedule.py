"""V-Net learning-rate schedule: linear warm-up, then cosine decay (known values)."""

import math

import pytest

from RadiologyAICommonLib.errors import RadiologyAIError
from SalivarySegLib.training import TrainingParameters, _lr_factor


def test_warmup_then_cosine():
    factor = _lr_factor(40, 3)
    assert [factor(i) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # after the warm-up: cosine from 1 to the floor 0.05 over the remaining 37 epochs
    assert factor(3 + 37 // 2) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (37 // 2) / 37)))
    values = [factor(i) for i in range(3, 40)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] > 0.05


def test_without_warmup_matches_torch_cosine():
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.05)
    factor = _lr_factor(10, 0)
    for index in range(10):
        assert factor(index) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-9)
        optimizer.step()
        reference.step()


def test_warmup_capped_for_short_runs_and_validated():
    factor = _lr_factor(2, 3)  # at most epochs - 1 warm-up epochs: the last epoch trains at the peak
    assert factor(0) == pytest.approx(0.5) and factor(1) == pytest.approx(1.0)
    assert _lr_factor(1, 3)(0) == pytest.approx(1.0)
    with pytest.raises(RadiologyAIError, match="warmup"):
        TrainingParameters(warmup_epochs=-1).validate()


def test_selection_window_validated():
    assert TrainingParameters().selection_window >= 1
    with pytest.raises(RadiologyAIError, match="selection window"):
        TrainingParameters(selection_window=0).validate()
