import pytest
import torch

from mmsemiprune.core.budget import BudgetRegularizer, CostModel, solve_thresholds
from mmsemiprune.core.cascade import MODES, SemiMask


def _pair(mode='semi', soft=True):
    torch.manual_seed(0)
    w1 = (torch.randn(8, 4, 3, 3) * 0.1).requires_grad_()
    w2 = (torch.randn(6, 8) * 2.0).requires_grad_()
    m1 = SemiMask(w1.shape, ['out'], mode, name='a.weight')
    m2 = SemiMask(w2.shape, ['out', 'in'], mode, name='b.weight')
    m1.cost.fill_(16.0)
    m2.cost.fill_(1.0)
    return (m1, w1), (m2, w2)


def test_regularizer_formula():
    (m1, w1), (m2, w2) = _pair()
    for m in (m1, m2):
        m.thr_entry.fill_(0.7)
        m.thr_group.fill_(0.9)
        m.temperature.fill_(0.3)
    p1, p2 = m1(w1), m2(w2)
    reg = BudgetRegularizer(weight=3.0)
    N = 16 * w1.numel() + w2.numel()
    frac = (16 * p1.sum() + p2.sum()) / N
    assert reg.kept_fraction([m1, m2]).item() == pytest.approx(frac.item(), rel=1e-6)
    r = 0.6
    R = reg([m1, m2], r)
    assert R.item() == pytest.approx(3.0 * (frac.item() - (1 - r)) ** 2, rel=1e-5)
    assert R.item() > 0


def test_regularizer_gradient_reaches_latent_and_gate():
    (m1, w1), (m2, w2) = _pair()
    for m in (m1, m2):
        m.thr_entry.fill_(0.7)
        m.thr_group.fill_(0.9)
        m.temperature.fill_(0.3)
    m1(w1), m2(w2)
    BudgetRegularizer(5.0)([m1, m2], 0.9).backward()
    for t in (w1.grad, w2.grad, m1.gate.logit.grad, m2.gate.logit.grad):
        assert t is not None and torch.isfinite(t).all() and t.abs().max() > 0
    # kept fraction above target: the penalty pushes ψ down, i.e. |Ŵ| towards the stop band
    assert (w1.grad * w1.detach()).sum() > 0


def test_regularizer_without_forward_is_zero():
    (m1, _), _ = _pair()
    assert BudgetRegularizer()([m1], 0.5).item() == 0.0


@pytest.mark.parametrize('bad', [-1.0, float('nan')])
def test_regularizer_bad_weight(bad):
    with pytest.raises(ValueError, match=str(bad)):
        BudgetRegularizer(bad)


def test_cost_model_validation():
    assert CostModel('flops').cost == 'flops'
    with pytest.raises(ValueError, match="'macs'"):
        CostModel('macs')


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('rate', [0.5, 0.9])
def test_solve_thresholds_meets_cost_weighted_target(mode, rate):
    (m1, w1), (m2, w2) = _pair(mode)
    if mode == 'semi':
        with torch.no_grad():
            m1.gate.logit.copy_(torch.tensor([1., -1.] * 4))
            m2.gate.logit.copy_(torch.tensor([-1., 1.] * 3))
    stats = solve_thresholds([(m1, w1), (m2, w2)], rate)
    N = 16 * w1.numel() + w2.numel()
    kept = (16 * m1.hard(w1).sum() + m2.hard(w2).sum()).item() / N
    assert kept == pytest.approx(stats['kept_fraction'], abs=1e-9)
    # exact up to the granularity of one group of the coarsest tensor (a 'a.weight' row: 36·16 of 1200)
    gran = 16 * 36 / N if mode != 'unstructured' else 16 / N
    assert abs(kept - (1 - rate)) <= gran + 1e-9
    assert float(m1.thr_entry) >= 0 and float(m1.thr_group) >= 0
    assert float(m1.thr_entry) == pytest.approx(float(m2.thr_entry))  # one global level (no floor binding)


def test_solve_thresholds_stats_match_hard_masks():
    # regression: thresholds solved in float64 within rounding of a (tied) group score and stored in
    # float32 used to let the hard mask keep one more group than the returned kept_fraction
    (m1, w1), (m2, w2) = _pair('structured')
    stats = solve_thresholds([(m1, w1), (m2, w2)], 0.9)
    N = 16 * w1.numel() + w2.numel()
    kept = (16 * m1.hard(w1).sum() + m2.hard(w2).sum()).item() / N
    assert kept == pytest.approx(stats['kept_fraction'], abs=1e-9)


def test_solve_thresholds_floor():
    (m1, w1), (m2, w2) = _pair('unstructured')
    with torch.no_grad():  # |x| ≡ 1 after normalisation: below a.weight's 80th percentile of |x| (≈ 1.28)
        w2.copy_(torch.sign(w2) * 1e-3)
    solve_thresholds([(m1, w1), (m2, w2)], 0.8, floor=0.0)
    assert m2.hard(w2).sum() == 0
    solve_thresholds([(m1, w1), (m2, w2)], 0.8, floor=0.25)
    assert m2.hard(w2).sum() >= 0.25 * w2.numel()


def test_solve_thresholds_skips_frozen_and_validates():
    (m1, w1), (m2, w2) = _pair('unstructured')
    m1.freeze(torch.ones(m1.shape, dtype=torch.bool))
    before = float(m1.thr_entry)
    solve_thresholds([(m1, w1), (m2, w2)], 0.5)
    assert float(m1.thr_entry) == before and m1.hard(w1).all()
    assert abs(m2.hard(w2).float().mean().item() - 0.5) <= 1 / 48 + 1e-9
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=str(bad)):
            solve_thresholds([(m2, w2)], bad)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('floor', [0.0, 0.3])
def test_solve_thresholds_hard_masks_equal_per_tensor_hard(toy, mode, floor):
    """hard_masks=True: the flat masks (what the projection and the hard phase use) are m.hard(w) exactly, with
    learned gates on either side, and with the gates' decisions frozen (hard phase)."""
    net, pr = toy.make_pruner(mode, 'params', 0.8)
    toy.random_gates(pr, torch.Generator().manual_seed(4))
    items = [(m, w) for _, m, w in pr.items()]
    for rate in (0.5, 0.9):
        hard = solve_thresholds(items, rate, floor, stats=False, hard_masks=True)
        assert hard is not None and len(hard) == len(items)
        for (m, w), h in zip(items, hard):
            assert h.dtype == torch.bool and torch.equal(h, m.hard(w)), (m.name, rate)
    if mode == 'semi':
        for m in pr.masks:
            m.gate.snapshot()
            m.gate.freeze()
        hard = solve_thresholds(items, 0.7, floor, stats=False, hard_masks=True)
        assert all(torch.equal(h, m.hard(w)) for (m, w), h in zip(items, hard))


def test_solve_thresholds_hard_masks_leaves_frozen_and_mixed_to_the_caller():
    (m1, w1), (m2, w2) = _pair('semi')
    (m3, w3), _ = _pair('structured')
    assert solve_thresholds([(m1, w1), (m3, w3)], 0.5, stats=False, hard_masks=True) is None  # mixed modes
    m2.freeze(torch.ones(w2.shape, dtype=torch.bool))
    assert solve_thresholds([(m1, w1), (m2, w2)], 0.5, stats=False, hard_masks=True) is None
    assert float(m1.thr_entry) > 0  # the thresholds were still placed


def test_flat_scores_are_kept_for_the_step_and_recomputed_when_a_latent_changes():
    """The eager search keeps the flat latents, x and the scores on the flat index for the rest of the step (the
    compute target's probes and the batched masks take them): a second call on the same latents returns them as
    they are, a latent changed in place is seen (its version), and the graphed search (reuse=False) keeps
    nothing."""
    from mmsemiprune.core.fused.flat import flat_for, flat_scores
    (m1, w1), (m2, w2) = _pair('semi')
    masks, latents = [m1, m2], [w1, w2]
    flat = flat_for(masks, w1.device)
    x, stats, coarse = flat_scores(flat, masks, latents)
    x2, stats2, coarse2 = flat_scores(flat, masks, latents)
    assert x2 is x and stats2 is stats and coarse2 is coarse
    with torch.no_grad():
        w2.mul_(3.0)
        w2[0].zero_()
    x3, stats3, coarse3 = flat_scores(flat, masks, latents)
    assert x3 is not x
    flat.shared = None
    ref = flat_scores(flat, masks, latents, reuse=False)  # recomputed from scratch
    assert flat.shared is None
    assert torch.equal(ref[0], x3) and torch.equal(ref[2], coarse3)
    assert all(torch.equal(a, b) for a, b in zip(ref[1], stats3))
    assert not torch.equal(x3, x)
