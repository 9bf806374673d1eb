import pytest
import torch
from torch import nn

from mmsemiprune.core.finalize import harden, recalibrate_bn
from mmsemiprune.core.topology import alive, make_consistent


def _frozen_masks(pr):
    return {k: m.mask.clone() for k, m, _ in pr.items()}


@pytest.mark.parametrize('mode', ['semi', 'structured', 'unstructured'])
def test_freeze_leaves_no_dead_channel(toy, mode):
    net, pr = toy.train(mode, 'params', 0.8, iters=30)
    assert pr.frozen
    masks = _frozen_masks(pr)
    sets = toy.sets()
    for cs in sets:
        prod, cons = alive(masks, cs)
        assert torch.equal(prod, cons), (cs.name, prod, cons)  # both alive or both dead, per channel
        if mode == 'structured':
            assert (~prod).any()  # structured pruning at 80 % does remove channels
    before = {k: v.clone() for k, v in masks.items()}
    make_consistent(masks, sets)
    assert all(torch.equal(before[k], masks[k]) for k in masks)
    rep = pr.report()
    assert abs(rep['rate_params'] - 0.8) <= 0.01


def test_make_consistent_returns_zero_after_freeze(toy):
    net, pr = toy.train('structured', 'params', 0.8, iters=30)
    assert make_consistent(_frozen_masks(pr), toy.sets()) == 0


@pytest.mark.parametrize('rate', [0.5, 0.9])
def test_harden_with_sets(toy, rate):
    net, pr = toy.make_pruner('structured', 'params', rate)
    x, _ = toy.data(16)
    net(x)
    stats = harden(pr.items(), rate, 0.0, toy.sets())
    assert all(bool(m.frozen) for m in pr.masks)
    n = sum(w.numel() for _, _, w in pr.items())
    kept = sum(int(m.mask.sum()) for m in pr.masks)
    assert stats['achieved'] == pytest.approx(1 - kept / n)
    # within half a channel (the largest: a c1 row + a c2 column = 27 + C entries)
    assert abs(stats['achieved'] - rate) <= 0.5 * (27 + net.c2.in_channels) / n + 1e-9
    assert stats['asked'] <= rate  # lowered to pay for the channels consistency removes
    masks = _frozen_masks(pr)
    for cs in toy.sets():
        prod, cons = alive(masks, cs)
        assert torch.equal(prod, cons)
    # harden skips frozen masks
    again = harden(pr.items(), 0.3, 0.0, toy.sets())
    assert again['achieved'] != again['achieved']  # nan: nothing left to harden
    assert all(torch.equal(masks[k], m.mask) for k, m, _ in pr.items())


def test_harden_unstructured_exact(toy):
    net, pr = toy.make_pruner('unstructured', 'params', 0.7)
    stats = harden(pr.items(), 0.7, 0.0, None)
    assert abs(stats['achieved'] - 0.7) < 1e-3 and stats['asked'] == 0.7


def _bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(), nn.Conv2d(4, 5, 1),
                         nn.BatchNorm2d(5))


def _hand_stats(net, batches):
    """Per BN: (mean of batch means, mean of unbiased batch variances), BN layers in train mode."""
    means = {1: [], 4: []}
    vars_ = {1: [], 4: []}
    for x in batches:
        h = net[0](x)
        for i in (1, 4):
            if i == 4:
                h = net[3](torch.relu(h))
            mu = h.mean((0, 2, 3))
            n = h.numel() / h.shape[1]
            var_b = ((h - mu[None, :, None, None]) ** 2).mean((0, 2, 3))
            means[i].append(mu)
            vars_[i].append(var_b * n / (n - 1))
            bn = net[i]
            h = (h - mu[None, :, None, None]) / (var_b[None, :, None, None] + bn.eps).sqrt()
            h = h * bn.weight[:, None, None] + bn.bias[:, None, None]
    return {i: (torch.stack(means[i]).mean(0), torch.stack(vars_[i]).mean(0)) for i in (1, 4)}


def test_recalibrate_bn_matches_hand_computation():
    net = _bn_net()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
        for i in (1, 4):
            net[i].running_mean.fill_(7.0)
            net[i].running_var.fill_(9.0)
    net.eval()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(6, 3, 5, 5, generator=g) * (1 + k) + k for k in range(3)]
    with torch.no_grad():
        expected = _hand_stats(net, batches)
    n = recalibrate_bn(net, lambda b: net(b), batches)
    assert n == 3
    for i in (1, 4):
        assert torch.allclose(net[i].running_mean, expected[i][0], atol=1e-5)
        assert torch.allclose(net[i].running_var, expected[i][1], atol=1e-4)
        assert int(net[i].num_batches_tracked) == 3
    assert not net.training  # mode restored
    assert net[1].momentum == 0.3 and net[4].momentum == 0.1  # momenta restored


def test_recalibrate_bn_max_batches_and_train_mode():
    net = _bn_net()
    net.train()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 3, 5, 5, generator=g) + k for k in range(5)]
    with torch.no_grad():
        expected = _hand_stats(net, batches[:2])
    seen = []
    n = recalibrate_bn(net, lambda b: (seen.append(b), net(b)), iter(batches), max_batches=2)
    assert n == 2 and len(seen) == 2
    assert torch.allclose(net[1].running_mean, expected[1][0], atol=1e-5)
    assert net.training
    assert recalibrate_bn(nn.Sequential(nn.Linear(2, 2)), lambda b: None, [1, 2]) == 0


@pytest.mark.parametrize('normalize,group_stat', [(True, 'rms'), (False, 'l1')])
def test_producer_scores_from_the_flat_pass_equal_per_tensor(toy, normalize, group_stat):
    """The MAC projection's order: the first grouping's statistics of all masks in one flat pass are, to the bit,
    what each mask's first_group_scores gives (masks with one grouping only: c1 'out', fc 'in'; c2 has two)."""
    from mmsemiprune.core.finalize import producer_scores
    net, pr = toy.make_pruner('semi', 'params', 0.8, normalize=normalize, group_stat=group_stat)
    items = pr.items()
    got = producer_scores(items)
    ref = {k: m.first_group_scores(w) for k, m, w in items if m.groupings and m.per_group_scores}
    assert set(got) == set(ref) == {'c1.weight', 'fc.weight'}
    for k in ref:
        assert got[k].shape == ref[k].shape and torch.equal(got[k], ref[k]), k


@pytest.mark.parametrize('force', [False, True])
def test_live_regions_equal_live_region_per_tensor(force):
    """LiveRegions (the soft projection's K of all masks in one pass) is live_region of every mask, for conv,
    linear, adjacency-like and 1-D shapes, on the CPU reference and on the GPU's reduction path."""
    from mmsemiprune.core.fused import segment
    from mmsemiprune.core.finalize import LiveRegions, live_region
    shapes = [(6, 4, 3, 1), (5, 6), (3, 5, 5), (7, ), (2, 3, 1, 1)]
    g = torch.Generator().manual_seed(0)
    lr = LiveRegions(shapes, 'cpu')
    for p in (0.05, 0.3, 0.7):
        masks = [torch.rand(s, generator=g) > p for s in shapes]
        masks[0][2] = False  # a dead row
        masks[1][:, 3] = False  # a dead column
        with segment.force(force):
            k = lr(torch.cat([m.reshape(-1) for m in masks]))
        ref = torch.cat([live_region(m).reshape(-1) for m in masks])
        assert k.dtype == torch.float32 and torch.equal(k, ref), p
