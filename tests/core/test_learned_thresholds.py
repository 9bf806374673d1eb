"""thresholds='learned': band positions as trained fractions, moved by the task loss and the budget term; the
search only as the exact projection at the freeze."""
import pytest
import torch
import torch.nn.functional as F

import mmsemiprune.core.pruner as pruner_mod
from mmsemiprune.core.config import PruneConfig
from mmsemiprune.core.learned_thresholds import hard_kept_fraction, quantile_band


def test_quantile_band_puts_the_asked_fraction_below_it():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(200, generator=g) + 0.1
    n = v.numel()
    for k in (0, 1, 37, 100, 199, 200):
        a = quantile_band(v, torch.tensor(k / n))
        assert int((v > a).sum()) == n - k
    # q = 0: below every value (hard: all kept), ≥ 0
    a0 = quantile_band(v, torch.tensor(0.0))
    assert 0 <= float(a0) < float(v.min())


def test_quantile_band_gradient_is_the_local_slope():
    v = torch.tensor([0.5, 1.0, 2.0, 4.0])
    q = torch.tensor(0.6, requires_grad=True)  # pos 2.4 in [0-gap, 0.5, 1, 2, 4]: between 1.0 and 2.0
    a = quantile_band(v, q)
    assert torch.isclose(a, torch.tensor(1.4))
    a.backward()
    assert torch.isclose(q.grad, torch.tensor(4 * (2.0 - 1.0)))


def test_off_by_default(toy):
    net, pr = toy.make_pruner('semi', rate=0.8)
    assert not any('bands' in k for k in net.state_dict())
    assert not pr._learned and pr._batch.ok
    cfg = PruneConfig.from_dict(dict(target_rate=0.9))
    assert (cfg.thresholds, cfg.gates, cfg.rank_weight) == ('search', 'param', 0.0)


def test_learned_bands_are_parameters_and_use_the_reference_path(toy):
    net, pr = toy.make_pruner('semi', rate=0.8, thresholds='learned')
    names = [n for n, _ in net.named_parameters() if '.bands.' in n]
    assert sorted(names) == sorted(f'{k}_psi.bands.q_{b}' for k in ('c1.weight', 'c2.weight', 'fc.weight')
                                   for b in ('entry', 'group'))
    assert not pr._batch.ok
    assert pr.phase_at(0.7) == 'soft'  # no hard phase: the soft phase runs to the freeze
    # q = 0 at the start: the masks are dense, soft and hard
    x, _ = toy.data()
    pr.set_progress(0.0)
    net(x[:4])
    assert all(float(m.last_psi.detach().min()) > 0.49 for m in pr.masks)
    assert hard_kept_fraction(pr.items()) == 1.0


def _train_learned(toy, mode, rate, seed, iters=100, budget_weight=50.0):
    """The toy loop with the band fractions in a parameter group without momentum (as SemiPruneHook puts them)."""
    net, pr = toy.make_pruner(mode, rate=rate, seed=seed, thresholds='learned', budget_weight=budget_weight)
    x, y = toy.data()
    bands = [p for n, p in net.named_parameters() if '.bands.' in n]
    rest = [p for n, p in net.named_parameters() if '.bands.' not in n]
    opt = torch.optim.SGD([dict(params=rest), dict(params=bands, momentum=0.0)], lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    last_soft = None
    for it in range(iters):
        pr.set_progress(it / iters)
        if pr.phase == 'soft':
            last_soft = 1.0 - hard_kept_fraction(pr.items())
        idx = torch.randint(0, len(x), (32, ), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx]) + pr.budget_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, pr, last_soft


@pytest.mark.parametrize('mode', ['semi', 'structured'])
@pytest.mark.parametrize('rate', [0.8, 0.9])
@pytest.mark.parametrize('seed', [0, 1])
def test_learned_bands_meet_the_rate_without_the_search(toy, monkeypatch, mode, rate, seed):
    calls = []
    search = pruner_mod.solve_thresholds
    monkeypatch.setattr(pruner_mod, 'solve_thresholds', lambda *a, **k: calls.append(1) or search(*a, **k))
    stats = {}
    freeze = pruner_mod.SemiPruner.freeze

    def spy(self, *a, **k):
        out = freeze(self, *a, **k)
        stats.update(out)
        return out
    monkeypatch.setattr(pruner_mod.SemiPruner, 'freeze', spy)
    net, pr, last_soft = _train_learned(toy, mode, rate, seed)
    assert not calls  # the soft phase never ran the search
    # the hard masks at the learned bands, just before the freeze, meet the rate within 1 %
    assert abs(last_soft - rate) <= 0.01, last_soft
    assert abs((1.0 - stats['learned_kept']) - rate) <= 0.01
    # the freeze then projects exactly
    assert pr.frozen and abs(pr.report()['rate_params'] - rate) < 5e-3  # to one output channel (~1 %) at most
    fractions = [q.detach() for m in pr.masks for q in (m.bands.q_entry, m.bands.q_group) if q is not None]
    assert max(float(q) for q in fractions) > 0.3  # the bands moved


def test_learned_bands_are_moved_by_the_budget_term(toy):
    """One step at a scheduled rate above the soft kept cost: the budget gradient raises every used fraction."""
    net, pr = toy.make_pruner('unstructured', rate=0.8, thresholds='learned')
    x, _ = toy.data()
    pr.set_progress(0.25)
    net(x[:8])
    pr.budget_loss().backward()
    for m in pr.masks:
        assert float(m.bands.q_entry.grad) < 0  # descent increases q (prunes more)


@pytest.mark.parametrize('cfg, match', [
    (dict(thresholds='quantile'), 'thresholds'),
    (dict(thresholds='learned', target_macs=0.4), 'target_macs'),
    (dict(thresholds='learned', oneshot=True), 'oneshot'),
])
def test_validation(cfg, match):
    with pytest.raises(ValueError, match=match):
        PruneConfig.from_dict(dict(target_rate=0.9, **cfg))


def test_hook_gives_band_fractions_a_group_without_momentum_or_weight_decay():
    import types

    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    from mmsemiprune.engine import SemiPruneHook
    from tests.models.test_recognizer import batch, build, fresh_hub

    fresh_hub()  # a MessageHub without the iter / max_iters of earlier tests: the progress is set by hand below
    model = build('stgcn', 'semi', 0.8, thresholds='learned', gates='latent')
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    runner = types.SimpleNamespace(optim_wrapper=OptimWrapper(opt), logger=MMLogger.get_instance('band-group-test'),
                                   work_dir='.')
    SemiPruneHook()._split_gate_group(runner, model)
    bands = {id(p) for m in model.pruner.masks for p in m.bands.parameters()}
    groups = [g for g in opt.param_groups if g.get('gate_group')]
    assert len(groups) == 1 and {id(p) for p in groups[0]['params']} == bands  # latent gates: no logits
    assert groups[0]['momentum'] == 0.0 and groups[0]['weight_decay'] == 0.0 and not groups[0]['nesterov']
    assert sum(len(g['params']) for g in opt.param_groups) == len(list(model.parameters()))
    x, ds = batch()
    model.train()
    model.pruner.set_progress(0.2)
    opt.zero_grad()
    sum(v for k, v in model.loss(x, ds).items() if k.startswith('loss')).backward()
    opt.step()  # SGD accepts the group
    assert any(float(p.grad.abs()) > 0 for m in model.pruner.masks for p in m.bands.parameters())
