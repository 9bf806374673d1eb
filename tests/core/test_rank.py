"""rank_weight: the MAC-priced soft count of live rows and columns; equals the live row / column count as τ → 0."""
import pytest
import torch

from mmsemiprune.core.budget import solve_thresholds
from mmsemiprune.core.cascade import SemiMask
from mmsemiprune.core.config import PruneConfig
from mmsemiprune.core.rank import hard_live_counts, rank_surrogate, soft_live_counts


def test_soft_counts_of_a_binary_mask_are_the_live_counts():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(8, 3, 5, generator=g) > 0.85
    mask[2] = False  # a dead row
    rows, cols = soft_live_counts(mask.float())
    assert (int(rows), int(cols)) == hard_live_counts(mask)
    assert hard_live_counts(mask)[0] <= 7


@pytest.mark.parametrize('mode', ['semi', 'unstructured', 'structured'])
def test_surrogate_tends_to_the_live_counts_as_tau_falls(mode):
    torch.manual_seed(0)
    m = SemiMask((16, 4, 3), ['out', 'in'] if mode != 'unstructured' else [], mode)
    w = torch.randn(16, 4, 3) * torch.rand(16, 1, 1)  # rows of different scales: some rows die whole
    solve_thresholds([(m, w)], 0.9)
    # bands half-way between scores (the search puts them just past one), gates decided
    with torch.no_grad():
        m.thr_entry.mul_(1.02)
        m.thr_group.mul_(1.02)
        if mode == 'semi':
            m.gate.logit.copy_(torch.randn(m.gate.logit.shape))
    x, coarse = m.scores(w)
    assert (x - m.thr_entry).abs().min() > 1e-4
    assert coarse is None or (coarse - m.thr_group).abs().min() > 1e-4
    hard = hard_live_counts(m.hard(w))
    errs = []
    for tau in (0.2, 0.02, 2e-3, 1e-5):
        m.temperature.fill_(tau)
        m.gate_temperature.fill_(tau)
        rows, cols = soft_live_counts(m(w))
        errs.append(abs(float(rows.detach()) - hard[0]) + abs(float(cols.detach()) - hard[1]))
    assert errs[-1] < 1e-3, errs
    assert errs[0] > errs[-1]
    assert hard[0] < 16  # the test exercises dead rows


def test_surrogate_prices_rows_and_columns_by_macs(toy):
    net, pr = toy.make_pruner('semi', rate=0.8)
    x, _ = toy.data()
    pr.set_progress(0.5)
    net(x[:4])
    num = den = 0.0
    for m in pr.masks:
        psi = m.last_psi.detach().reshape(m.shape[0], -1)
        R, C = psi.shape
        live_r = (1 - (1 - psi).prod(1)).sum()
        live_c = (1 - (1 - psi).prod(0)).sum()
        P = float(m.macs)
        assert P > 0  # profiled
        num += P * (C * float(live_r) + R * float(live_c))
        den += 2 * P * R * C
    assert abs(float(rank_surrogate(pr.masks)) - num / den) < 1e-5
    # dense masks: 1
    pr.set_progress(0.0)
    net(x[:4])
    assert abs(float(rank_surrogate(pr.masks)) - 1.0) < 1e-6


def test_gradient_finishes_off_nearly_dead_rows():
    psi = torch.tensor([[0.02, 0.01, 0.03], [0.9, 0.95, 0.02]], requires_grad=True)
    rows, _ = soft_live_counts(psi)
    rows.backward()
    assert psi.grad[0].min() > 5 * psi.grad[1].max()  # the nearly dead row is pushed, the live one hardly


def test_pruner_adds_the_weighted_term(toy):
    x, _ = toy.data()
    losses = {}
    for w in (0.0, 2.0):
        net, pr = toy.make_pruner('semi', rate=0.8, rank_weight=w)
        pr.set_progress(0.5)
        net(x[:4])
        losses[w] = (pr.budget_loss(), rank_surrogate(pr.masks))
    assert torch.isclose(losses[2.0][0] - losses[0.0][0], 2.0 * losses[2.0][1], atol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match='rank_weight'):
        PruneConfig.from_dict(dict(target_rate=0.9, rank_weight=-1.0))
    with pytest.raises(ValueError, match='oneshot'):
        PruneConfig.from_dict(dict(target_rate=0.9, rank_weight=1.0, oneshot=True))
