import pytest

from mmsemiprune.core.bandstop import band_stop
import torch
import torch.nn.functional as F
from torch import nn

from mmsemiprune.core import PruneSpec, SemiPruner
from mmsemiprune.core.reparam import is_masked, masked_tensor

MODES3 = ['semi', 'structured', 'unstructured']


def _check_frozen_binary(net, pr):
    """Soft ψ ∈ {0, 1} exactly, equal to the stored mask, and the forward uses the stored mask."""
    assert pr.frozen
    mods = dict(net.named_modules())
    for key, m, w in pr.items():
        psi = m(w)
        assert torch.equal(psi, m.mask.to(psi.dtype)), key
        assert set(psi.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(masked_tensor(mods[key.rsplit('.', 1)[0]], 'weight'), w * m.mask)
    x = torch.randn(8, 3, 8, 8)
    net.eval()
    with torch.no_grad():
        y = net(x)
        for _, m, w in pr.items():  # move pruned latents anywhere: the function must not change
            w[~m.mask] = torch.randn(int((~m.mask).sum())) * 10
        assert torch.equal(net(x), y)
    net.train()


@pytest.mark.parametrize('rate', [0.5, 0.8, 0.95])
@pytest.mark.parametrize('cost', ['params', 'flops'])
@pytest.mark.parametrize('mode', MODES3)
def test_training_reaches_target(toy, mode, cost, rate):
    net, pr = toy.train(mode, cost, rate)
    assert pr.frozen  # the default schedule froze the masks at 80 % of the run
    rep = pr.report()
    achieved = rep['rate_params'] if cost == 'params' else rep['rate_flops']
    assert abs(achieved - rate) <= 0.01, rep
    if rate == 0.5:
        # the layers have different output sizes: the FLOPs rate is not the parameter rate
        assert abs(rep['rate_flops'] - rep['rate_params']) > 0.02
        assert toy.accuracy(net) > 0.5  # chance is 0.25
    assert pr.budget_loss().item() == 0.0
    _check_frozen_binary(net, pr)
    states = set()
    for m in pr.masks:  # per group of the first grouping: removed whole / kept whole / pruned inside
        kept = torch.zeros(m.num_groups[0]).index_add_(0, m.gid0.reshape(-1), m.mask.reshape(-1).float())
        size = torch.bincount(m.gid0.reshape(-1)).float()
        states |= {'all0' if k == 0 else 'all1' if k == n else 'mixed' for k, n in zip(kept.tolist(), size.tolist())}
        # purely group-wise: the mask is the AND over its groupings of "group has a survivor"
        byg = torch.ones_like(m.mask)
        for k in range(len(m.groupings)):
            gid = getattr(m, f'gid{k}').reshape(-1)
            alive = torch.zeros(m.num_groups[k]).index_add_(0, gid, m.mask.reshape(-1).float()) > 0
            byg &= alive[gid].view_as(m.mask)
        if mode == 'structured':
            assert torch.equal(byg, m.mask)
    if mode == 'structured':
        assert 'all0' in states
    elif mode == 'semi':
        assert {'all0', 'mixed'} <= states  # whole groups removed and entries pruned inside others
    else:
        assert 'mixed' in states


def test_ctf_mode_trains_to_target(toy):
    net, pr = toy.train('ctf', 'params', 0.8, iters=40)
    assert abs(pr.report()['rate_params'] - 0.8) <= 0.01
    _check_frozen_binary(net, pr)


def test_gradients_reach_latents_and_gates(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    x, y = toy.data(32)
    pr.set_progress(0.5)  # mid-run: thresholds placed, soft band
    assert float(pr.masks[0].thr_entry) > 0 and float(pr.masks[0].thr_group) > 0
    net(x)
    pr.budget_loss().backward()  # budget loss alone
    for mod in (net.c1, net.c2, net.fc):
        for t in (mod.weight.grad, mod.weight_psi.gate.logit.grad):
            assert t is not None and torch.isfinite(t).all() and t.abs().max() > 0
    net.zero_grad()
    loss = F.cross_entropy(net(x), y) + pr.budget_loss()
    loss.backward()
    for mod in (net.c1, net.c2, net.fc):
        for t in (mod.weight.grad, mod.weight_psi.gate.logit.grad):
            assert t is not None and torch.isfinite(t).all() and t.abs().max() > 0


def test_budget_loss_value(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8, gate_price_by='params')
    pr.set_progress(0.5)
    net(toy.data(8)[0])
    psis = [m.last_psi for m in pr.masks]
    frac = sum(p.sum() for p in psis) / sum(p.numel() for p in psis)
    expected = pr.regularizer.weight * (frac - (1 - float(pr.rate_now))) ** 2
    # gate price P = μ Σ_g g_g n_g c Δ_g / N, Δ_g = mean over the group of (ψ_G − ψ_e), by hand
    price = 0.0
    total = sum(float(m.cost) * m.mask.numel() for m in pr.masks)
    for m in pr.masks:
        x = m.normalise(dict(net.named_parameters())[m.name].detach())
        psi_g, psi_e = m._coarse(x, m.temperature), band_stop(x, m.thr_entry, m.temperature)
        g = m.gate(m.gate_temperature)
        for gi in range(m.num_groups[0]):
            sel = m.gid0 == gi
            price += float(g[gi]) * float((psi_g - psi_e)[sel].sum()) * float(m.cost)
    expected = expected.item() + pr.gate_price * price / total
    assert pr.gate_price == 1.0
    assert pr.budget_loss().item() == pytest.approx(expected, rel=1e-4)


def test_budget_loss_without_gate_price_is_the_regularizer(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    pr.gate_price = 0.0
    pr.set_progress(0.5)
    net(toy.data(8)[0])
    psis = [m.last_psi for m in pr.masks]
    frac = sum(p.sum() for p in psis) / sum(p.numel() for p in psis)
    expected = pr.regularizer.weight * (frac - (1 - float(pr.rate_now))) ** 2
    assert pr.budget_loss().item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradients_after_freeze(toy):
    net, pr = toy.train('semi', 'params', 0.8, iters=30)
    assert pr.frozen
    net.zero_grad(set_to_none=True)
    x, y = toy.data(16)
    (F.cross_entropy(net(x), y) + pr.budget_loss()).backward()
    for m in pr.masks:  # no process group: nothing to reduce, no touch (under DDP: test_gate_touch_only_under_...)
        assert m.gate.logit.grad is None
    assert net.c1.weight.grad is not None
    assert (net.c1.weight.grad[~net.c1.weight_psi.mask] == 0).all()


def test_deterministic(toy):
    _, pr1 = toy.train('semi', 'params', 0.8, iters=30, seed=5)
    _, pr2 = toy.train('semi', 'params', 0.8, iters=30, seed=5)
    for (k1, m1, w1), (k2, m2, w2) in zip(pr1.items(), pr2.items()):
        assert k1 == k2
        assert torch.equal(m1.mask, m2.mask)
        assert torch.equal(m1.gate.logit, m2.gate.logit)
        assert torch.equal(w1, w2)
    _, pr3 = toy.train('semi', 'params', 0.8, iters=30, seed=6)
    assert any(not torch.equal(a.mask, b.mask) for a, b in zip(pr1.masks, pr3.masks))


def test_stock_names_and_dense_checkpoint(toy):
    dense = toy.Toy()
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    sd = net.state_dict()
    for name in ('c1', 'c2', 'fc'):
        assert f'{name}.weight' in sd and f'{name}.bias' in sd
        assert f'{name}.weight_psi.gate.logit' in sd and f'{name}.weight_psi.mask' in sd
    assert [k for k in sd if '_psi' not in k] == list(dense.state_dict())
    assert not any(k.endswith(('_orig', 'original', 'parametrizations')) for k in sd)
    res = net.load_state_dict(dense.state_dict(), strict=False)
    assert res.unexpected_keys == [] and res.missing_keys
    assert all('_psi' in k for k in res.missing_keys)
    assert torch.equal(net.c2._parameters['weight'], dense.c2.weight)
    nn.init.constant_(net.c1.weight, 0.5)
    assert (net.c1._parameters['weight'] == 0.5).all()
    # the pruner's own schedule state is a separate, small state dict (the model is not its child)
    psd = pr.state_dict()
    assert {'progress', 'rate_now', 'profiled'} <= set(psd) and not any('weight' in k for k in psd)


def test_profile_records_output_positions(toy):
    net, pr = toy.make_pruner('semi', 'flops', 0.8)
    macs = {k: float(m.macs) for k, m, _ in pr.items()}
    assert macs == {'c1.weight': 64.0, 'c2.weight': 16.0, 'fc.weight': 1.0}
    assert {k: float(m.cost) for k, m, _ in pr.items()} == macs
    assert bool(pr.profiled)
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    assert all(float(m.cost) == 1.0 for m in pr.masks) and float(pr.masks[1].macs) == 16.0


def test_profile_adjacency():
    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.PA = nn.Parameter(torch.randn(3, 5, 5))

        def forward(self, x):  # (N, C, T, V)
            return torch.einsum('nctv,kvw->nctw', x, self.PA)

    net = nn.Sequential(G())
    pr = SemiPruner(net, [PruneSpec('0', param='PA', groups=['row'])], 0.5, cost='flops')
    pr.profile(lambda: net(torch.randn(2, 4, 7, 5)))
    assert float(pr.masks[0].macs) == 4 * 7


def test_profile_unused_tensor():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    pr = SemiPruner(net, [PruneSpec('0'), PruneSpec('1')], 0.5, cost='flops')
    with pytest.raises(RuntimeError, match='1.weight'):
        pr.profile(lambda: net[0](torch.randn(1, 3, 5, 5)))


def test_profile_linear_on_sequence():
    net = nn.Sequential(nn.Linear(6, 5))
    pr = SemiPruner(net, [PruneSpec('0', groups=['in'])], 0.5, cost='flops')
    pr.profile(lambda: net(torch.randn(2, 7, 6)))
    assert float(pr.masks[0].macs) == 7


@pytest.mark.parametrize('rate', [0, 1, -0.1, 1.5, 'a', True, None])
def test_invalid_rate(toy, rate):
    with pytest.raises(ValueError) as e:
        SemiPruner(toy.Toy(), toy.specs(), rate)
    assert 'target_rate' in str(e.value) and repr(rate) in str(e.value)


def test_invalid_arguments(toy):
    def build(**kw):
        args = dict(model=toy.Toy(), specs=toy.specs(), target_rate=0.5)
        args.update(kw)
        return SemiPruner(**args)

    cases = [
        (dict(mode='foo'), ["'foo'", 'mode']),
        (dict(cost='bogus'), ["'bogus'", 'cost']),
        (dict(specs=[PruneSpec('nope')]), ["'nope'"]),
        (dict(specs=[PruneSpec('c1', param='gamma')]), ['c1.gamma', "'gamma'"]),
        (dict(specs=[PruneSpec('c1', groups=['bogus'])]), ["'bogus'"]),
        (dict(model=nn.Sequential(nn.Conv2d(3, 4, 1)), specs=[PruneSpec('0', groups=['tap'])]),
         ['tap', '0.weight', '(4, 3, 1, 1)']),
        (dict(specs=[PruneSpec('c2', groups=['out:fold=5'])]), ['fold=5', 'c2.weight']),
        (dict(specs=[]), ['nothing to prune']),
        (dict(layer_floor=1.2), ['layer_floor', '1.2']),
        (dict(target_rate=0.95, layer_floor=0.1), ['layer_floor=0.1']),
        (dict(schedule=dict(warmup=0.9, freeze=0.5)), ['warmup', '0.9', '0.5']),
        (dict(budget_weight=-2.0), ['-2.0']),
    ]
    for kw, words in cases:
        with pytest.raises(ValueError) as e:
            build(**kw)
        for w in words:
            assert w in str(e.value), (kw, str(e.value))
    # 'tap' on a real temporal conv is fine
    net = nn.Sequential(nn.Conv2d(3, 4, (3, 1)))
    SemiPruner(net, [dict(module='0', groups=['tap'])], 0.5)
    assert is_masked(net[0], 'weight')
    net, pr = toy.make_pruner()
    with pytest.raises(ValueError, match='1.5'):
        pr.freeze(1.5)


def test_failed_construction_leaves_model_untouched(toy):
    net = toy.Toy()
    with pytest.raises(ValueError):
        SemiPruner(net, [PruneSpec('c1'), PruneSpec('nope')], 0.5)
    assert not is_masked(net.c1, 'weight')
    SemiPruner(net, [PruneSpec('c1')], 0.5)


def test_explicit_freeze_and_progress_after(toy):
    net, pr = toy.make_pruner('unstructured', 'params', 0.9)
    net(toy.data(8)[0])
    stats = pr.freeze(0.6)
    assert pr.frozen and abs(stats['achieved'] - 0.6) < 1e-3
    assert float(pr.rate_now) == pytest.approx(0.6)
    masks = [m.mask.clone() for m in pr.masks]
    pr.set_progress(0.1)  # progress after freezing does not thaw or move the masks
    assert pr.frozen and all(torch.equal(a, m.mask) for a, m in zip(masks, pr.masks))


def test_config_object_dict_and_keywords_build_the_same_pruner(toy):
    """One config path: the validated PruneConfig is used as is; a prune_cfg dict and the keyword API
    (flat ablation names included) validate into an equal config and give the same masks."""
    from mmsemiprune.core.config import PruneConfig
    cfg = PruneConfig.from_dict(dict(target_rate=0.7, mode='structured', ablation=dict(hard_phase=False),
                                     scorer='l1', schedule='oneshot'))
    pruners = []
    for how in ('object', 'dict', 'keywords'):
        torch.manual_seed(0)
        net = toy.Toy()
        if how == 'object':
            pr = SemiPruner(net, toy.specs(), cfg, channel_sets=toy.sets())
            assert pr.config is cfg
        elif how == 'dict':
            pr = SemiPruner(net, toy.specs(), dict(target_rate=0.7, mode='structured', scorer='l1',
                                                   ablation=dict(hard_phase=False), schedule='oneshot'),
                            channel_sets=toy.sets())
        else:
            pr = SemiPruner(net, toy.specs(), 0.7, mode='structured', hard_phase=False, group_stat='l1',
                            schedule='oneshot', channel_sets=toy.sets())
        assert pr.config == cfg and not pr.hard_phase and pr.scorer.name == 'l1'
        pr.set_progress(0.0)
        pruners.append(pr)
    for pr in pruners[1:]:
        assert all(torch.equal(a.mask, b.mask) for a, b in zip(pruners[0].masks, pr.masks))
    with pytest.raises(TypeError, match='set them in the config'):
        SemiPruner(toy.Toy(), toy.specs(), cfg, mode='semi')
    with pytest.raises(TypeError, match='needs a PruneConfig or a target_rate'):
        SemiPruner(toy.Toy(), toy.specs())
