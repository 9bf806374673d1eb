import pytest
import torch
from torch import nn

from mmsemiprune.core import ChannelSet, PruneSpec, SemiPruner, Slot
from mmsemiprune.core.shrink import bake_model, shrink
from mmsemiprune.core.report import format_report, prune_report


def _frozen_toy(toy, mode='structured', rate=0.8, sets=None):
    net, pr = toy.make_pruner(mode, 'flops', rate)
    if sets is not None:
        pr.channel_sets = sets
    net(toy.data(16)[0])
    pr.freeze()
    return net, pr


def test_report_numbers_match_masks(toy):
    net, pr = _frozen_toy(toy, 'semi', 0.8)
    rep = pr.report()
    assert rep['frozen'] and rep['mode'] == 'semi' and rep['target_rate'] == 0.8
    n = kept = fd = fk = 0
    for L, (key, m, w) in zip(rep['layers'], pr.items()):
        k = int(m.mask.sum())
        assert L['name'] == key and L['shape'] == tuple(w.shape) and L['numel'] == w.numel() and L['kept'] == k
        assert L['rate'] == pytest.approx(1 - k / w.numel())
        assert L['macs_per_entry'] == float(m.macs)
        n, kept = n + w.numel(), kept + k
        fd, fk = fd + float(m.macs) * w.numel(), fk + float(m.macs) * k
    assert rep['numel'] == n and rep['kept'] == kept
    assert rep['rate_params'] == pytest.approx(1 - kept / n)
    assert rep['flops_dense'] == pytest.approx(fd) and rep['flops_kept'] == pytest.approx(fk)
    assert rep['rate_flops'] == pytest.approx(1 - fk / fd)
    assert abs(rep['rate_flops'] - 0.8) <= 0.01
    assert 0 < rep['structural_share'] <= 1


def test_structural_share_by_mode(toy):
    _, pr = _frozen_toy(toy, 'structured', 0.8)
    assert pr.report()['structural_share'] == pytest.approx(1.0)
    _, pr = _frozen_toy(toy, 'unstructured', 0.5)
    assert pr.report()['structural_share'] < 0.5


def test_report_matches_shrunk_model(toy):
    """flops_compact is what remains after physical removal (export.shrink)."""
    net, pr = _frozen_toy(toy, 'semi', 0.8)
    rep = pr.report()
    macs = {L['name']: L['macs_per_entry'] for L in rep['layers']}
    bake_model(net)
    shrink(net, pr.channel_sets)
    mods = dict(net.named_modules())
    compact = sum(macs[k] * mods[k.rsplit('.', 1)[0]].weight.numel() for k in macs)
    assert compact == pytest.approx(rep['flops_compact'])
    assert rep['compact_flops_ratio'] == pytest.approx(compact / rep['flops_dense'])
    assert rep['compact_flops_ratio'] < 1


def test_report_matches_shrunk_model_fixed_consumer(toy):
    torch.manual_seed(0)
    net = toy.Toy()
    C = net.c2.out_channels
    sets = [toy.sets()[0], ChannelSet('c2', C, producers=[Slot('c2')], consumers=[Slot('fc', dim=1)],
                                      norms=['b2'], fixed_consumer=True)]
    pr = SemiPruner(net, [PruneSpec('c1'), PruneSpec('c2')], 0.8, mode='structured', channel_sets=sets)
    x = toy.data(16)[0]
    pr.profile(lambda: net(x[:2]))
    net(x)
    pr.freeze()
    rep = pr.report()
    assert (~net.c2.weight_psi.mask.flatten(1).any(1)).any()  # some c2 channels lost their producer
    bake_model(net)
    shrink(net, sets)
    mods = dict(net.named_modules())
    compact = sum(L['macs_per_entry'] * mods[L['name'].rsplit('.', 1)[0]].weight.numel() for L in rep['layers'])
    assert compact == pytest.approx(rep['flops_compact'])


def test_structural_without_channel_sets():
    net = nn.Sequential(nn.Linear(4, 3))
    pr = SemiPruner(net, [PruneSpec('0', groups=['out'])], 0.5, mode='unstructured')
    mask = torch.tensor([[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    pr.masks[0].freeze(mask)
    rep = prune_report(pr)
    assert rep['kept'] == 6 and rep['rate_params'] == 0.5
    assert rep['structural_share'] == pytest.approx(4 / 6)  # the fully pruned row
    assert 'rate_flops' not in rep  # not profiled
    assert rep['layers'][0]['gate_group_share'] == 0.0


def test_gate_group_share_semi():
    net = nn.Sequential(nn.Linear(4, 4))
    pr = SemiPruner(net, [PruneSpec('0', groups=['out'])], 0.5, mode='semi')
    with torch.no_grad():
        pr.masks[0].gate.logit.copy_(torch.tensor([1.0, -1.0, 2.0, 3.0]))
    assert pr.report()['layers'][0]['gate_group_share'] == 0.75
    assert not pr.report()['frozen']


def test_format_report(toy):
    _, pr = _frozen_toy(toy, 'semi', 0.8)
    rep = pr.report()
    s = format_report(rep)
    for name in ('c1.weight', 'c2.weight', 'fc.weight'):
        assert name in s
    assert f'prune_rate (params): {rep["rate_params"]:.4f}' in s
    assert f'prune_rate (flops): {rep["rate_flops"]:.4f}' in s
    assert 'mode: semi' in s
    assert len(format_report(rep, max_layers=1).splitlines()) == len(s.splitlines()) - 2
