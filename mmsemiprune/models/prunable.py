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
``conv_pos='pre'``); they drive topological consistency, the structural share and physical removal.
AAGCN's attention reads every channel and CTR-GCN's blocks concatenate branches, so for those two the
masks still prune group-wise but no channel set is declared (no physical channel removal yet).
"""
import re
from typing import Dict, List, Tuple

from mmaction.models.utils.gcn_utils import mstcn, unit_tcn
from torch import nn

from ..core.pruner import PruneSpec
from ..core.topology import ChannelSet, Slot

__all__ = ['declare', 'ROLES', 'supported_backbones']

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


class _STGCNDeclaration:
    """Prunable tensors and channel sets of an MMAction2 ``STGCN``, block by block: per block ``i`` three
    activations, ``in{i}`` (block input), ``mid{i}`` (gcn output) and ``out{i}`` (block output); the gcn
    unit, the temporal unit (``unit_tcn`` or ``mstcn``) and the residual each add their producers /
    consumers / norms; identities merge activations."""

    def __init__(self, prefix, roles, groups):
        self.prefix, self.roles, self.groups = prefix, roles, groups
        self.specs, self.raw, self.uf = [], {}, _UF()

    def cs(self, key, size):
        self.raw.setdefault(key, dict(size=size, producers=[], consumers=[], norms=[], fp=False, fc=False))
        self.uf.find(key)
        return self.raw[key]

    def prune(self, role, module, default, param='weight'):
        if self.roles[role]:
            self.specs.append(PruneSpec(module, param, _g(self.groups, role, default)))

    def block(self, i, blk, last):
        b = f'{self.prefix}gcn.{i}'
        g = blk.gcn
        IN, MID, OUT = f'in{i}', f'mid{i}', f'out{i}'
        if i > 0:
            self.uf.union(IN, f'out{i - 1}')
        self.cs(IN, g.in_channels)
        if i == 0:
            self.raw[IN]['fp'] = self.raw[IN]['fc'] = True  # the input coordinates are never removed
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
            if isinstance(getattr(g, 'down', None), nn.Sequential):
                self.prune('residual', f'{b}.gcn.down.0', ['out'])
                raw[MID]['producers'].append(Slot(f'{b}.gcn.down.0', dim=0))
                raw[MID]['norms'].append(f'{b}.gcn.down.1')
                raw[IN]['consumers'].append(Slot(f'{b}.gcn.down.0', dim=1))
            else:
                self.uf.union(MID, IN)

    def temporal_unit(self, i, b, t, MID, OUT):
        raw = self.raw
        if isinstance(t, unit_tcn):
            self.prune('tcn', f'{b}.tcn.conv', ['out'])
            raw[MID]['consumers'].append(Slot(f'{b}.tcn.conv', dim=1))
            raw[OUT]['producers'].append(Slot(f'{b}.tcn.conv', dim=0))
            raw[OUT]['norms'].append(f'{b}.tcn.bn')
        elif isinstance(t, mstcn):
            for j, br in enumerate(t.branches):
                first = f'{b}.tcn.branches.{j}' + ('.0' if isinstance(br, nn.Sequential) else '')
                raw[MID]['consumers'].append(Slot(first, dim=1))
                self.prune('tcn', first, ['out'])
                if isinstance(br, nn.Sequential) and len(br) >= 4 and hasattr(br[3], 'conv'):
                    self.prune('tcn', f'{b}.tcn.branches.{j}.3.conv', ['out'])
                    key = f'br{i}_{j}'
                    self.cs(key, br[0].out_channels)
                    raw[key]['producers'].append(Slot(first, dim=0))
                    raw[key]['norms'].append(f'{b}.tcn.branches.{j}.1')
                    raw[key]['consumers'].append(Slot(f'{b}.tcn.branches.{j}.3.conv', dim=1))
            self.prune('tcn', f'{b}.tcn.transform.2', ['out'])
            raw[OUT]['producers'].append(Slot(f'{b}.tcn.transform.2', dim=0))
            raw[OUT]['norms'].append(f'{b}.tcn.bn')
        else:
            raise ValueError(f'{b}.tcn: unsupported temporal unit {type(t).__name__}; expected unit_tcn or mstcn')

    def residual(self, b, res, cin, IN, OUT):
        if isinstance(res, nn.Module) and hasattr(res, 'conv'):
            self.prune('residual', f'{b}.residual.conv', ['out'])
            self.raw[OUT]['producers'].append(Slot(f'{b}.residual.conv', dim=0))
            self.raw[OUT]['norms'].append(f'{b}.residual.bn')
            self.raw[IN]['consumers'].append(Slot(f'{b}.residual.conv', dim=1))
        elif _is_identity(res, cin):
            self.uf.union(OUT, IN)

    def channel_sets(self) -> List[ChannelSet]:
        """Merge the activations joined by identities into channel sets."""
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
            if 'agg' in d:
                m.agg_ref, m.agg_factor = d['agg']
            if 'head' in d:
                m.head = d['head']
        sets = [s for s in merged.values() if s.producers or s.consumers]
        for s in sets:
            s.name = '+'.join(sorted({k for k in self.raw if self.uf.find(k) == s.name}))
        return sets


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


# -- AAGCN --------------------------------------------------------------------------------------------
def _aagcn(bb, prefix, roles, groups):
    specs = []
    for i, blk in enumerate(bb.gcn):
        b = f'{prefix}gcn.{i}'
        g = blk.gcn
        if roles['gcn']:
            for k in range(len(g.conv_d)):
                specs.append(PruneSpec(f'{b}.gcn.conv_d.{k}', 'weight', _g(groups, 'gcn', ['out'])))
        if roles['attention'] and getattr(g, 'adaptive', False):
            for k in range(len(g.conv_a)):
                specs.append(PruneSpec(f'{b}.gcn.conv_a.{k}', 'weight', _g(groups, 'attention', ['out'])))
                specs.append(PruneSpec(f'{b}.gcn.conv_b.{k}', 'weight', _g(groups, 'attention', ['out'])))
        if roles['adjacency'] and 'A' in g._parameters:
            specs.append(PruneSpec(f'{b}.gcn', 'A', _g(groups, 'adjacency', ['col'])))
        if roles['residual'] and isinstance(getattr(g, 'down', None), nn.Sequential):
            specs.append(PruneSpec(f'{b}.gcn.down.0', 'weight', _g(groups, 'residual', ['out'])))
        if roles['tcn']:
            specs.append(PruneSpec(f'{b}.tcn.conv', 'weight', _g(groups, 'tcn', ['out'])))
        if roles['residual'] and isinstance(blk.residual, nn.Module) and hasattr(blk.residual, 'conv'):
            specs.append(PruneSpec(f'{b}.residual.conv', 'weight', _g(groups, 'residual', ['out'])))
    return specs, []


# -- CTR-GCN (mmsemiprune.models.backbones.CTRGCN, projects/ctrgcn layout) ------------------------------
def _ctrgcn(bb, prefix, roles, groups):
    specs = []
    for i, blk in enumerate(bb.net):
        b = f'{prefix}net.{i}'
        for k, c in enumerate(blk.gcn1.convs):
            if roles['gcn']:
                specs.append(PruneSpec(f'{b}.gcn1.convs.{k}.conv3', 'weight', _g(groups, 'gcn', ['out'])))
            if roles['attention']:
                for cname in ('conv1', 'conv2', 'conv4'):
                    specs.append(PruneSpec(f'{b}.gcn1.convs.{k}.{cname}', 'weight', _g(groups, 'attention', ['out'])))
        if roles['adjacency'] and 'A' in blk.gcn1._parameters:
            specs.append(PruneSpec(f'{b}.gcn1', 'A', _g(groups, 'adjacency', ['col'])))
        if roles['residual'] and isinstance(getattr(blk.gcn1, 'down', None), nn.Sequential):
            specs.append(PruneSpec(f'{b}.gcn1.down.0', 'weight', _g(groups, 'residual', ['out'])))
        if roles['tcn']:
            for j, br in enumerate(blk.tcn1.branches):
                if isinstance(br, nn.Sequential):
                    specs.append(PruneSpec(f'{b}.tcn1.branches.{j}.0', 'weight', _g(groups, 'tcn', ['out'])))
                    if len(br) >= 4 and hasattr(br[3], 'conv'):
                        specs.append(PruneSpec(f'{b}.tcn1.branches.{j}.3.conv', 'weight', _g(groups, 'tcn', ['out'])))
                elif isinstance(br, nn.Conv2d):
                    specs.append(PruneSpec(f'{b}.tcn1.branches.{j}', 'weight', _g(groups, 'tcn', ['out'])))
        res = getattr(blk, 'residual', None)
        if roles['residual'] and isinstance(res, nn.Module) and hasattr(res, 'conv'):
            specs.append(PruneSpec(f'{b}.residual.conv', 'weight', _g(groups, 'residual', ['out'])))
    return specs, []


_DECLARE = {'STGCN': _stgcn, 'AAGCN': _aagcn, 'CTRGCN': _ctrgcn}
