"""Compute: the MACs a mask leaves after physical channel removal, what each channel frees, and a
projection that meets a compute budget.

Counting (per sample, over the prunable tensors plus the declared aggregations):

    MACs(M) = Σ_ℓ macs_ℓ · #{i : entry i of ℓ is not removed}  +  Σ_sets agg_c · #{live channels c}

where ``macs_ℓ`` is the MACs of one entry of tensor ℓ per sample (its output positions, recorded by
:meth:`~.pruner.SemiPruner.profile`), an entry is *removed* when it lies in a channel slice that export
deletes (a channel of a :class:`~.topology.ChannelSet` that nothing reads any more, see
:func:`removed_entries`), and ``agg_c = agg_factor · macs(agg_ref)`` is the per-channel cost of an
operation that is not a masked weight but disappears with the channel (ST-GCN's adjacency aggregation
``Σ_k Σ_v x[k, c, t, v]·A[k, v, w]``: K·V MACs per output position of its gcn conv; AAGCN's x·A_k and
attention product aᵀb, CTR-GCN's topology einsum: V per subset; a set merged over blocks sums one per block).
A slot holding a part of its set (a branch of a concatenation) counts the kept channels of its part; a gate slot
goes with its channel; the channels export keeps of an unread branch or set (one each) are counted as kept.
Entry-wise zeros inside a live channel save nothing here: dense kernels still multiply them.

Freed by one channel c (ours, the price of a structural decision: structure priced by the compute it
frees): its producer rows, its consumer columns (e.g. the next temporal conv's input column) and its
aggregation, ``F_c = Σ_{slots} macs_slot · numel(slice_c) + agg_c``.

Compute target (ours): :func:`project_macs` removes whole channels, weakest score per freed MAC first,
until ``MACs(M) ≤ target · MACs(dense)``, never leaving a channel set with fewer than :func:`min_channels`
live channels (then the target may be missed, and the report says by how much); the caller then re-meets the
parameter rate elsewhere. :class:`Allocation` names the alternatives to that order (``prune_cfg.allocation``,
``prune_cfg.channel_floor``): by score alone, or the same fraction of every set, and a floor per set.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from .fused.flat import unchanged, versions
from .fused.macs import flat_macs
from .topology import (ChannelSet, aggregation_macs, alive, channel_mean, exported_channels, flat_for_masks,
                       zero_channels)

__all__ = ['entry_macs', 'removed_entries', 'masked_macs', 'masked_macs_tensor', 'dense_macs',
           'channel_freed_macs', 'group_prices', 'project_macs', 'Allocation', 'ALLOCATIONS']

#: the orders in which the compute projection removes channels (:class:`Allocation`)
ALLOCATIONS = ('per_mac', 'score', 'uniform')


@dataclass(frozen=True)
class Allocation:
    """How :func:`project_macs` spreads a compute budget over the channel sets.

    ``order``: the priority of a live channel c of set S (lowest removed first; ties by set, then channel):

    - ``'per_mac'``: score_c / F_c, the weakest channel per freed MAC first (the default);
    - ``'score'``: score_c, the weakest channel first whatever it frees;
    - ``'uniform'``: (dead_S + rank_c + 1) / |S|, rank_c the channel's place among the live channels of its set by
      score: the fraction of S removed once c goes, so that every set loses the same fraction (the uniform
      layer-wise allocation), weakest first within a set.

    ``channel_floor``: the projection takes no set below ``ceil(channel_floor · |S|)`` live channels (nor below
    :func:`min_channels`); channels the masks removed by themselves are not restored, and a floor may leave the
    budget unmet.
    """
    order: str = 'per_mac'
    channel_floor: float = 0.0

    def __post_init__(self):
        if self.order not in ALLOCATIONS:
            raise ValueError(f'unknown allocation {self.order!r}; choose one of {", ".join(ALLOCATIONS)}')
        if not 0.0 <= float(self.channel_floor) < 1.0:
            raise ValueError(f'channel_floor must be a fraction in [0, 1), got {self.channel_floor!r}')

    def keep_at_least(self, size: int) -> int:
        """The fewest live channels a set of ``size`` channels may keep."""
        return max(min_channels(size), math.ceil(self.channel_floor * size - 1e-9))

    def priority(self, score: torch.Tensor, freed: float, live: torch.Tensor) -> torch.Tensor:
        """(C,) float64 removal priority of the set's channels (dead ones are masked by the caller)."""
        if self.order == 'per_mac':
            return score / freed
        if self.order == 'score':
            return score.clone()
        rank = torch.empty_like(score)
        order = torch.sort(score.masked_fill(~live, float('inf')), stable=True).indices
        rank[order] = torch.arange(score.numel(), dtype=score.dtype, device=score.device)
        dead = (~live).sum().to(score.dtype)
        return (dead + rank + 1.0) / score.numel()


DEFAULT_ALLOCATION = Allocation()


#: the MAC projection never leaves a channel set with fewer live channels than this fraction of its size
#: (at least one): emptying a set cuts the only path through a block (measured: an SBU run whose projection
#: emptied a set in the hard phase ended at chance, 13.5 %)
MIN_CHANNEL_FRACTION = 0.1


def min_channels(size: int) -> int:
    """Live channels a channel set keeps under :func:`project_macs`: ⌈0.1·C⌉, at least 1."""
    return max(1, math.ceil(MIN_CHANNEL_FRACTION * size))


def entry_macs(items) -> Dict[str, float]:
    """key → MACs of one entry per sample (the masks' ``macs`` buffers), read back in one host sync (not one
    per tensor), and again only when a buffer is replaced or changed in place (profiling, a state dict load): kept
    on the first mask, keyed by the buffers' identities and version counters (read on the host)."""
    if not items:
        return {}
    bufs = [m.macs for _, m, _ in items]
    key = tuple(k for k, _, _ in items)
    hit = items[0][1].__dict__.get('_sp_macs')
    if hit is not None and hit[0] == key and unchanged(hit[1], bufs):
        return dict(hit[2])
    vals = torch.stack([b.to(torch.float64) for b in bufs]).tolist()
    out = {k: v for k, v in zip(key, vals)}
    items[0][1].__dict__['_sp_macs'] = (key, versions(bufs), out)
    return dict(out)


@torch.no_grad()
def removed_entries(masks: Dict[str, torch.Tensor], sets: List[ChannelSet]) -> Tuple[Dict[str, torch.Tensor], set]:
    """Per masked tensor, a bool tensor of its shape: True where the entry lies in a channel slice that
    export removes (a channel nothing reads: no surviving consumer, set not read by a fixed consumer).
    Also returns the keys covered by some channel set. No host sync (a set with no dead channel is a no-op
    ``where``)."""
    removed = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in masks.items()}
    covered = set()
    for cs in sets:
        slots = [sl for sl in cs.producers + cs.consumers if sl.key() in masks]
        covered.update(sl.key() for sl in slots)
        if cs.fixed_consumer:  # read by something that stays: nothing of it is removed
            continue
        cons = exported_channels(cs, alive(masks, cs)[1])
        for sl in slots:
            removed[sl.key()] = zero_channels(removed[sl.key()], sl, cs.size, ~cons, fill=True)
    return removed, covered


def dense_macs(items, sets: List[ChannelSet], macs: Optional[Dict[str, float]] = None) -> float:
    """MACs of the unpruned tensors and aggregations (``items``: (key, SemiMask, latent); ``macs``: their
    :func:`entry_macs`, read here when not given)."""
    macs = entry_macs(items) if macs is None else macs
    return sum(macs[k] * w.numel() for k, m, w in items) + sum(aggregation_macs(cs, macs) * cs.size for cs in sets)


@torch.no_grad()
def masked_macs_tensor(items, masks: Dict[str, torch.Tensor], sets: List[ChannelSet],
                       macs: Optional[Dict[str, float]] = None, state=None) -> torch.Tensor:
    """MACs(M) of the module docstring as a 0-dim float64 tensor on the masks' device, without a host sync.

    The entries export keeps in a tensor are a product of per-dim counts: along each dim that is a slot of a
    removable channel set, the positions of channels that something still reads (``alive``'s consumer side,
    tiled over the slot's fold); every other dim is kept whole. So no per-entry map is built. Summed in the same
    order as the host version did (tensors, then aggregations), the value is the same to the last bit on CPU.
    ``state``: the sets' ``alive`` pairs when the caller has them."""
    macs = entry_macs(items) if macs is None else macs
    state = [alive(masks, cs) for cs in sets] if state is None else state
    state = [(p, exported_channels(cs, c)) for cs, (p, c) in zip(sets, state)]
    keep: Dict[str, Dict[int, torch.Tensor]] = {}
    for cs, (_, cons) in zip(sets, state):
        if cs.fixed_consumer:
            continue
        for sl in cs.producers + cs.consumers:
            if sl.key() in masks:
                o, n = sl.span(cs.size)
                v = (cons if n == cs.size else cons[o:o + n]).repeat(sl.fold)
                d = keep.setdefault(sl.key(), {})
                d[sl.dim] = v & d[sl.dim] if sl.dim in d else v
    dev = next(iter(masks.values())).device if masks else None
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for k, _, w in items:
        dims = keep.get(k, {})
        whole = 1
        for i, n in enumerate(w.shape):
            whole *= 1 if i in dims else n
        if dims:
            cnt = torch.stack([v.sum() for v in dims.values()]).prod().to(torch.float64) * whole
        else:
            cnt = float(whole)
        total = total + macs[k] * cnt
    for cs, (_, cons) in zip(sets, state):
        a = aggregation_macs(cs, macs)
        if a > 0:
            total = total + (a * cs.size if cs.fixed_consumer else a * cons.sum().to(torch.float64))
    return total


def masked_macs(items, masks: Dict[str, torch.Tensor], sets: List[ChannelSet]) -> float:
    """MACs(M) of the module docstring: what remains after physical channel removal."""
    return float(masked_macs_tensor(items, masks, sets))


def channel_freed_macs(cs: ChannelSet, macs: Dict[str, float], shapes: Dict[str, tuple]) -> float:
    """F_c (the same for every channel of the set): MACs freed when one of its channels is removed. A slot that
    holds a part of the set (a branch of a concatenation) counts with its mean over the set's channels."""
    f = aggregation_macs(cs, macs)
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
    macs = entry_macs(items)
    shapes = {k: tuple(w.shape) for k, _, w in items}
    producer_of = {}
    for cs in sets:
        if cs.fixed_consumer:
            continue
        for s in cs.producers:
            if s.dim == 0 and not s.gate and s.span(cs.size)[1] == cs.size:
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
                 scores: Optional[Dict[str, torch.Tensor]] = None, allocation: Optional[Allocation] = None) -> int:
    """Remove whole channels (in place in ``masks``) until MACs(M) ≤ target·MACs(dense).

    Candidates are the live channels of non-fixed channel sets, taken in increasing order of
    (producer group score / F_c) — the weakest channel per freed MAC first, ties by set then channel (or the
    order of ``allocation``, :class:`Allocation`); ``scores``:
    key → per-channel score (G,) of producer tensors (default: the kept fraction of the channel's slices).
    Returns the number of channels removed (0 when the budget is already met or nothing can be removed).

    On the device: each round is one sort of all candidates and prefix sums (:func:`_remove_round`); the host
    reads the MACs left once per round, the per-entry MACs once and, when something was removed, the count —
    not one value per tensor or channel.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f'target_macs must be a fraction of the dense MACs in (0, 1], got {target!r}')
    macs = entry_macs(items)
    budget = target * dense_macs(items, sets, macs)
    shapes = {k: tuple(w.shape) for k, _, w in items}
    allocation = DEFAULT_ALLOCATION if allocation is None else allocation
    removed, last = None, None
    for _ in range(10):  # F_c double-counts entries shared by two removed channels: re-count and repeat
        fc, like = flat_for_masks(items, masks, sets)  # all sets' alive maps and the MACs at once where it applies
        fm = flat_macs(fc, macs, like[0].device) if fc is not None else None
        if fc is not None:
            state, cons = fc.alive_all(torch._C._nn.flatten_dense_tensors(like), full=True)
        else:
            state = [alive(masks, cs) for cs in sets]
        now = fm(cons) if fm is not None else masked_macs_tensor(items, masks, sets, macs, state)
        now_h = float(now)  # the round's one host read
        if now_h <= budget or now_h == last:  # met, or the last round removed nothing (a removal lowers MACs)
            break
        n = _remove_round(masks, sets, state, budget, now, scores, macs, shapes, allocation)
        removed = n if removed is None else removed + n
        last = now_h
    return 0 if removed is None else int(removed)


def _remove_round(masks, sets, state, budget: float, now: torch.Tensor, scores, macs, shapes,
                  allocation: Allocation = DEFAULT_ALLOCATION) -> torch.Tensor:
    """One greedy round, vectorised: candidates c of every removable set, priority p_c = score_c / F_c (∞ when
    not live; or the priority of ``allocation``); in ascending p (stable: ties by set, then channel) take c while
    its set keeps ≥ ``allocation.keep_at_least`` (:func:`min_channels` by default) live channels and the running estimate now − Σ F of the channels taken before it is still > budget. The
    running estimate is a cumulative sum, so this takes exactly what a loop over the sorted candidates takes.
    Zeroes the taken channels' slices in ``masks``; returns how many (a device tensor)."""
    cand = []  # (set, F_c, live (C,), room (), priority (C,))
    for cs, (prod, cons) in zip(sets, state):
        if cs.fixed_consumer or cs.fixed_producer:
            continue
        f = channel_freed_macs(cs, macs, shapes)
        if f <= 0:
            continue
        live = prod & cons
        room = live.sum() - allocation.keep_at_least(cs.size)
        s = None
        writers = [sl for sl in cs.producers if not sl.gate]
        for sl in writers:
            if scores is not None and sl.key() in scores and scores[sl.key()].numel() == cs.size:
                v = scores[sl.key()].to(device=live.device, dtype=torch.float64)
                s = v if s is None else torch.maximum(s, v)
        if s is None:  # kept fraction of the channel's producer slices
            s = torch.zeros(cs.size, dtype=torch.float64, device=live.device)
            for sl in writers:
                if sl.key() in masks:
                    s = s + channel_mean(masks[sl.key()], sl, cs.size)
        cand.append((cs, f, live, room, allocation.priority(s, f, live)))
    if not cand:
        return now.new_zeros((), dtype=torch.long)
    dev = now.device
    live = torch.cat([c[2] for c in cand])
    prio = torch.cat([c[4] for c in cand]).masked_fill(~live, float('inf'))
    fc = torch.cat([torch.full((c[0].size, ), c[1], dtype=torch.float64, device=dev) for c in cand])
    owner = torch.cat([torch.full((c[0].size, ), i, dtype=torch.long, device=dev) for i, c in enumerate(cand)])
    room = torch.stack([c[3] for c in cand])
    order = torch.sort(prio, stable=True).indices
    live_s, owner_s, fc_s = live[order], owner[order], fc[order]
    # rank of a live candidate among the live candidates of its set that come before it
    onehot = (owner_s.unsqueeze(1) == torch.arange(len(cand), device=dev)) & live_s.unsqueeze(1)
    rank = onehot.long().cumsum(0).gather(1, owner_s.unsqueeze(1)).squeeze(1) - 1
    allowed = live_s & (rank < room[owner_s])
    # est before candidate i: now − F_1 − … − F_{i−1} over the allowed ones, summed left to right like a loop
    steps = torch.cat([now.reshape(1), -(fc_s * allowed)])
    est_before = steps.cumsum(0)[:-1]
    take_s = allowed & (est_before > budget)
    take = torch.zeros_like(take_s).scatter(0, order, take_s)
    for (cs, *_), dead in zip(cand, take.split([c[0].size for c in cand])):
        for sl in cs.producers + cs.consumers:
            if sl.key() in masks:
                masks[sl.key()] = zero_channels(masks[sl.key()], sl, cs.size, dead)
    return take.sum()
