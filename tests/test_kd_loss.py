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


def test_label_log_prior_by_hand() -> None:
    """Shares of the labelled rows (unlabelled transfer rows, -1, do not count; a label without rows counts as one)."""
    from edgekd.train.distill import label_log_prior

    got = label_log_prior(torch.tensor([0, 0, 0, 1, -1, 0, 1, -1]), 3).tolist()
    assert got == pytest.approx([math.log(4 / 7), math.log(2 / 7), math.log(1 / 7)], rel=1e-6)


def test_balanced_objective_is_the_loss_of_the_shifted_logits() -> None:
    """With ``balance_labels`` the student's loss (KD and cross-entropy) is taken on its logits plus the training
    labels' log prior; without it, on the logits as they are."""
    import numpy as np

    from edgekd.train.config import TrainConfig
    from edgekd.train.dist import DistContext
    from edgekd.train.distill import label_log_prior
    from edgekd.train.features import FeatureSet
    from edgekd.train.kws_objective import KwsObjective

    rng = np.random.default_rng(0)
    y = np.array([0, 0, 0, 0, 0, 1, 2, 2], dtype=np.int64)
    fs = FeatureSet(rng.standard_normal((8, 5, 4)).astype(np.float16), y, np.arange(8), ("a", "b", "_unknown_"), "k")
    teacher = rng.standard_normal((8, 3)).astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 3))
    rows = np.arange(8)
    x = torch.from_numpy(fs.x.astype(np.float32))
    with torch.no_grad():
        z = net(x)
    for balance in (False, True):
        cfg = TrainConfig(specaugment=False, alpha=0.5, temperature=2.0, balance_labels=balance)
        obj = KwsObjective(cfg, fs, None, teacher_logits=teacher)
        obj.setup(net, np.random.default_rng(1), DistContext())
        with torch.no_grad():
            got = obj.loss(net, rows, np.random.default_rng(2), DistContext()).item()
        shift = label_log_prior(torch.from_numpy(y), 3) if balance else torch.zeros(3)
        want = kd_loss(z + shift, torch.from_numpy(teacher), torch.from_numpy(y), alpha=0.5, temperature=2.0).item()
        assert got == pytest.approx(want, rel=1e-5)
    assert shift[0] > shift[1]  # the frequent label's logit is raised inside the loss, so the model's own is not
