"""Per-backbone prunable declarations (mmsemiprune/models/prunable.py) against the real MMAction2 modules.

- Coverage: which weights each role selects on ST-GCN, ST-GCN++, AAGCN and CTR-GCN.
- Channel sets of ST-GCN / ST-GCN++ are checked *functionally*: once every declared consumer slice of a
  channel is zeroed, changing what its producers write must not change the backbone's output (an
  undeclared reader would break physical channel removal), and every slot / norm has the set's size.
- AAGCN and CTR-GCN: the same reader check (branch parts of a concatenation and gate slots included), every
  conv / linear dimension indexed by some channel set (:func:`undeclared`), and a compute target met on a toy
  CTR-GCN within 2 % by the pruner's MACs count, which equals mmengine's count of the exported model.
- Frozen masks are topologically consistent; the adjacency role masks ``PA`` / ``A``; errors are clear.
"""
import re

import pytest
import torch
from torch import nn

from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from mmsemiprune.core import SemiPruner
from mmsemiprune.core.topology import channel_view, make_consistent
from mmsemiprune.models import declare, supported_backbones
from mmsemiprune.models.prunable import undeclared

pytestmark = pytest.mark.usefixtures('one_thread')
register_all_modules(init_default_scope=True)

NTU = dict(layout='nturgb+d', mode='spatial')
TINY = dict(base_channels=16, num_stages=4, inflate_stages=[3], down_stages=[3])
BACKBONES = {
    'stgcn': dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), **TINY),
    'stgcnpp': dict(type='STGCN', graph_cfg=NTU, gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn', **TINY),
    'aagcn': dict(type='AAGCN', graph_cfg=NTU, **TINY),
    'ctrgcn': dict(type='CTRGCN', graph_cfg=NTU, **TINY),
}
# module-name patterns (block / branch indices replaced by '#') of the weights each backbone has and
# which the default roles (gcn, tcn, residual) leave out on purpose
NOT_BY_DEFAULT = {
    'stgcn': set(),
    'stgcnpp': set(),
    'aagcn': {'gcn.#.gcn.conv_a.#', 'gcn.#.gcn.conv_b.#', 'gcn.#.gcn.conv_sa', 'gcn.#.gcn.conv_ta',
              'gcn.#.gcn.fc1c', 'gcn.#.gcn.fc2c'},
    'ctrgcn': {'net.#.gcn1.convs.#.conv1', 'net.#.gcn1.convs.#.conv2', 'net.#.gcn1.convs.#.conv4'},
}
# ...and what attention=True adds (AAGCN's Conv1d / Linear attention layers stay out)
ATTENTION = {
    'stgcn': set(), 'stgcnpp': set(),
    'aagcn': {'gcn.#.gcn.conv_a.#', 'gcn.#.gcn.conv_b.#'},
    'ctrgcn': {'net.#.gcn1.convs.#.conv1', 'net.#.gcn1.convs.#.conv2', 'net.#.gcn1.convs.#.conv4'},
}
ADJ = {'stgcn': ('gcn.#.gcn', 'PA'), 'stgcnpp': ('gcn.#.gcn', 'A'), 'aagcn': ('gcn.#.gcn', 'A'),
       'ctrgcn': ('net.#.gcn1', 'A')}


def backbone(name):
    torch.manual_seed(0)
    return MODELS.build(BACKBONES[name])


def pattern(name):
    return re.sub(r'\.\d+(?=\.|$)', '.#', name)


def weights(bb):
    return {n for n, m in bb.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def test_supported_backbones():
    assert supported_backbones() == ['AAGCN', 'CTRGCN', 'STGCN']


@pytest.mark.parametrize('name', list(BACKBONES))
def test_role_coverage(name):
    bb = backbone(name)
    specs, _ = declare(bb, '')
    got = {s.module for s in specs}
    assert all(s.param == 'weight' for s in specs)
    assert {pattern(n) for n in weights(bb) - got} == NOT_BY_DEFAULT[name]
    assert got <= weights(bb)
    specs2, _ = declare(bb, '', dict(attention=True, adjacency=True))
    extra = {(pattern(s.module), s.param) for s in specs2} - {(pattern(s.module), s.param) for s in specs}
    assert extra == {(p, 'weight') for p in ATTENTION[name]} | {ADJ[name]}
    adj = [s for s in specs2 if s.param != 'weight']
    assert adj and all(list(s.groups) == ['col'] for s in adj)  # edges grouped by graph node
    only_tcn, _ = declare(bb, '', dict(gcn=False, residual=False))
    assert only_tcn and all(re.search(r'tcn', s.module) for s in only_tcn)


@pytest.mark.parametrize('name', ['stgcn', 'stgcnpp'])
def test_channel_sets_have_consistent_sizes(name):
    bb = backbone(name)
    specs, sets = declare(bb, '')
    assert sets, 'ST-GCN / ST-GCN++ declare channel sets'
    mods = dict(bb.named_modules())
    keys = {f'{s.module}.{s.param}' for s in specs}
    for cs in sets:
        for slot in cs.producers + cs.consumers:
            assert slot.key() in keys, f'{cs.name}: slot {slot.key()} is not a pruned tensor'
            w = mods[slot.module]._parameters[slot.param]
            channel_view(w.detach(), slot, cs.size)  # raises if dim != fold * size
        for norm in cs.norms:  # a whole-set norm, or a branch's part of a concatenation (ST-GCN++'s MS-TCN)
            o, n = norm.span(cs.size) if hasattr(norm, 'span') else (0, cs.size)
            assert mods[getattr(norm, 'module', norm)].num_features == n, f'{cs.name}: norm {norm}'
        for o, n in cs.parts():
            assert any(s.span(cs.size) == (o, n) for s in cs.producers)  # a branch writes each part
    # the classifier reads the last stage: its set is never removed entirely
    assert any(cs.fixed_consumer for cs in sets)


def set_channel(param, slot, size, c, make):
    """Overwrite channel c's slice of ``param`` (all folds) with make(shape); a no-op when the slot does not hold
    channel c (a branch's part of a concatenation)."""
    o, n = slot.span(size)
    if not o <= c < o + n:
        return
    t = param.data
    v = channel_view(t.clone(), slot, size)  # (fold, n, rest): a copy when dim > 0
    v[:, c - o, :] = make(v[:, c - o, :].shape)
    param.data.copy_(v.reshape((slot.fold * n, ) + tuple(t.movedim(slot.dim, 0).shape[1:])).movedim(0, slot.dim))


VARIANTS = dict(BACKBONES, aagcn_agcn=dict(BACKBONES['aagcn'], gcn_attention=False))


@pytest.mark.parametrize('name', ['stgcn', 'stgcnpp', 'aagcn', 'aagcn_agcn', 'ctrgcn'])
def test_channel_sets_list_every_reader(name):
    """Zero all declared consumer slices of a channel: its producers (gate rows included) no longer influence the
    output. The attention role is on so that AAGCN / CTR-GCN have removable block inputs too."""
    torch.manual_seed(0)
    bb = MODELS.build(VARIANTS[name]).eval()
    _, sets = declare(bb, '', dict(attention=True))
    mods = dict(bb.named_modules())
    x = torch.randn(2, 2, 12, 25, 3)
    g = torch.Generator().manual_seed(0)
    checked = 0
    for cs in sets:
        if cs.fixed_consumer or cs.fixed_producer or not cs.producers:
            continue
        for c in (0, cs.size - 1):
            with torch.no_grad():
                for slot in cs.consumers:
                    set_channel(mods[slot.module]._parameters[slot.param], slot, cs.size, c, lambda s: torch.zeros(s))
                ref = bb(x)
                for slot in cs.producers:
                    set_channel(mods[slot.module]._parameters[slot.param], slot, cs.size, c,
                                lambda s: torch.randn(s, generator=g))
                out = bb(x)
            assert torch.allclose(ref, out, atol=1e-5), \
                f'channel {c} of set {cs.name} is read by a slice missing from its consumers'
            checked += 1
    assert checked >= 2 * 3 or name == 'aagcn'  # AAGCN's attention keeps every set whole (next test)


@pytest.mark.parametrize('name', ['aagcn', 'aagcn_agcn', 'ctrgcn'])
def test_branch_parts_list_every_reader(name):
    """The reader check on the first and last channel of every part of a concatenation (CTR-GCN's temporal
    branches), and, for AAGCN with its attention, that the sets its attention reads are fixed."""
    torch.manual_seed(0)
    bb = MODELS.build(VARIANTS[name]).eval()
    _, sets = declare(bb, '', dict(attention=True))
    mods = dict(bb.named_modules())
    x = torch.randn(2, 2, 12, 25, 3)
    g = torch.Generator().manual_seed(1)
    probes = [(cs, c) for cs in sets if not (cs.fixed_consumer or cs.fixed_producer)
              for o, n in cs.parts() for c in (o, o + n - 1)]
    if name == 'aagcn':  # spatial / temporal / channel attention read every gcn output: nothing removable
        assert not probes and all(cs.fixed_consumer for cs in sets)
        return
    assert len(probes) >= (8 if name == 'ctrgcn' else 0)
    for cs, c in probes:
        with torch.no_grad():
            for slot in cs.consumers:
                set_channel(mods[slot.module]._parameters[slot.param], slot, cs.size, c, lambda s: torch.zeros(s))
            ref = bb(x)
            for slot in cs.producers:
                set_channel(mods[slot.module]._parameters[slot.param], slot, cs.size, c,
                            lambda s: torch.randn(s, generator=g))
            out = bb(x)
        assert torch.allclose(ref, out, atol=1e-5), f'channel {c} of set {cs.name} is read by an undeclared slice'


@pytest.mark.parametrize('name', ['stgcn', 'stgcnpp', 'aagcn', 'aagcn_agcn', 'ctrgcn'])
def test_every_conv_dimension_is_declared(name):
    """Every conv / linear weight's output and input dimension is indexed by a channel set (a fixed one where it
    cannot be removed); a conv added to a block without a declaration is reported."""
    torch.manual_seed(0)
    bb = MODELS.build(VARIANTS[name])
    for targets in (None, dict(attention=True)):
        _, sets = declare(bb, 'backbone.', targets)
        assert undeclared(bb, sets) == []
    blocks = bb.net if name == 'ctrgcn' else bb.gcn
    blocks[1].extra = nn.Conv2d(4, 4, 1)  # a new layer nobody declared
    _, sets = declare(bb, 'backbone.')
    where = 'net' if name == 'ctrgcn' else 'gcn'
    assert undeclared(bb, sets) == [f'backbone.{where}.1.extra 0', f'backbone.{where}.1.extra 1']


@pytest.mark.parametrize('name', ['aagcn', 'aagcn_agcn', 'ctrgcn'])
def test_new_channel_sets_have_consistent_sizes(name):
    torch.manual_seed(0)
    bb = MODELS.build(VARIANTS[name])
    specs, sets = declare(bb, '', dict(attention=True))
    mods = dict(bb.named_modules())
    keys = {f'{s.module}.{s.param}' for s in specs}
    for cs in sets:
        for slot in cs.producers + cs.consumers:
            channel_view(mods[slot.module]._parameters[slot.param].detach(), slot, cs.size)  # raises on a mismatch
            if not (cs.fixed_consumer or slot.gate):
                assert slot.key() in keys, f'{cs.name}: slot {slot.key()} of a removable set is not pruned'
        for norm in cs.norms:
            o, n = norm.span(cs.size) if hasattr(norm, 'span') else (0, cs.size)
            assert mods[getattr(norm, 'module', norm)].num_features == n, f'{cs.name}: norm {norm}'
        for o, n in cs.parts():
            assert any(s.span(cs.size) == (o, n) for s in cs.producers)  # a branch writes each part
    assert sum(1 for cs in sets if cs.head == 'cls_head.fc') == 1
    removable = [cs for cs in sets if not cs.fixed_consumer]
    assert removable if name != 'aagcn' else not removable


@pytest.mark.parametrize('name', ['stgcn', 'stgcnpp'])
def test_frozen_masks_are_topologically_consistent(name):
    bb = backbone(name)
    specs, sets = declare(bb, '')
    pr = SemiPruner(bb, specs, 0.85, mode='semi', channel_sets=sets)
    pr.set_progress(0.5)
    pr.freeze()
    assert pr.frozen and abs(pr.report()['rate_params'] - 0.85) <= 0.01
    masks = {k: m.mask.clone() for k, m, _ in pr.items()}
    assert make_consistent(masks, sets) == 0  # nothing left to remove: no unread / unwritten channel
    assert pr.report()['structural_share'] > 0


@pytest.mark.parametrize('name', list(BACKBONES))
def test_adjacency_role_masks_the_graph(name):
    from mmsemiprune.models import SemiPruneRecognizerGCN  # noqa: F401
    torch.manual_seed(0)
    model = MODELS.build(dict(type='mmsemiprune.SemiPruneRecognizerGCN', backbone=BACKBONES[name],
                              cls_head=dict(type='GCNHead', num_classes=4, in_channels=32),
                              prune_cfg=dict(target_rate=0.5, targets=dict(adjacency=True))))
    adj = [(k, m, w) for k, m, w in model.pruner.items() if not k.endswith('.weight')]
    assert len(adj) == 4  # one per block
    model.pruner.profile(lambda: model.extract_feat(torch.randn(1, 1, 2, 12, 25, 3)))
    model.pruner.set_progress(0.5)
    out = model.extract_feat(torch.randn(2, 1, 2, 12, 25, 3))[0]
    out.float().pow(2).mean().backward()
    for k, m, w in adj:
        assert w.grad is not None and w.grad.abs().sum() > 0, k
    model.pruner.freeze()
    key, m, w = adj[0]
    mod = dict(model.named_modules())[key.rsplit('.', 1)[0]]
    assert torch.equal(getattr(mod, key.rsplit('.', 1)[1]), w.detach() * m.mask)  # the graph the layer uses


def test_declare_errors():
    bb = backbone('stgcn')
    with pytest.raises(ValueError, match='unknown prune_cfg.targets role'):
        declare(bb, '', dict(attn=True))
    with pytest.raises(ValueError, match='unknown prune_cfg.groups role'):
        declare(bb, '', None, dict(conv=['out']))
    with pytest.raises(ValueError, match='selects no tensor'):
        declare(bb, '', dict(gcn=False, tcn=False, residual=False))

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.b = nn.Conv2d(8, 8, 1)
    with pytest.raises(ValueError, match='cannot prune backbone .Other.*STGCN'):
        declare(Other(), '')
    specs, sets = declare(Other(), 'backbone.', [dict(pattern=r'backbone\.[ab]', groups=['out'])])
    assert [s.module for s in specs] == ['backbone.a', 'backbone.b'] and sets == []
    with pytest.raises(ValueError, match='matches no tensor'):
        declare(Other(), 'backbone.', [dict(pattern=r'backbone\.zzz')])


@pytest.mark.parametrize('target', [0.3, 0.45])
def test_compute_target_met_on_a_toy_ctrgcn(tmp_path, target):
    """``target_macs`` on CTR-GCN (narrow, 12 frames, attention role on so that every conv is counted): the frozen
    masks keep target − 2 % ≤ MACs / dense ≤ target by the pruner's count, and that count (the topology einsum
    included) is what mmengine's FlopAnalyzer counts for the convs and the einsum of the exported model."""
    from mmengine.config import Config

    from mmsemiprune.core.compute import dense_macs, group_prices, masked_macs
    from mmsemiprune.export import export_pruned
    from mmsemiprune.export.exporter import build_model
    cfg = Config(dict(default_scope='mmaction', model=dict(
        type='mmsemiprune.SemiPruneRecognizerGCN', backbone=dict(VARIANTS['ctrgcn'], base_channels=8, num_person=1),
        cls_head=dict(type='GCNHead', num_classes=4, in_channels=16),
        prune_cfg=dict(target_rate=0.5, mode='semi', target_macs=target, gate_price_by='macs',
                       targets=dict(attention=True)))))
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    x = torch.randn(1, 1, 1, 12, 25, 3)  # (batch, clips, M, T, V, C)
    model.profile(x)
    pr = model.pruner
    prices = group_prices(pr.items(), pr.channel_sets)  # gate_price_by='macs': a conv3 row frees its channel's
    key = 'backbone.net.0.gcn1.convs.0.conv3.weight'  # row, the branch columns and the topology einsum
    own = dict((k, float(m.macs) * m.gsize0[0]) for k, m, _ in pr.items())[key]
    assert prices[key].shape == (8, ) and float(prices[key][0]) > 3 * float(own)
    pr.freeze()
    items = pr.items()
    masks = {k: m.mask for k, m, _ in items}
    dense, kept = dense_macs(items, pr.channel_sets), masked_macs(items, masks, pr.channel_sets)
    assert target - 0.02 <= kept / dense <= target + 1e-9
    ckpt = tmp_path / 'x_pruned.pth'
    torch.save(dict(state_dict=model.state_dict()), str(ckpt))
    rep = export_pruned(cfg, str(ckpt), str(tmp_path / 'out'), shape=(2, 1, 12, 25, 3), inputs='synthetic')
    assert rep['exactness']['ok']
    ops = rep['flops']['by_operator_dense'], rep['flops']['by_operator_exported']
    assert [o['conv'] + o['einsum'] for o in ops] == pytest.approx([dense, kept], rel=1e-9)
