"""Weight sharing: which entries of a tensor share one mask value.

A :class:`Grouping` maps every entry of a tensor of a given shape to a group id in ``[0, G)``.
Group statistics are the RMS of the (normalised) latent over the group,
``s_g = sqrt(mean_{i∈g} x_i²)``, broadcast back to the entries with ``s[gid]``.

Kinds (declared, never inferred from names):

- ``entry``  every entry is its own group (G = numel)
- ``out``    output channel, dim 0. ``fold=K`` views dim 0 as (K, C) and groups by C: the K rows
             of an ST-GCN spatial 1x1 conv that sum into one channel form one group
- ``in``     input channel, dim 1 (``fold`` likewise views dim 1 as (K, C))
- ``tap``    temporal kernel position, dim 2 of a (Cout, Cin, kt, 1) conv
- ``row`` / ``col``   graph node of an adjacency (..., V, V): dim −2 / dim −1
- ``block``  tiles of ``block=(b0, b1)`` entries over dims 0 and 1
"""
import re
from dataclasses import dataclass, field
from typing import Tuple

import torch

__all__ = ['Grouping', 'parse_grouping', 'KINDS']

KINDS = ('entry', 'out', 'in', 'tap', 'row', 'col', 'block')


@dataclass(frozen=True)
class Grouping:
    """A declared grouping. See the module docstring for the kinds."""
    kind: str
    fold: int = 1
    block: Tuple[int, ...] = field(default=())

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f'unknown group kind {self.kind!r}; choose one of {", ".join(KINDS)} '
                             "(e.g. groups=['out'] or ['out', 'in'])")
        if int(self.fold) < 1:
            raise ValueError(f'group fold must be a positive integer, got {self.fold!r}')
        if self.kind == 'block' and (len(self.block) != 2 or min(self.block) < 1):
            raise ValueError(f'block grouping needs block=(rows, cols) with positive sizes, got {self.block!r}')

    # -- validation ----------------------------------------------------------------------------
    def check(self, shape, name='tensor') -> None:
        """Raise a clear ValueError if this grouping cannot apply to ``shape``."""
        shape = tuple(shape)
        need = {'out': 1, 'in': 2, 'tap': 3, 'row': 2, 'col': 2, 'block': 2, 'entry': 1}[self.kind]
        if len(shape) < need:
            raise ValueError(f'group kind {self.kind!r} needs a tensor with at least {need} dims, '
                             f'but {name} has shape {shape}; use a different group kind for it')
        if self.kind in ('out', 'in') and self.fold > 1:
            d = 0 if self.kind == 'out' else 1
            if shape[d] % self.fold:
                raise ValueError(f'{name}: dim {d} of shape {shape} is not divisible by fold={self.fold}')
        if self.kind == 'tap' and shape[2] == 1:
            raise ValueError(f'{name}: group kind "tap" needs a temporal kernel > 1 in dim 2, got shape {shape}')
        if self.kind == 'block':
            if shape[0] % self.block[0] or shape[1] % self.block[1]:
                raise ValueError(f'{name}: block {self.block} does not tile dims (0, 1) of shape {shape}')

    # -- group ids -------------------------------------------------------------------------------
    def group_ids(self, shape) -> torch.Tensor:
        """Long tensor of ``shape``: the group id of every entry."""
        shape = tuple(shape)
        self.check(shape)
        n = 1
        for s in shape:
            n *= s
        if self.kind == 'entry':
            return torch.arange(n).view(shape)
        idx = [torch.arange(s) for s in shape]
        if self.kind == 'out':
            g = idx[0] % (shape[0] // self.fold)
            return _along(g, 0, shape)
        if self.kind == 'in':
            g = idx[1] % (shape[1] // self.fold)
            return _along(g, 1, shape)
        if self.kind == 'tap':
            return _along(idx[2], 2, shape)
        if self.kind == 'row':
            return _along(idx[-2], len(shape) - 2, shape)
        if self.kind == 'col':
            return _along(idx[-1], len(shape) - 1, shape)
        # block
        r = idx[0] // self.block[0]
        c = idx[1] // self.block[1]
        nc = shape[1] // self.block[1]
        gid = r.view(-1, 1) * nc + c.view(1, -1)
        return gid.view(shape[:2] + (1, ) * (len(shape) - 2)).expand(shape).contiguous()

    def num_groups(self, shape) -> int:
        return int(self.group_ids(shape).max()) + 1

    def __str__(self):
        s = self.kind
        if self.fold > 1:
            s += f':fold={self.fold}'
        if self.block:
            s += f':block={self.block[0]}x{self.block[1]}'
        return s


def _along(g: torch.Tensor, dim: int, shape) -> torch.Tensor:
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return g.view(view).expand(shape).contiguous()


def parse_grouping(spec) -> Grouping:
    """``'out'``, ``'out:fold=3'``, ``'block:4x4'``, a dict ``dict(kind='out', fold=3)`` or a Grouping."""
    if isinstance(spec, Grouping):
        return spec
    if isinstance(spec, dict):
        d = dict(spec)
        if 'block' in d:
            d['block'] = tuple(d['block'])
        try:
            return Grouping(**d)
        except TypeError as e:
            raise ValueError(f'bad group spec {spec!r}: {e}; expected keys kind, fold, block') from None
    if not isinstance(spec, str):
        raise ValueError(f'bad group spec {spec!r}: expected a string such as "out" or "out:fold=3"')
    kind, *opts = spec.split(':')
    kw = {}
    try:
        for o in opts:
            if o.startswith('fold='):
                kw['fold'] = int(o[5:])
            elif o.startswith('block='):
                kw['block'] = tuple(int(v) for v in o[6:].split('x'))
            elif kind == 'block' and re.fullmatch(r'\d+x\d+', o):
                kw['block'] = tuple(int(v) for v in o.split('x'))
            else:
                raise ValueError(f'unknown option {o!r}')
    except ValueError as e:
        raise ValueError(f'bad group spec {spec!r}: {e}; use e.g. "out", "out:fold=3", "block:4x4"') from None
    return Grouping(kind, **kw)


def group_mean(v: torch.Tensor, gid: torch.Tensor, num_groups: int, counts=None) -> torch.Tensor:
    """Mean of ``v`` over each group: shape (G,). ``counts``: the group sizes, if already known."""
    flat = gid.reshape(-1)
    tot = torch.zeros(num_groups, dtype=v.dtype, device=v.device).index_add_(0, flat, v.reshape(-1))
    if counts is None:
        counts = torch.bincount(flat, minlength=num_groups)
    return tot / counts.to(v.dtype).clamp_min(1)


def group_rms(x: torch.Tensor, gid: torch.Tensor, num_groups: int, counts=None) -> torch.Tensor:
    """RMS of ``x`` over each group: shape (G,). An all-zero group has RMS 0 and gradient 0 (not the
    NaN of d√u/du at u = 0)."""
    return group_mean(x ** 2, gid, num_groups, counts).clamp_min(1e-30).sqrt()
