"""kd_loss against values worked out by hand (math module only, no torch functions)."""

import math

import pytest

torch = pytest.importorskip("torch", reason="training extra")

from edgekd.train.distill import kd_loss  # noqa: E402


def _softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def _by_hand(s_rows, t_rows, ys, alpha, T):  # type: ignore[no-untyped-def]
    kl = ce = 0.0
    n = len(s_rows)
    for s, t, y in zip(s_rows, t_rows, ys, strict=False):
        ps = _softmax([v / T for v in s])
        pt = _softmax([v / T for v in t])
        kl += sum(p * (math.log(p) - math.log(q)) for p, q in zip(pt, ps, strict=False))
        if y >= 0:
            ce += -math.log(_softmax(s)[y])
    return alpha * T * T * kl / n + (1 - alpha) * ce / n


S = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
TL = [[3.0, 2.0, 1.0], [0.0, 0.0, 4.0]]


def test_golden_value() -> None:
    got = kd_loss(torch.tensor(S), torch.tensor(TL), torch.tensor([2, 0]), alpha=0.5, temperature=2.0).item()
    assert got == pytest.approx(_by_hand(S, TL, [2, 0], 0.5, 2.0), rel=1e-6)
    assert got == pytest.approx(0.95942986, rel=1e-6)  # the same number, written down once


def test_no_teacher_is_cross_entropy() -> None:
    got = kd_loss(torch.tensor(S), None, torch.tensor([2, 0])).item()
    assert got == pytest.approx(_by_hand(S, TL, [2, 0], 0.0, 1.0), rel=1e-6)


def test_unlabelled_rows_get_only_the_kd_term() -> None:
    got = kd_loss(torch.tensor(S), torch.tensor(TL), torch.tensor([2, -1]), alpha=0.5, temperature=2.0).item()
    assert got == pytest.approx(_by_hand(S, TL, [2, -1], 0.5, 2.0), rel=1e-6)


def test_teacher_gets_no_gradient() -> None:
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(TL, requires_grad=True)
    kd_loss(s, t, torch.tensor([2, 0])).backward()
    assert s.grad is not None and t.grad is None


def test_equal_logits_leave_only_cross_entropy() -> None:
    z = torch.tensor(S)
    ce = kd_loss(z, None, torch.tensor([2, 0])).item()
    assert kd_loss(z, z.clone(), torch.tensor([2, 0]), alpha=0.7).item() == pytest.approx(0.3 * ce, rel=1e-6)


def test_known_negatives_drop_the_keyword_mass() -> None:
    """Labels (kw0, kw1, _unknown_, _silence_): a row labelled _unknown_ keeps the teacher's unknown/silence split and
    loses its keyword mass; keyword rows and unlabelled transfer rows (-1) keep the teacher's logits."""
    from edgekd.train.distill import drop_keyword_mass

    t = torch.tensor([[2.0, 1.0, 0.5, -1.0], [2.0, 1.0, 0.5, -1.0], [2.0, 1.0, 0.5, -1.0], [3.0, 0.0, 0.0, 1.0]])
    y = torch.tensor([2, 0, -1, 3])
    out = drop_keyword_mass(t, y, torch.tensor([2, 3]))
    assert torch.equal(out[1:3], t[1:3])
    for row in (0, 3):
        p = _softmax([v / 3.0 for v in out[row].tolist()])
        assert sum(p[:2]) < 1e-4
        assert p[2] / p[3] == pytest.approx(math.exp((t[row, 2] - t[row, 3]).item() / 3.0), rel=1e-5)
