"""Compute: the MACs a mask leaves after physical channel removal, what each channel frees, and a
projection that meets a compute budget.

Counting (per sample, over the prunable tensors plus the declared aggregations):

    MACs(M) = Σ_ℓ macs_ℓ · #{i : entry i of ℓ is not removed}  +  Σ_sets agg_c · #{live channels c}

where ``macs_ℓ`` is the MACs of one entry of tensor ℓ per sample (its output positions, recorded by
:meth:`~.pruner.SemiPruner.profile`), an entry is *removed* when it lies in a channel slice that export
deletes (a channel of a :class:`~.topology.ChannelSet` that nothing reads any more, see
:func:`removed_entries`), and ``agg_c = agg_factor · macs(agg_ref)`` is the per-channel cost of an
operation that is not a masked weight but disappears with the channel (ST-GCN's adjacency aggregation
``Σ_k Σ_v x[k, c, t, v]·A[k, v, w]``: K·V MACs per output position of its gcn conv). Entry-wise zeros
inside a live channel save nothing here: dense kernels still multiply them.

Freed by one channel c (ours, the price of a structural decision, issue "structure priced by the compute
it frees"): its producer rows, its consumer columns (e.g. the next temporal conv's input column) and its
aggregation, ``F_c = Σ_{slots} macs_slot · numel(slice_c) + agg_c``.

Compute target (ours): :func:`project_macs` removes whole channels, weakest score per freed MAC first,
until ``MACs(M) ≤ target · MACs(dense)``, never leaving a channel set with fewer than :func:`min_channels`
live channels (then the target may be missed, and the report says by how much); the caller then re-meets the
parameter rate elsewhere.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch

from .topology import ChannelSet, alive, channel_view, zero_channels

__all__ = ['removed_entries', 'masked_macs', 'dense_macs', 'channel_freed_macs', 'group_prices', 'project_macs']


#: the MAC projection never leaves a channel set with fewer live channels than this fraction of its size
#: (at least one): emptying a set cuts the only path through a block (measured: an SBU run whose projection
#: emptied a set in the hard phase ended at chance, 13.5 %)
MIN_CHANNEL_FRACTION = 0.1


def min_channels(size: int) -> int:
    """Live channels a channel set keeps under :func:`project_macs`: ⌈0.1·C⌉, at least 1."""
    return max(1, math.ceil(MIN_CHANNEL_FRACTION * size))


def _agg(cs: ChannelSet, macs: Dict[str, float]) -> float:
    if not cs.agg_ref or cs.agg_factor <= 0:
        return 0.0
    return float(cs.agg_factor) * float(macs.get(cs.agg_ref, 0.0))


@torch.no_grad()
def removed_entries(masks: Dict[str, torch.Tensor], sets: List[ChannelSet]) -> Tuple[Dict[str, torch.Tensor], set]:
    """Per masked tensor, a bool tensor of its shape: True where the entry lies in a channel slice that
    export removes (a channel nothing reads: no surviving consumer, set not read by a fixed consumer).
    Also returns the keys covered by some channel set."""
    removed = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in masks.items()}
    covered = set()
    for cs in sets:
        _, cons = alive(masks, cs)
        dead = ~cons if not cs.fixed_consumer else torch.zeros_like(cons)
        for s in cs.producers + cs.consumers:
            if s.key() not in masks:
                continue
            covered.add(s.key())
            if dead.any():
                removed[s.key()] = removed[s.key()] | zero_channels(
                    torch.zeros_like(removed[s.key()]), s, cs.size, dead, fill=True)
    return removed, covered


def dense_macs(items, sets: List[ChannelSet]) -> float:
    """MACs of the unpruned tensors and aggregations (``items``: (key, SemiMask, latent))."""
    macs = {k: float(m.macs) for k, m, _ in items}
    return sum(macs[k] * w.numel() for k, m, w in items) + sum(_agg(cs, macs) * cs.size for cs in sets)


@torch.no_grad()
def masked_macs(items, masks: Dict[str, torch.Tensor], sets: List[ChannelSet]) -> float:
    """MACs(M) of the module docstring: what remains after physical channel removal."""
    removed, _ = removed_entries(masks, sets)
    macs = {k: float(m.macs) for k, m, _ in items}
    total = sum(macs[k] * float((~removed[k]).sum()) for k, _, _ in items)
    for cs in sets:
        a = _agg(cs, macs)
        if a > 0:
            _, cons = alive(masks, cs)
            live = cons if not cs.fixed_consumer else torch.ones_like(cons)
            total += a * float(live.sum())
    return total


def channel_freed_macs(cs: ChannelSet, macs: Dict[str, float], shapes: Dict[str, tuple]) -> float:
    """F_c (the same for every channel of the set): MACs freed when one of its channels is removed."""
    f = _agg(cs, macs)
    for s in cs.producers + cs.consumers:
        if s.key() in shapes:
            numel = 1
            for d in shapes[s.key()]:
                numel *= d
            f += macs.get(s.key(), 0.0) * numel / cs.size
    return f


def group_prices(items, sets: List[ChannelSet]) -> Dict[str, torch.Tensor]:
    """Per masked tensor with groups, (G,) MACs freed by removing each group of its first grouping: F_c
    when that grouping is the output channel of a producer slot of a channel set (``out`` with the slot's
    fold), else the group's own entries' MACs."""
    macs = {k: float(m.macs) for k, m, _ in items}
    shapes = {k: tuple(w.shape) for k, _, w in items}
    producer_of = {}
    for cs in sets:
        if cs.fixed_consumer:
            continue
        for s in cs.producers:
            if s.dim == 0:
                producer_of[s.key()] = (cs, s)
    prices = {}
    for k, m, w in items:
        if not m.groupings:
            continue
        g0 = m.groupings[0]
        own = m.gsize0.to(torch.float64) * macs[k]
        hit = producer_of.get(k)
        if hit is not None and g0.kind == 'out' and g0.fold == hit[1].fold and m.num_groups[0] == hit[0].size:
            prices[k] = torch.full((m.num_groups[0], ), channel_freed_macs(hit[0], macs, shapes),
                                   dtype=torch.float64, device=own.device)
        else:
            prices[k] = own
    return prices


@torch.no_grad()
def project_macs(items, masks: Dict[str, torch.Tensor], sets: List[ChannelSet], target: float,
                 scores: Optional[Dict[str, torch.Tensor]] = None) -> int:
    """Remove whole channels (in place in ``masks``) until MACs(M) ≤ target·MACs(dense).

    Candidates are the live channels of non-fixed channel sets, taken in increasing order of
    (producer group score / F_c) — the weakest channel per freed MAC first; ``scores``: key →
    per-channel score (G,) of producer tensors (default: the kept fraction of the channel's slices).
    Returns the number of channels removed (0 when the budget is already met or nothing can be removed).
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f'target_macs must be a fraction of the dense MACs in (0, 1], got {target!r}')
    budget = target * dense_macs(items, sets)
    removed = 0
    for _ in range(10):  # F_c double-counts entries shared by two removed channels: re-count and repeat
        now = masked_macs(items, masks, sets)
        if now <= budget:
            break
        n = _remove_round(items, masks, sets, budget, now, scores)
        if n == 0:
            break
        removed += n
    return removed


def _remove_round(items, masks, sets, budget, now, scores) -> int:
    macs = {k: float(m.macs) for k, m, _ in items}
    shapes = {k: tuple(w.shape) for k, _, w in items}
    cands = []  # (priority, set index, channel)
    room = {}  # set index -> how many more of its channels may go
    for i, cs in enumerate(sets):
        if cs.fixed_consumer or cs.fixed_producer:
            continue
        prod, cons = alive(masks, cs)
        live = prod & cons
        room[i] = int(live.sum()) - min_channels(cs.size)
        if room[i] <= 0:
            continue
        f = channel_freed_macs(cs, macs, shapes)
        if f <= 0:
            continue
        s = None
        for sl in cs.producers:
            if scores is not None and sl.key() in scores and scores[sl.key()].numel() == cs.size:
                v = scores[sl.key()].to(torch.float64).cpu()
                s = v if s is None else torch.maximum(s, v)
        if s is None:  # kept fraction of the channel's producer slices
            s = torch.zeros(cs.size, dtype=torch.float64)
            for sl in cs.producers:
                if sl.key() in masks:
                    s = s + channel_view(masks[sl.key()], sl, cs.size).float().mean(dim=(0, 2)).double().cpu()
        for c in torch.nonzero(live.cpu()).flatten().tolist():
            cands.append((float(s[c]) / f, i, c, f))
    cands.sort()
    removed = 0
    est = now
    batch: Dict[int, List[int]] = {}
    for _, i, c, f in cands:
        if est <= budget:
            break
        if room[i] <= 0:
            continue
        room[i] -= 1
        batch.setdefault(i, []).append(c)
        est -= f
        removed += 1
    for i, chans in batch.items():
        cs = sets[i]
        dead = torch.zeros(cs.size, dtype=torch.bool)
        dead[chans] = True
        for s in cs.producers + cs.consumers:
            if s.key() in masks:
                masks[s.key()] = zero_channels(masks[s.key()], s, cs.size, dead.to(masks[s.key()].device))
    return removed
