import math

import pytest
import torch
from torch import nn

from mmsemiprune.core import PruneSpec, SemiPruner
from mmsemiprune.core.schedule import PruneSchedule


def test_rate_cubic_ramp():
    s = PruneSchedule(warmup=0.4, freeze=0.8)
    r = 0.9
    assert s.rate(0.0, r) == 0.0
    for p in (0.05, 0.1, 0.2, 0.3, 0.39):
        assert s.rate(p, r) == pytest.approx(r * (1 - (1 - p / 0.4) ** 3))
    assert s.rate(0.4, r) == pytest.approx(r)
    for p in (0.5, 0.8, 1.0, 1.7):
        assert s.rate(p, r) == r
    ps = [i / 100 for i in range(101)]
    vals = [s.rate(p, r) for p in ps]
    assert all(b >= a for a, b in zip(vals, vals[1:]))
    # cubic: fast early, slow near the end of the warm-up
    assert s.rate(0.2, r) > 0.5 * r * 1.5
    assert s.rate(-1, r) == 0.0
    assert PruneSchedule(warmup=0.0, freeze=0.5).rate(0.0, r) == r


def test_tau_geometric_then_frozen():
    s = PruneSchedule(warmup=0.2, freeze=0.7, tau_start=0.5, tau_end=1e-3)
    for p in (0.0, 0.1, 0.2):
        assert s.tau(p) == 0.5
    for p in (0.3, 0.45, 0.6):
        f = (p - 0.2) / 0.5
        assert s.tau(p) == pytest.approx(0.5 * (1e-3 / 0.5) ** f)
    # geometric: log τ is linear in p
    l1, l2, l3 = (math.log(s.tau(p)) for p in (0.3, 0.4, 0.5))
    assert l2 - l1 == pytest.approx(l3 - l2)
    assert s.tau(0.7) == pytest.approx(1e-3)
    assert s.tau(0.9) == pytest.approx(1e-3) and s.tau(1.0) == pytest.approx(1e-3)
    assert not s.frozen(0.69) and s.frozen(0.7) and s.frozen(1.0)
    assert s.to_dict() == dict(warmup=0.2, freeze=0.7, tau_start=0.5, tau_end=1e-3, hard=None)


@pytest.mark.parametrize('kw, words', [
    (dict(warmup=0.9, freeze=0.5), ['warmup', '0.9', 'freeze', '0.5']),
    (dict(warmup=1.5), ['warmup', '1.5']),
    (dict(freeze=-0.1), ['freeze', '-0.1']),
    (dict(warmup='a'), ['warmup', "'a'"]),
    (dict(tau_start=0.1, tau_end=0.2), ['tau_end=0.2', 'tau_start=0.1']),
    (dict(tau_end=0.0), ['tau_end=0.0']),
])
def test_invalid_schedule(kw, words):
    with pytest.raises(ValueError) as e:
        PruneSchedule(**kw)
    for w in words:
        assert w in str(e.value)


def test_pruner_follows_schedule():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3))
    sched = dict(warmup=0.25, freeze=0.75, tau_start=0.4, tau_end=4e-3)
    pr = SemiPruner(net, [PruneSpec('0'), PruneSpec('1')], 0.8, schedule=sched)
    s = pr.schedule
    x = torch.randn(2, 3, 9, 9)
    net(x)
    for p in (0.0, 0.1, 0.25, 0.5, 0.74):
        pr.set_progress(p)
        assert float(pr.rate_now) == pytest.approx(s.rate(p, 0.8))
        for m in pr.masks:
            assert float(m.temperature) == pytest.approx(s.tau(p))
            assert float(m.gate_temperature) == pytest.approx(s.tau(p) / 0.4)
        assert not pr.frozen
        kept = sum(m.hard(w).sum().item() for _, m, w in pr.items()) / sum(w.numel() for _, _, w in pr.items())
        assert abs((1 - kept) - s.rate(p, 0.8)) < 0.05
    pr.set_progress(0.75)
    assert pr.frozen and float(pr.rate_now) == pytest.approx(0.8)
    frozen = [m.mask.clone() for m in pr.masks]
    with torch.no_grad():
        for _, _, w in pr.items():
            w.mul_(-3).add_(1)  # latents change; frozen masks do not
    pr.set_progress(0.9)
    assert all(torch.equal(a, m.mask) for a, m in zip(frozen, pr.masks))


def test_pruner_schedule_errors():
    net = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(ValueError, match='warmup'):
        SemiPruner(net, [PruneSpec('0')], 0.5, schedule=dict(warmup=0.9, freeze=0.5))
    with pytest.raises(ValueError, match='warm_up'):
        SemiPruner(nn.Sequential(nn.Conv2d(3, 8, 3)), [PruneSpec('0')], 0.5, schedule=dict(warm_up=0.3))


def test_hard_phase_inside_the_warmup_follows_the_ramp(toy):
    """hard=0 with warmup=freeze: gradual magnitude pruning, hard masks at the cubic rate r(p) at every step."""
    net, pr = toy.make_pruner('unstructured', 'params', 0.8, normalize=False,
                              schedule=dict(warmup=0.5, freeze=0.5, hard=0.0))
    seen = []
    for p in (0.0, 0.1, 0.25, 0.4, 0.49):
        pr.set_progress(p)
        want = 0.8 * (1 - (1 - p / 0.5) ** 3)
        assert pr.phase == ('soft' if p == 0.0 else 'hard')
        seen.append(pr.report()['rate_params'])
        assert abs(seen[-1] - want) < 0.02, (p, seen[-1], want)
    assert seen == sorted(seen)
    pr.set_progress(0.5)
    assert pr.frozen and abs(pr.report()['rate_params'] - 0.8) < 0.01
    # without training in between, the last ramp mask is the one-shot global-magnitude mask of the same weights
    net2, one = toy.make_pruner('unstructured', 'params', 0.8, normalize=False, schedule=dict(warmup=0.0, freeze=0.0))
    net2.load_state_dict(net.state_dict())
    one.set_progress(0.0)
    a = torch.cat([m.current(w).flatten() for _, m, w in pr.items()])
    b = torch.cat([m.current(w).flatten() for _, m, w in one.items()])
    assert one.frozen and (a == b).float().mean() > 0.995
