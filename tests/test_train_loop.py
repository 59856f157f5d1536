"""The one training loop's weight average (``Schedule.ema``): what it keeps, and that a resumed run keeps the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.train.dist import DistContext
from edgekd.train.loop import Resume, Schedule, fit


class _Regression:
    """A linear model fitting a fixed random linear map: every step changes the weights."""

    title = "tiny"
    rows = 64

    def __init__(self) -> None:
        g = np.random.default_rng(7)
        self.x = torch.from_numpy(g.normal(size=(self.rows, 4)).astype(np.float32))
        self.y = self.x @ torch.from_numpy(g.normal(size=(4, 2)).astype(np.float32))

    def setup(self, model: nn.Module | None, rng: np.random.Generator, d: DistContext) -> nn.Module:
        return model if model is not None else nn.Linear(4, 2)

    def extra_parameters(self) -> list[nn.Parameter]:
        return []

    def loss(self, net: nn.Module, rows: np.ndarray, rng: np.random.Generator, d: DistContext) -> torch.Tensor:
        idx = torch.from_numpy(rows)
        return nn.functional.mse_loss(net(self.x[idx]), self.y[idx])

    def after_backward(self, d: DistContext) -> None:
        pass

    def validate(self, model: nn.Module, d: DistContext) -> dict[str, float]:
        return {"score": 0.0}  # ties: the last epoch is kept

    def fingerprint(self) -> dict[str, Any]:
        return {"tiny": 1}

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, saved: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _flat(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in m.state_dict().values()])


def test_the_kept_weights_are_the_moving_average_of_the_iterates() -> None:
    sch = Schedule(epochs=1, batch_size=8, lr=0.05, weight_decay=0.0, seed=3, threads=1)
    seen: list[torch.Tensor] = []
    raw, _ = fit(_Regression(), sch, progress=False, before_epoch=lambda m, e: seen.append(_flat(m)))
    averaged, _ = fit(_Regression(), Schedule(**{**sch.__dict__, "ema": 0.8}), progress=False)
    iterates = [*seen[1:], _flat(raw)]  # the weights after each of the 8 steps (the same run: same seed, same batches)
    assert len(iterates) == 8
    want = seen[0].clone()
    for step, w in enumerate(iterates):
        d = min(0.8, (1 + step) / (10 + step))
        want = d * want + (1 - d) * w
    assert torch.allclose(_flat(averaged), want, atol=1e-6)
    assert not torch.allclose(_flat(averaged), _flat(raw), atol=1e-3)  # the average is not the last iterate


def test_a_resumed_run_keeps_the_same_average(tmp_path: Path) -> None:
    sch = Schedule(epochs=3, batch_size=8, lr=0.05, weight_decay=0.0, seed=5, threads=1, ema=0.9)
    whole, _ = fit(_Regression(), sch, progress=False)

    def stop(model: nn.Module, epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    state = Resume(tmp_path / "state.pt")
    with pytest.raises(KeyboardInterrupt):
        fit(_Regression(), sch, progress=False, before_epoch=stop, state=state)
    assert state.path.is_file()
    again, history = fit(_Regression(), sch, progress=False, state=Resume(state.path, resume=True))
    assert history["resumed_at_steps"] == [16]
    assert torch.allclose(_flat(again), _flat(whole), atol=1e-6)


def test_a_decay_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ConfigError, match="weight-average decay"):
        fit(_Regression(), Schedule(epochs=1, batch_size=8, lr=0.05, weight_decay=0.0, ema=1.0), progress=False)


@pytest.mark.parametrize(("field", "value"), [("freq_warp", 0.5), ("eq_db", 20.5), ("ema", 1.0), ("ema", float("nan")), ("eq_db", -1.0)])
def test_a_training_option_outside_its_bounds_is_refused(field: str, value: float) -> None:
    """TrainConfig checks the bounds every command and study reads (OPTION_BOUNDS); the edge values that are in pass."""
    from edgekd.train.config import OPTION_BOUNDS, TrainConfig

    with pytest.raises(ConfigError, match=f"{field} must be a number in"):
        TrainConfig(**{field: value})
    assert TrainConfig(eq_db=20.0, freq_warp=0.0).eq_db == 20.0
    assert OPTION_BOUNDS["eq_db"].ok(20.0) and not OPTION_BOUNDS["freq_warp"].ok(0.5)
