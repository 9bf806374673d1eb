"""Which tensors of each GCN backbone are pruned, with which groups, and its channel sets.

Roles (``prune_cfg.targets``, defaults in brackets):

- ``gcn``       [on]  the spatial 1x1 convs (ST-GCN ``gcn.conv``: K·C rows, grouped by output channel
                       across the K subsets, ``out:fold=K``; AAGCN ``conv_d.k``; CTR-GCN ``conv3``)
- ``tcn``       [on]  the temporal convs (``tcn.conv`` (C, C, 9, 1); MS-TCN branch convs), ``out``
- ``residual``  [on]  the strided 1x1 residual / down-sampling convs, ``out``
- ``adjacency`` [off] the learned adjacency (``PA`` / ``A`` (K, V, V)), grouped by graph node (``col``:
                       all edges into a joint). Joints themselves are never removed: the adjacency is
                       pruned edge-wise only, never along the joint axis of the activations.
- ``attention`` [off] AAGCN / CTR-GCN attention and topology-refinement convs (``conv_a/b``, ``conv1/2/4``)

BatchNorm, biases, ``data_bn`` and the classifier head are never pruned.

Channel sets (producers / consumers / norms of each activation channel, residual identities merged)
are declared for MMAction2's ``STGCN`` (``unit_tcn`` or ``mstcn`` temporal units, ``gcn_with_res``,
``conv_pos='pre'``), MMAction2's ``AAGCN`` and the plugin's ``CTRGCN``; they drive topological consistency,
the structural share, the compute count of ``target_macs`` / ``gate_price_by='macs'`` and physical removal.
What stays whole and why is written in :class:`_AAGCNDeclaration` and :class:`_CTRGCNDeclaration` (AAGCN's
attention embeddings, the activations its spatial / temporal / channel attention reads, a set read by a layer
that no enabled role prunes). :func:`undeclared` lists the conv / linear dimensions a declaration leaves out.
"""
import re
from typing import Dict, List, Tuple

from mmaction.models.utils.gcn_utils import mstcn, unit_tcn
from torch import nn

from ..core.pruner import PruneSpec
from ..core.topology import ChannelSet, Slot

__all__ = ['declare', 'ROLES', 'supported_backbones', 'undeclared']

ROLES = ('gcn', 'tcn', 'residual', 'adjacency', 'attention')
DEFAULT_ROLES = dict(gcn=True, tcn=True, residual=True, adjacency=False, attention=False)


def supported_backbones():
    return sorted(_DECLARE)


def declare(backbone: nn.Module, prefix: str = 'backbone.', targets=None, groups=None) -> Tuple[List[PruneSpec], List[ChannelSet]]:
    """Prunable tensors and channel sets of ``backbone`` (names prefixed with ``prefix``).

    ``targets``: dict role → bool, or a list of dict(pattern=regex, param='weight', groups=[...])
    naming tensors explicitly (then any backbone works, without channel sets).
    ``groups``: dict role → list of group specs overriding the defaults (e.g. ``tcn=['out', 'in']``).
    """
    if isinstance(targets, (list, tuple)):
        return _explicit(backbone, prefix, targets), []
    roles = dict(DEFAULT_ROLES)
    for k, v in (targets or {}).items():
        if k not in ROLES:
            raise ValueError(f'unknown prune_cfg.targets role {k!r}; roles are {", ".join(ROLES)} '
                             '(or give a list of dict(pattern=..., groups=[...]))')
        roles[k] = bool(v)
    for k in (groups or {}):
        if k not in ROLES:
            raise ValueError(f'unknown prune_cfg.groups role {k!r}; roles are {", ".join(ROLES)}')
    name = type(backbone).__name__
    if name not in _DECLARE:
        raise ValueError(f'mmsemiprune cannot prune backbone {name!r}: supported are '
                         f'{", ".join(supported_backbones())}. For another GCN, list its tensors with '
                         "prune_cfg=dict(targets=[dict(pattern=r'backbone\\..*conv', groups=['out'])])")
    specs, sets = _DECLARE[name](backbone, prefix, roles, groups or {})
    if not specs:
        raise ValueError(f'prune_cfg.targets={targets} selects no tensor of {name}; enable at least one role')
    return specs, sets


def _explicit(backbone, prefix, targets):
    specs = []
    for t in targets:
        if not isinstance(t, dict) or 'pattern' not in t:
            raise ValueError(f'bad prune_cfg.targets entry {t!r}: expected dict(pattern=regex, groups=[...])')
        pat = re.compile(t['pattern'])
        param = t.get('param', 'weight')
        hit = [n for n, m in backbone.named_modules(prefix=prefix.rstrip('.'))
               if pat.fullmatch(n) and getattr(m, '_parameters', {}).get(param) is not None]
        if not hit:
            raise ValueError(f'prune_cfg.targets pattern \'{t["pattern"]}\' (param {param!r}) matches no tensor; '
                             f'module names look like {prefix}gcn.0.gcn.conv')
        specs += [PruneSpec(n, param, list(t.get('groups', ['out']))) for n in hit]
    return specs


def _g(groups, role, default):
    return list(groups.get(role, default))


# -- ST-GCN / ST-GCN++ (mmaction.models.STGCN) ---------------------------------------------------------
class _UF:
    """Union-find over channel-set keys (residual identities merge the sets they connect)."""

    def __init__(self):
        self.parent = {}

    def find(self, a):
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


class _Declaration:
    """Prunable tensors and raw channel sets keyed by activation name, merged by identities (union-find)."""

    def __init__(self, prefix, roles, groups):
        self.prefix, self.roles, self.groups = prefix, roles, groups
        self.specs, self.raw, self.uf = [], {}, _UF()

    def cs(self, key, size):
        self.raw.setdefault(key, dict(size=size, producers=[], consumers=[], norms=[], fp=False, fc=False, aggs=[]))
        self.uf.find(key)
        return self.raw[key]

    def prune(self, role, module, default, param='weight'):
        if self.roles[role]:
            self.specs.append(PruneSpec(module, param, _g(self.groups, role, default)))

    def fixed(self, key, size, producers=(), consumers=()):
        """A channel set that is never removed (both sides fixed): it only records which slices index it."""
        d = self.cs(key, size)
        d['producers'] += list(producers)
        d['consumers'] += list(consumers)
        d['fp'] = d['fc'] = True
        return d

    def channel_sets(self, fix_unpruned_readers: bool = False) -> List[ChannelSet]:
        """Merge the activations joined by identities into channel sets. ``fix_unpruned_readers``: a set with a
        consumer slice that no role prunes is fixed (nothing can ever make it unread, so no channel of it is
        removed, priced or projected away)."""
        merged: Dict[str, ChannelSet] = {}
        for key, d in self.raw.items():
            root = self.uf.find(key)
            if root not in merged:
                merged[root] = ChannelSet(name=root, size=d['size'])
            m = merged[root]
            if m.size != d['size']:
                raise RuntimeError(f'channel set {key} merges sizes {m.size} and {d["size"]}')
            m.producers += d['producers']
            m.consumers += d['consumers']
            m.norms += d['norms']
            m.fixed_producer |= d['fp']
            m.fixed_consumer |= d['fc']
            m.aggs += d['aggs']
            if 'agg' in d:
                m.agg_ref, m.agg_factor = d['agg']
            if 'head' in d:
                m.head = d['head']
        sets = [s for s in merged.values() if s.producers or s.consumers]
        pruned = {f'{s.module}.{s.param}' for s in self.specs}
        for s in sets:
            s.name = '+'.join(sorted({k for k in self.raw if self.uf.find(k) == s.name}))
            if fix_unpruned_readers and any(sl.key() not in pruned for sl in s.consumers):
                s.fixed_consumer = True
        return sets

    def residual(self, b, res, cin, IN, OUT):
        """A block residual: a strided 1x1 ``unit_tcn`` (producer / norm / consumer) or an identity (merge)."""
        if isinstance(res, nn.Module) and hasattr(res, 'conv'):
            self.prune('residual', f'{b}.residual.conv', ['out'])
            self.raw[OUT]['producers'].append(Slot(f'{b}.residual.conv', dim=0))
            self.raw[OUT]['norms'].append(f'{b}.residual.bn')
            self.raw[IN]['consumers'].append(Slot(f'{b}.residual.conv', dim=1))
        elif _is_identity(res, cin):
            self.uf.union(OUT, IN)

    def block_input(self, i, channels) -> str:
        """The set ``in{i}`` of block ``i``'s input, merged with block ``i - 1``'s output; block 0's input
        coordinates are never removed. Returns its key."""
        IN = f'in{i}'
        if i > 0:
            self.uf.union(IN, f'out{i - 1}')
        self.cs(IN, channels)
        if i == 0:
            self.raw[IN]['fp'] = self.raw[IN]['fc'] = True
        return IN

    def gcn_tail(self, raw, prefix, g, OUT, IN):
        """A graph unit's BatchNorm, adaptive adjacency and ``down`` projection (AAGCN's ``unit_aagcn``, CTR-GCN's
        ``unit_ctrgcn``): ``down`` is a producer / norm / consumer of the unit's output set, an identity merges it
        with the block input's."""
        raw[OUT]['norms'].append(f'{prefix}.bn')
        if 'A' in g._parameters:
            self.prune('adjacency', prefix, ['col'], param='A')
        self.gcn_down(prefix, g.down, OUT, IN)

    def gcn_down(self, prefix, down, OUT, IN):
        """A graph unit's ``down`` residual: a 1x1 conv + BN (``down.0`` / ``down.1``) produces into the unit's
        output set and reads the block input; anything else is an identity, which merges the two sets."""
        if isinstance(down, nn.Sequential):
            self.prune('residual', f'{prefix}.down.0', ['out'])
            self.raw[OUT]['producers'].append(Slot(f'{prefix}.down.0', dim=0))
            self.raw[OUT]['norms'].append(f'{prefix}.down.1')
            self.raw[IN]['consumers'].append(Slot(f'{prefix}.down.0', dim=1))
        else:
            self.uf.union(OUT, IN)

    def concat(self, key, parts):
        """The set ``key`` of a channel concatenation: ``parts`` = [(producer conv, its norms, width)] in order,
        each writing (and normalising) its own channels offset .. offset + width − 1. Returns the raw set and
        its size."""
        size = sum(w for _, _, w in parts)
        cs, off = self.cs(key, size), 0
        for conv, norms, w in parts:
            cs['producers'].append(Slot(conv, dim=0, offset=off, length=w))
            cs['norms'] += [Slot(n, offset=off, length=w) for n in norms]
            off += w
        return cs, size


class _STGCNDeclaration(_Declaration):
    """Prunable tensors and channel sets of an MMAction2 ``STGCN``, block by block: per block ``i`` three
    activations, ``in{i}`` (block input), ``mid{i}`` (gcn output) and ``out{i}`` (block output); the gcn
    unit, the temporal unit (``unit_tcn`` or ``mstcn``) and the residual each add their producers /
    consumers / norms; identities merge activations."""

    def block(self, i, blk, last):
        b = f'{self.prefix}gcn.{i}'
        g = blk.gcn
        IN, MID, OUT = self.block_input(i, g.in_channels), f'mid{i}', f'out{i}'
        self.cs(MID, g.out_channels)
        self.cs(OUT, g.out_channels)
        self.gcn_unit(b, g, IN, MID)
        self.temporal_unit(i, b, blk.tcn, MID, OUT)
        self.residual(b, blk.residual, g.in_channels, IN, OUT)
        if last:
            self.raw[OUT]['fc'] = True  # read by the classifier head
            self.raw[OUT]['head'] = 'cls_head.fc'  # MMAction2's GCNHead: global average pool, then this linear

    def gcn_unit(self, b, g, IN, MID):
        K, raw = g.num_subsets, self.raw
        pre = g.conv_pos == 'pre'
        self.prune('gcn', f'{b}.gcn.conv', [f'out:fold={K}' if pre else 'out'])
        if pre:
            raw[MID]['producers'].append(Slot(f'{b}.gcn.conv', dim=0, fold=K))
            raw[IN]['consumers'].append(Slot(f'{b}.gcn.conv', dim=1))
            # adjacency aggregation Σ_k Σ_v x[k, c, t, v]·A[k, v, w]: K·V MACs per gcn-conv output position
            raw[MID]['agg'] = (f'{b}.gcn.conv.weight', float(K * g.A.shape[-1]))
        else:
            raw[MID]['producers'].append(Slot(f'{b}.gcn.conv', dim=0))
            raw[IN]['consumers'].append(Slot(f'{b}.gcn.conv', dim=1, fold=K))
        raw[MID]['norms'].append(f'{b}.gcn.bn')
        pname = 'PA' if 'PA' in g._parameters else ('A' if 'A' in g._parameters else None)
        if pname:
            self.prune('adjacency', f'{b}.gcn', ['col'], param=pname)
        if g.with_res:
            self.gcn_down(f'{b}.gcn', getattr(g, 'down', None), MID, IN)

    def temporal_unit(self, i, b, t, MID, OUT):
        raw = self.raw
        if isinstance(t, unit_tcn):
            self.prune('tcn', f'{b}.tcn.conv', ['out'])
            raw[MID]['consumers'].append(Slot(f'{b}.tcn.conv', dim=1))
            raw[OUT]['producers'].append(Slot(f'{b}.tcn.conv', dim=0))
            raw[OUT]['norms'].append(f'{b}.tcn.bn')
        elif isinstance(t, mstcn):
            self.mstcn_branches(i, b, t, MID)
            self.prune('tcn', f'{b}.tcn.transform.2', ['out'])
            raw[OUT]['producers'].append(Slot(f'{b}.tcn.transform.2', dim=0))
            raw[OUT]['norms'].append(f'{b}.tcn.bn')
        else:
            raise ValueError(f'{b}.tcn: unsupported temporal unit {type(t).__name__}; expected unit_tcn or mstcn')

    def mstcn_branches(self, i, b, t, MID):
        """MS-TCN (ST-GCN++): every branch reads ``mid{i}``; a dilated branch (1x1 conv, BN, ReLU, ``unit_tcn``)
        has its inner set ``br{i}_{j}``; the concatenation of the branch outputs is ``cat{i}``, one part per branch
        (the dilated ``unit_tcn`` conv, the max-pool branch's 1x1 conv through BN, ReLU and max-pool, the 1x1 conv),
        read by ``transform`` (BN, ReLU, 1x1 conv)."""
        raw, parts = self.raw, []
        for j, br in enumerate(t.branches):
            p = f'{b}.tcn.branches.{j}'
            first = f'{p}.0' if isinstance(br, nn.Sequential) else p
            raw[MID]['consumers'].append(Slot(first, dim=1))
            self.prune('tcn', first, ['out'])
            if isinstance(br, nn.Sequential) and len(br) == 4 and isinstance(br[3], unit_tcn):
                self.prune('tcn', f'{p}.3.conv', ['out'])
                inner = self.cs(f'br{i}_{j}', br[0].out_channels)
                inner['producers'].append(Slot(first, dim=0))
                inner['norms'].append(f'{p}.1')
                inner['consumers'].append(Slot(f'{p}.3.conv', dim=1))
                norms = [f'{p}.3.bn'] if isinstance(br[3].bn, nn.modules.batchnorm._BatchNorm) else []
                parts.append((f'{p}.3.conv', norms, br[3].conv.out_channels))
            elif isinstance(br, nn.Sequential) and len(br) == 4 and isinstance(br[3], nn.MaxPool2d):
                parts.append((first, [f'{p}.1'], br[0].out_channels))
            elif isinstance(br, nn.Conv2d):
                parts.append((first, [], br.out_channels))
            else:
                raise ValueError(f'{p}: unsupported MS-TCN branch {type(br).__name__}; expected the branches of '
                                 "mmaction's mstcn (dilated unit_tcn, max-pool, 1x1 conv)")
        cat, _ = self.concat(f'cat{i}', parts)
        cat['norms'].append(f'{b}.tcn.transform.0')
        cat['consumers'].append(Slot(f'{b}.tcn.transform.2', dim=1))



def _stgcn(bb, prefix, roles, groups):
    d = _STGCNDeclaration(prefix, roles, groups)
    for i, blk in enumerate(bb.gcn):
        d.block(i, blk, last=i == len(bb.gcn) - 1)
    return d.specs, d.channel_sets()


def _is_identity(res, cin):
    """mmaction writes residuals as lambdas: identity returns its input, 'none' returns 0."""
    if isinstance(res, nn.Identity):
        return True
    if isinstance(res, nn.Module):
        return False
    import torch
    x = torch.ones(1)
    try:
        return res(x) is x
    except Exception:
        return False


# -- AAGCN (mmaction.models.AAGCN: unit_aagcn + unit_tcn) ----------------------------------------------
class _AAGCNDeclaration(_Declaration):
    """Channel sets of MMAction2's ``AAGCN``, per block ``i``: ``in{i}`` (block input), ``mid{i}`` (the
    output of ``unit_aagcn``, attention applied) and ``out{i}`` (block output).

    - ``in{i}`` is read by every ``conv_d.k`` (after the aggregation x·(A_k + α·tanh(a_kᵀb_k/(R·T))), one
      product per channel: T·V·V MACs per subset, counted as this set's aggregation), by ``conv_a.k`` /
      ``conv_b.k``, by the gcn unit's ``down.0`` and by the block residual.
    - ``mid{i}`` is written by the ``conv_d.k`` rows and ``down.0`` (normed by ``gcn.bn`` / ``down.1``) and read
      by ``tcn.conv``. With the spatial / temporal / channel attention (``attention=True``) ``conv_sa``,
      ``conv_ta`` and ``fc1c`` read every channel and ``fc2c`` row c gates channel c (a gate slot); those layers
      are never pruned, so ``mid{i}`` is fixed then (no channel of it can become unread).
    - ``att{i}_{k}``, the R = out/4 embedding channels of ``conv_a.k`` / ``conv_b.k``, is **fixed**: the product
      aᵀb is divided by its own inner size R·T, so removing a channel would change the scale of every adaptive
      edge. Its product (V·V·T MACs per channel) is counted as a fixed aggregation. The attention layers' own
      outputs (one spatial / temporal map, ``fc1c``'s hidden units) are fixed sets as well.
    """

    def block(self, i, blk, last):
        b, g, raw = f'{self.prefix}gcn.{i}', blk.gcn, self.raw
        IN, MID, OUT = self.block_input(i, g.in_c), f'mid{i}', f'out{i}'
        self.cs(MID, g.out_c)
        self.cs(OUT, g.out_c)
        V = g.A.shape[-1]
        for k in range(g.num_subset):
            d = f'{b}.gcn.conv_d.{k}'
            self.prune('gcn', d, ['out'])
            raw[MID]['producers'].append(Slot(d, dim=0))
            raw[IN]['consumers'].append(Slot(d, dim=1))
            raw[IN]['aggs'].append((f'{d}.weight', float(V)))  # x·A_k: T·V·V per channel = V × conv_d's positions
        for k in range(g.num_subset):
            d = f'{b}.gcn.conv_d.{k}'
            if g.adaptive:
                ab = [f'{b}.gcn.conv_a.{k}', f'{b}.gcn.conv_b.{k}']
                for m in ab:
                    self.prune('attention', m, ['out'])
                    raw[IN]['consumers'].append(Slot(m, dim=1))
                att = self.fixed(f'att{i}_{k}', g.inter_c, producers=[Slot(m, dim=0) for m in ab])
                att['aggs'].append((f'{d}.weight', float(V)))  # aᵀb: V·V·T per embedding channel
        self.gcn_tail(raw, f'{b}.gcn', g, MID, IN)
        if g.attention:
            self.attention(i, b, g, MID)
        if not isinstance(blk.tcn, unit_tcn):
            raise ValueError(f'{b}.tcn: unsupported temporal unit {type(blk.tcn).__name__}; expected unit_tcn')
        self.prune('tcn', f'{b}.tcn.conv', ['out'])
        raw[MID]['consumers'].append(Slot(f'{b}.tcn.conv', dim=1))
        raw[OUT]['producers'].append(Slot(f'{b}.tcn.conv', dim=0))
        raw[OUT]['norms'].append(f'{b}.tcn.bn')
        self.residual(b, blk.residual, g.in_c, IN, OUT)
        if last:
            raw[OUT]['fc'] = True
            raw[OUT]['head'] = 'cls_head.fc'

    def attention(self, i, b, g, MID):
        """The STC attention reads every channel of ``mid{i}``: its readers and ``fc2c``'s gate rows are declared
        (so the set is fixed, see the class docstring); its own outputs are fixed sets."""
        raw = self.raw
        a = f'{b}.gcn'
        raw[MID]['consumers'] += [Slot(f'{a}.conv_sa', dim=1), Slot(f'{a}.conv_ta', dim=1), Slot(f'{a}.fc1c', dim=1)]
        raw[MID]['producers'].append(Slot(f'{a}.fc2c', dim=0, gate=True))
        raw[MID]['fc'] = True
        self.fixed(f'sa{i}', 1, producers=[Slot(f'{a}.conv_sa', dim=0)])
        self.fixed(f'ta{i}', 1, producers=[Slot(f'{a}.conv_ta', dim=0)])
        self.fixed(f'ca{i}', g.fc1c.out_features, producers=[Slot(f'{a}.fc1c', dim=0)],
                   consumers=[Slot(f'{a}.fc2c', dim=1)])


def _aagcn(bb, prefix, roles, groups):
    d = _AAGCNDeclaration(prefix, roles, groups)
    for i, blk in enumerate(bb.gcn[:bb.num_stages]):
        d.block(i, blk, last=i == bb.num_stages - 1)
    return d.specs, d.channel_sets(fix_unpruned_readers=True)


# -- CTR-GCN (mmsemiprune.models.backbones.CTRGCN, projects/ctrgcn layout) ------------------------------
class _CTRGCNDeclaration(_Declaration):
    """Channel sets of the plugin's ``CTRGCN``, per block ``i``: ``in{i}`` (block input), ``g{i}`` (output of
    ``unit_ctrgcn``), ``rel{i}_{k}`` (the relation channels of CTR-GC k), ``br{i}_{j}`` (inside temporal branch j)
    and ``out{i}`` (block output, the concatenation of the temporal branches).

    - ``in{i}``: read by ``conv1`` / ``conv2`` / ``conv3`` of every CTR-GC, the gcn unit's ``down.0`` and the
      block residual.
    - ``rel{i}_{k}``: written by the rows of ``conv1`` and ``conv2`` (tanh(q_r − k_r) mixes row r of both), read
      by ``conv4``'s columns. Nothing normalises by its size, so an unread relation channel is removed exactly.
    - ``g{i}``: written by ``conv3`` rows (the values) and ``down.0``; ``conv4`` row c (the refined topology of
      channel c) only scales channel c's own aggregation: a gate slot, removed with the channel. Normed by
      ``gcn1.bn`` / ``down.1``; read by the first conv of every temporal branch. Its aggregation
      Σ_u topo[c, u, v]·value[c, t, u] (T·V·V MACs per channel and subset) is counted with the set.
    - ``br{i}_{j}``: a dilated branch's 1x1 conv rows / BN / the ``unit_tcn`` columns.
    - ``out{i}``: each branch writes its own part (channels offset .. offset + width − 1: the dilated branches'
      ``unit_tcn``, the max-pool branch's 1x1 conv through BN, ReLU, max-pool, BN, the strided 1x1 branch), the
      block residual writes all; read by the next block (its ``in``) or by the classifier (last block).

    With ``prune_cfg.targets.attention`` off (the default) ``conv1`` / ``conv2`` / ``conv4`` are not pruned, so
    ``in{i}`` / ``out{i}`` (read by ``conv1`` / ``conv2``) and ``rel{i}_{k}`` stay whole (fixed); ``g{i}`` and the
    branch sets still shrink (a gate slot does not need to be pruned)."""

    def block(self, i, blk, last):
        b, g, raw = f'{self.prefix}net.{i}', blk.gcn1, self.raw
        IN, G, OUT = self.block_input(i, g.in_c), f'g{i}', f'out{i}'
        self.cs(G, g.out_c)
        V = g.A.shape[-1]
        for k, c in enumerate(g.convs):
            p = f'{b}.gcn1.convs.{k}'
            self.prune('gcn', f'{p}.conv3', ['out'])
            for nm in ('conv1', 'conv2', 'conv4'):
                self.prune('attention', f'{p}.{nm}', ['out'])
            raw[G]['producers'] += [Slot(f'{p}.conv3', dim=0), Slot(f'{p}.conv4', dim=0, gate=True)]
            raw[G]['aggs'].append((f'{p}.conv3.weight', float(V)))  # T·V·V per channel = V × conv3's positions
            raw[IN]['consumers'] += [Slot(f'{p}.{nm}', dim=1) for nm in ('conv1', 'conv2', 'conv3')]
            rel = self.cs(f'rel{i}_{k}', c.rel_channels)
            rel['producers'] += [Slot(f'{p}.conv1', dim=0), Slot(f'{p}.conv2', dim=0)]
            rel['consumers'].append(Slot(f'{p}.conv4', dim=1))
        self.gcn_tail(raw, f'{b}.gcn1', g, G, IN)
        self.temporal(i, b, blk.tcn1, G, OUT)
        self.residual(b, blk.residual, g.in_c, IN, OUT)
        if last:
            raw[OUT]['fc'] = True
            raw[OUT]['head'] = 'cls_head.fc'

    def temporal(self, i, b, t, G, OUT):
        """MSTCN: every branch reads ``g{i}``; the concatenation is ``out{i}``, one part per branch."""
        raw = self.raw
        parts = []
        for j, br in enumerate(t.branches):
            p = f'{b}.tcn1.branches.{j}'
            if not isinstance(br, nn.Sequential):
                raise ValueError(f'{p}: unsupported temporal branch {type(br).__name__}; expected a Sequential '
                                 'starting with a 1x1 conv')
            self.prune('tcn', f'{p}.0', ['out'])
            raw[G]['consumers'].append(Slot(f'{p}.0', dim=1))
            if len(br) == 4 and isinstance(br[3], unit_tcn):  # 1x1 conv, BN, ReLU, unit_tcn (dilated)
                w = br[3].conv.out_channels
                inner = self.cs(f'br{i}_{j}', br[0].out_channels)
                inner['producers'].append(Slot(f'{p}.0', dim=0))
                inner['norms'].append(f'{p}.1')
                inner['consumers'].append(Slot(f'{p}.3.conv', dim=1))
                self.prune('tcn', f'{p}.3.conv', ['out'])
                parts.append((f'{p}.3.conv', [f'{p}.3.bn'], w))
            elif len(br) == 5 and isinstance(br[3], nn.MaxPool2d):  # 1x1 conv, BN, ReLU, max-pool, BN
                parts.append((f'{p}.0', [f'{p}.1', f'{p}.4'], br[0].out_channels))
            elif len(br) == 2:  # strided 1x1 conv, BN
                parts.append((f'{p}.0', [f'{p}.1'], br[0].out_channels))
            else:
                raise ValueError(f'{p}: unsupported temporal branch {[type(m).__name__ for m in br]}')
        _, width = self.concat(OUT, parts)
        if t.residual is not None:
            self.residual(f'{b}.tcn1', t.residual, width, G, OUT)


def _ctrgcn(bb, prefix, roles, groups):
    d = _CTRGCNDeclaration(prefix, roles, groups)
    for i, blk in enumerate(bb.net):
        d.block(i, blk, last=i == len(bb.net) - 1)
    return d.specs, d.channel_sets(fix_unpruned_readers=True)


def undeclared(backbone: nn.Module, sets: List[ChannelSet], prefix: str = 'backbone.') -> List[str]:
    """'module dim' of every conv / linear weight dimension of ``backbone`` (0: output channels, 1: input
    channels) that no channel set indexes (fixed sets included): what a declaration would leave out of
    consistency and export. Empty for a complete declaration."""
    seen = {(s.module, s.dim) for cs in sets for s in cs.producers + cs.consumers}
    out = []
    for n, m in backbone.named_modules(prefix=prefix.rstrip('.')):
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            out += [f'{n} {d}' for d in (0, 1) if (n, d) not in seen]
    return out


_DECLARE = {'STGCN': _stgcn, 'AAGCN': _aagcn, 'CTRGCN': _ctrgcn}
