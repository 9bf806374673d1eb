"""MACs after channel removal for all tensors at once: the fused counterpart of
:func:`~mmsemiprune.core.compute.masked_macs_tensor` (the reference), evaluated from the consumer-alive map of every
channel that :class:`~mmsemiprune.core.topology.FlatConsistency` gives, with one segment sum and a handful of
operators instead of ~10 per tensor.
"""
import math
from typing import Dict, Optional

import torch

from ..topology import aggregation_macs
from .segment import segment_sum

__all__ = ['FlatMacs', 'flat_macs']


class FlatMacs:
    """:func:`~mmsemiprune.core.compute.masked_macs_tensor` for all tensors at once from the consumer-alive map of
    every channel (C,) (what :meth:`~mmsemiprune.core.topology.FlatConsistency.alive_all` gives): with n_s the live
    channels of set s,

        MACs = Σ_ℓ macs_ℓ · whole_ℓ · Π_{roles r of ℓ} fold_r · n_{s(r)}  +  Σ_s a_s · (C_s if fixed else n_s)

    (roles: the producer and consumer slots of ℓ in sets without a fixed consumer; whole_ℓ: the sizes of its other
    dims), one segment sum and a handful of operators instead of ~10 per tensor. Every term is an integer in float64
    (entry MACs count output positions; a_s is K·V times an entry's MACs), so any summation order gives the bits of
    the per-tensor loop; ``ok`` is False (use :func:`~mmsemiprune.core.compute.masked_macs_tensor`) when a value is
    not an integer or a tensor's two roles share a dim."""

    def __init__(self, fc, macs: Dict[str, float], device):
        sets = fc.sets
        S = len(sets)
        self.key = tuple(macs[k] for k in fc.keys)
        aggs = [aggregation_macs(cs, macs) for cs in sets]
        self.ok = all(float(v).is_integer() for v in list(self.key) + aggs)
        pset, pfold, qset, qfold, whole = [], [], [], [], []
        for k, shp in zip(fc.keys, fc.shapes):
            dims = {}
            for side, sl, fl in ((True, pset, pfold), (False, qset, qfold)):
                r = fc.role.get((k, side))
                if r is None or sets[r[3]].fixed_consumer:
                    sl.append(S)
                    fl.append(1.0)
                    continue
                slot = r[1]
                if slot.dim in dims or slot.span(sets[r[3]].size)[1] != sets[r[3]].size:  # a part: not n_s
                    self.ok = False
                dims[slot.dim] = True
                sl.append(r[3])
                fl.append(float(slot.fold))
            whole.append(float(math.prod(n for i, n in enumerate(shp) if i not in dims)))
        f64 = dict(dtype=torch.float64, device=device)
        self.pset = torch.tensor(pset, dtype=torch.long, device=device)
        self.qset = torch.tensor(qset, dtype=torch.long, device=device)
        self.scale = torch.tensor(self.key, **f64) * torch.tensor(whole, **f64) * torch.tensor(pfold, **f64) \
            * torch.tensor(qfold, **f64)
        self.set_of = torch.cat([torch.full((cs.size, ), i, dtype=torch.long, device=device)
                                 for i, cs in enumerate(sets)])  # the set of every channel (no host read)
        self.agg = torch.tensor(aggs, **f64)
        self.fixed = torch.tensor([cs.fixed_consumer for cs in sets], dtype=torch.bool, device=device)
        self.size = torch.tensor([float(cs.size) for cs in sets], **f64)
        self.one = torch.ones(1, **f64)
        self.S = S
        self.plans = {}

    def __call__(self, cons: torch.Tensor) -> torch.Tensor:
        """0-dim float64 MACs(M) from the consumer-alive map (C,) bool of every channel, no host sync."""
        n = segment_sum(cons.to(torch.float64), self.set_of, self.S, self.plans, 'set')  # live channels per set
        n = n.clamp(min=1.0)  # a set nothing reads keeps one channel in export (topology.exported_channels)
        ne = torch.cat([n, self.one])  # the dummy set of a side outside every (removable) set: factor 1
        tensors = (self.scale * ne.index_select(0, self.pset) * ne.index_select(0, self.qset)).sum()
        return tensors + (self.agg * torch.where(self.fixed, self.size, n)).sum()


def flat_macs(fc, macs: Dict[str, float], device) -> Optional['FlatMacs']:
    """The :class:`FlatMacs` of ``fc`` for these entry MACs (kept on ``fc``), or None where it does not apply."""
    hit = fc.__dict__.get('_flat_macs')
    if hit is None or hit.key != tuple(macs[k] for k in fc.keys) or hit.pset.device != torch.device(device):
        hit = fc.__dict__['_flat_macs'] = FlatMacs(fc, macs, device)
    return hit if hit.ok else None
