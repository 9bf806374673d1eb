"""Channel sets: which weight slices read and write one channel of an activation.

A :class:`ChannelSet` of ``size`` C names the *producers* (weight rows, dim 0, that write channel c —
several when a residual sums into the same tensor), the *consumers* (weight columns, dim 1, that read
c), and the norms indexed by c. ``fold=K`` views the dim as (K, C) (ST-GCN's spatial conv writes K
rows per channel). A slot may cover only a contiguous part ``[offset, offset + length)`` of its set's channels
(a branch's conv writing its share of a concatenation); a *gate* slot (``gate=True``) holds slices that exist only
for channel c (a per-channel attention or topology row that scales c's value) and neither write nor read it: they
are removed with the channel but never decide whether it lives. Residual identities are expressed by merging the
sets they connect; a set whose
channels reach something that cannot be masked (the classifier, a concatenation) is ``fixed_consumer``; when that
is a linear classifier after global pooling (``head``), export still removes the channels no producer writes by
folding their constant values into its bias (:func:`~.shrink.shrink`).

- **Topological consistency** (the author's sibling papers): a channel none of whose producers or
  none of whose consumers survives is removed as a whole (its remaining slices are zeroed), repeated
  to a fixpoint, so nothing kept is unreachable.
- **Physical removal** (:mod:`.shrink`) is exact for channels whose consumer slices are all zero: what
  such a channel computes is never read.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch

from .fused.segment import segment_sum

__all__ = ['Slot', 'ChannelSet', 'aggregation_macs', 'channel_view', 'channel_any', 'channel_mean', 'exported_channels',
           'zero_channels',
           'alive', 'make_consistent',
           'FlatConsistency', 'flat_consistency', 'flat_for_masks']


@dataclass(frozen=True)
class Slot:
    """``module.<param>`` indexed by a channel along ``dim`` (0 producer rows, 1 consumer columns).

    ``offset`` / ``length``: the slot holds channels ``offset .. offset + length - 1`` of its set only (its dim has
    fold·length entries; ``length`` 0: the whole set). ``gate``: a producer-side slice that scales the channel
    without writing it (removed with the channel, ignored when deciding whether the channel lives)."""
    module: str
    param: str = 'weight'
    dim: int = 0
    fold: int = 1
    offset: int = 0
    length: int = 0
    gate: bool = False

    def key(self):
        return f'{self.module}.{self.param}'

    def span(self, size: int):
        """(first channel, number of channels) of the set that this slot holds."""
        n = self.length or size - self.offset
        if self.offset < 0 or n <= 0 or self.offset + n > size:
            raise ValueError(f'{self.key()}: channels {self.offset}..{self.offset + n - 1} lie outside its channel '
                             f'set of {size}')
        return self.offset, n


@dataclass
class ChannelSet:
    name: str
    size: int
    producers: List[Slot] = field(default_factory=list)
    consumers: List[Slot] = field(default_factory=list)
    norms: List[str] = field(default_factory=list)
    fixed_producer: bool = False
    fixed_consumer: bool = False
    #: per-channel cost of an unmasked operation that disappears with the channel (ST-GCN's adjacency
    #: aggregation): ``agg_factor`` × the per-entry MACs of the tensor ``agg_ref`` ('module.param')
    agg_ref: str = ''
    agg_factor: float = 0.0
    #: more such costs, (agg_ref, agg_factor) each, summed with the one above (a set merged over several blocks by
    #: identity residuals carries one aggregation per block)
    aggs: List[Tuple[str, float]] = field(default_factory=list)
    #: a fixed-consumer set read by a linear classifier after global pooling ('module' of that ``nn.Linear``, whose
    #: input column c is channel c): :func:`~.shrink.shrink` may then remove channels whose producers are all zero
    #: (constant whatever the input) by folding their constant into the classifier's bias
    head: str = ''

    def parts(self) -> List[Tuple[int, int]]:
        """The spans (first channel, number) of the slots and norms that hold a part of the set only (the branches
        of a concatenation); export keeps at least one channel of each (a layer needs one output)."""
        spans = set()
        for s in self.producers + self.consumers + [n for n in self.norms if isinstance(n, Slot)]:
            o, n = s.span(self.size)
            if n < self.size:
                spans.add((o, n))
        return sorted(spans)


def aggregation_macs(cs: ChannelSet, macs: Dict[str, float]) -> float:
    """agg_c: the per-channel MACs of the set's aggregations, Σ factor × macs(ref) over ``agg_ref`` / ``agg_factor``
    and ``aggs`` (``macs``: key → MACs of one entry per sample)."""
    terms = ([(cs.agg_ref, cs.agg_factor)] if cs.agg_ref else []) + list(cs.aggs)
    return sum(float(f) * float(macs.get(r, 0.0)) for r, f in terms if f > 0)


def exported_channels(cs: ChannelSet, cons: torch.Tensor) -> torch.Tensor:
    """(C,) bool: the channels export keeps of a removable set whose consumer-alive map is ``cons``: those, the
    first channel of every part (:meth:`ChannelSet.parts`) none of whose channels is read, and channel 0 when
    nothing of the set is read (a layer needs one output). No host read."""
    out = cons.clone()
    for o, n in cs.parts():
        out[o] = out[o] | ~cons[o:o + n].any()
    out[0] = out[0] | ~cons.any()
    return out


def channel_view(t: torch.Tensor, slot: Slot, size: int) -> torch.Tensor:
    """``t`` viewed as (fold, n, rest) along the slot's dim, n the channels the slot holds (the set's C unless it
    holds a part, :meth:`Slot.span`): channel offset + j's slice is ``[:, j, :]``."""
    _, n = slot.span(size)
    v = t.movedim(slot.dim, 0)
    if v.shape[0] != slot.fold * n:
        raise ValueError(f'{slot.key()}: dim {slot.dim} has {v.shape[0]} entries, expected '
                         f'{slot.fold}×{n} for its channel set')
    return v.reshape(slot.fold, n, -1)


def _embed(v: torch.Tensor, slot: Slot, size: int, fill=False) -> torch.Tensor:
    """(C,) from a slot's (n,) per-channel values, ``fill`` on the channels the slot does not hold."""
    o, n = slot.span(size)
    if n == size:
        return v
    out = torch.full((size, ), fill, dtype=v.dtype, device=v.device)
    out[o:o + n] = v
    return out


def channel_any(t: torch.Tensor, slot: Slot, size: int) -> torch.Tensor:
    """(C,) bool: does any entry of channel c's slice survive (non-zero)? (A boolean mask is read as is: one
    reduction over the fold and the rest, no comparison.) False for the channels the slot does not hold."""
    v = channel_view(t, slot, size)
    return _embed((v if v.dtype == torch.bool else v != 0).any(dim=(0, 2)), slot, size)


def channel_mean(t: torch.Tensor, slot: Slot, size: int) -> torch.Tensor:
    """(C,) float64: the mean of channel c's slice (0 for the channels the slot does not hold)."""
    return _embed(channel_view(t, slot, size).float().mean(dim=(0, 2)).double(), slot, size, fill=0.0)


def zero_channels(t: torch.Tensor, slot: Slot, size: int, dead: torch.Tensor, fill=0) -> torch.Tensor:
    """Copy of ``t`` with channel slices where ``dead`` (C,) set to ``fill`` (zeroed by default): one masked_fill in
    ``t``'s own layout (index f·n + j of the slot's dim belongs to channel offset + j), no boolean indexing, and a
    Python fill (a tensor made from host data is a host-to-device copy, which on CUDA synchronises the stream)."""
    o, c = slot.span(size)
    n = t.shape[slot.dim]
    if n != slot.fold * c:
        channel_view(t, slot, size)  # raises the shape error
    d = dead if c == size else dead[o:o + c]
    d = d if slot.fold == 1 else d.repeat(slot.fold)
    return t.masked_fill(d.view([n if i == slot.dim else 1 for i in range(t.dim())]), fill)


def alive(masks: Dict[str, torch.Tensor], cs: ChannelSet):
    """(producer_alive, consumer_alive), each (C,) bool; unmasked slices count as alive."""
    return _alive_from(masks, cs, with_live=False)[:2]


def _writers(cs: ChannelSet) -> List[Slot]:
    """The producer slots that write the channel (its gate slots left out)."""
    return [s for s in cs.producers if not s.gate]


def _counted_sides(cs: ChannelSet, masked) -> tuple:
    """(producers count, consumers count): whether a side of ``cs`` is alive by its masks, i.e. not fixed, not
    empty and every slot of it masked (a key in ``masked``); a side with a fixed or unmasked slice is alive
    whatever its masks. Gate slots do not count."""
    w = _writers(cs)
    p = not (cs.fixed_producer or not w or any(s.key() not in masked for s in w))
    c = not (cs.fixed_consumer or not cs.consumers or any(s.key() not in masked for s in cs.consumers))
    return p, c


def _alive_from(masks: Dict[str, torch.Tensor], cs: ChannelSet, with_live: bool = True):
    """(producer_alive, consumer_alive, some masked slice non-zero or None), each (C,) bool, reading every masked
    slice once."""
    C = cs.size
    dev = next(iter(masks.values())).device if masks else None
    p_all, c_all = _counted_sides(cs, masks)  # else that side is alive whatever; its slices only feed the live map
    pa = [channel_any(masks[s.key()], s, C) for s in _writers(cs) if s.key() in masks] if p_all or with_live else []
    ca = [channel_any(masks[s.key()], s, C) for s in cs.consumers if s.key() in masks] if c_all or with_live else []
    ga = [channel_any(masks[s.key()], s, C) for s in cs.producers if s.gate and s.key() in masks] if with_live else []

    def any_of(xs):
        if not xs:
            return torch.zeros(C, dtype=torch.bool, device=dev)
        return xs[0] if len(xs) == 1 else torch.stack(xs).any(dim=0)

    prod = any_of(pa) if p_all else torch.ones(C, dtype=torch.bool, device=dev)
    cons = any_of(ca) if c_all else torch.ones(C, dtype=torch.bool, device=dev)
    return prod, cons, any_of(pa + ca + ga) if with_live else None


def make_consistent(masks: Dict[str, torch.Tensor], sets: List[ChannelSet], max_rounds: int = 50) -> int:
    """Zero, in place in ``masks`` (key ``'module.param'`` → bool tensor), every slice of channels
    that have no surviving producer or no surviving consumer. Returns the number of channels removed."""
    removed_total = 0
    dev = next(iter(masks.values())).device if masks else None
    done = [torch.zeros(cs.size, dtype=torch.bool, device=dev) for cs in sets]
    # one host read per round (did any set change?), not one per set: zeroing with no dead channel is a no-op
    for _ in range(max_rounds):
        removed = []
        for i, cs in enumerate(sets):
            prod, cons, live = _alive_from(masks, cs)  # live: some masked slice still non-zero
            dead = ~(prod & cons) & live & ~done[i]
            for s in cs.producers + cs.consumers:
                if s.key() in masks:
                    masks[s.key()] = zero_channels(masks[s.key()], s, cs.size, dead)
            done[i] |= dead
            removed.append(dead.sum())
        if not removed:
            break
        n = int(torch.stack(removed).sum())
        removed_total += n
        if n == 0:
            break
    return removed_total


class FlatConsistency:
    """:func:`make_consistent` over the concatenation of the masks of ``keys`` (N,), all channel sets at once.

    Static ids, built once per key list, shapes, sets and device: every entry i lies in at most one producer
    channel p(i) and one consumer channel c(i) (global ids over all sets; a dummy id C for none), and a side of a
    channel *counts* its masks only when every one of its slots is masked and it is not fixed (else it is alive
    whatever, as in :func:`alive`). One round, for all sets together:

        P_c = Σ_{p(i)=c} M_i,  Q_c = Σ_{c(i)=c} M_i                       (two segment sums)
        dead_c = ¬((P_c > 0 ∨ ¬open_P,c) ∧ (Q_c > 0 ∨ ¬open_Q,c)) ∧ (P_c + Q_c > 0)
        M_i ← M_i ∧ ¬dead[p(i)] ∧ ¬dead[c(i)]                                (two gathers)

    repeated until no channel dies (one host read per round). Every removal rule is monotone and only zeroes, so
    the result is the greatest consistent sub-mask of the input: the masks :func:`make_consistent` gives (it
    visits the sets one by one, which may take fewer rounds, ~20 operators per set and slot each), whatever the
    order. ``applicable``: False when a tensor is a producer (or a consumer) slot of two sets; use
    :func:`make_consistent` then."""

    def __init__(self, keys, shapes, sets: List[ChannelSet], device):
        self.keys = tuple(keys)
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.sets = list(sets)
        where = {k: i for i, k in enumerate(self.keys)}
        role = {}  # (key, producer?) -> (channel offset, slot, set size, set index)
        open_p, open_q, C = [], [], 0
        self.applicable = True
        for si, cs in enumerate(self.sets):
            for side, slots in ((True, cs.producers), (False, cs.consumers)):
                for s in slots:
                    if s.key() in where:
                        if (s.key(), side) in role:
                            self.applicable = False
                        role[(s.key(), side)] = (C, s, cs.size, si)
            p_open, q_open = _counted_sides(cs, where)
            open_p += [p_open] * cs.size
            open_q += [q_open] * cs.size
            C += cs.size
        self.C = C
        self.role = role
        self.closed_p = ~torch.tensor(open_p + [True], dtype=torch.bool, device=device)  # (C + 1,): the dummy
        self.closed_q = ~torch.tensor(open_q + [True], dtype=torch.bool, device=device)
        ids = {True: [], False: [], 'gate': []}
        for k, shp, n in zip(self.keys, self.shapes, self.sizes):
            for side in (True, False):
                r = role.get((k, side))
                if r is None:
                    ids[side].append(torch.full((n, ), C, dtype=torch.long, device=device))
                    if side:
                        ids['gate'].append(ids[side][-1])
                    continue
                off, s, size, _ = r
                o, c = s.span(size)
                if len(shp) <= s.dim or shp[s.dim] != s.fold * c:
                    raise ValueError(f'{s.key()}: dim {s.dim} of shape {shp} is not {s.fold}×{c} for its channel '
                                     'set')
                stride = math.prod(shp[s.dim + 1:])
                pos = torch.arange(n, device=device) // stride % shp[s.dim]  # coordinate along the slot's dim
                ids[side].append(pos % c + o + off)  # channel o + j of index f·n + j (channel_view's layout)
                if side:
                    ids['gate'].append(ids[side][-1] if s.gate else torch.full((n, ), C, dtype=torch.long,
                                                                                device=device))
                    if s.gate:
                        ids[side][-1] = torch.full((n, ), C, dtype=torch.long, device=device)
        empty = torch.zeros(0, dtype=torch.long, device=device)
        self.pid = torch.cat(ids[True]) if ids[True] else empty  # writers: counted and zeroed
        self.qid = torch.cat(ids[False]) if ids[False] else empty
        gid = torch.cat(ids['gate']) if ids['gate'] else empty  # gate slices: zeroed with their channel, not counted
        self.gid = gid if any(s.gate for _, s, _, _ in role.values()) else None
        self.real = torch.ones(C + 1, dtype=torch.bool, device=device)
        self.real[C] = False  # the dummy channel of entries outside every set never dies
        self.plans = {}

    def matches(self, keys, shapes, sets, device) -> bool:
        return (tuple(keys) == self.keys and [tuple(s) for s in shapes] == self.shapes and len(sets) == len(self.sets)
                and all(a is b for a, b in zip(sets, self.sets)) and self.pid.device == torch.device(device))

    def _counts(self, flat: torch.Tensor, gates: bool = False):
        """(P, Q), (C + 1,) each: the surviving entries of every channel's producer (writer) and consumer slices
        (exact up to 2^24 per channel); ``gates``: also G, its gate slices' (None without gate slots)."""
        v = flat.to(torch.float32)
        P, Q = (segment_sum(v, self.pid, self.C + 1, self.plans, 'p'),
                segment_sum(v, self.qid, self.C + 1, self.plans, 'q'))
        if not gates:
            return P, Q
        return P, Q, None if self.gid is None else segment_sum(v, self.gid, self.C + 1, self.plans, 'g')

    def alive_all(self, flat: torch.Tensor, full: bool = False):
        """[:func:`alive` (producer_alive, consumer_alive) of every set, in order] of the flat bool masks (N,): two
        segment sums and one split per side for all sets (the same booleans); ``full``: also the consumer side of
        all channels as one (C,) vector."""
        P, Q = self._counts(flat)
        P, Q = (P > 0) | self.closed_p, (Q > 0) | self.closed_q
        sizes = [cs.size for cs in self.sets]
        out = list(zip(P[:self.C].split(sizes), Q[:self.C].split(sizes)))
        return (out, Q[:self.C]) if full else out

    def __call__(self, flat: torch.Tensor, max_rounds: int = 50) -> torch.Tensor:
        """The consistent flat bool mask (N,) of ``flat`` (a new tensor; ``flat`` is not modified)."""
        m = flat
        for _ in range(max_rounds):
            P, Q, G = self._counts(m, gates=True)
            live = (P + Q) > 0 if G is None else (P + Q + G) > 0
            dead = ~(((P > 0) | self.closed_p) & ((Q > 0) | self.closed_q)) & live & self.real
            if not bool(dead.any()):  # one host read per round
                break
            m = m & ~dead.index_select(0, self.pid) & ~dead.index_select(0, self.qid)
            if self.gid is not None:
                m = m & ~dead.index_select(0, self.gid)
        return m


def flat_for_masks(items, masks: Dict[str, torch.Tensor], sets: List[ChannelSet]):
    """(the cached :class:`FlatConsistency` of ``items``' keys, the masks in that order) when it applies to ``masks``
    (bool, exactly the items' keys, no tensor in two slots of one side), else (None, None). ``items``: (key,
    SemiMask, latent); the cache lives on the first mask."""
    keys = [k for k, _, _ in items]
    if not sets or not keys or len(masks) != len(keys) or any(k not in masks for k in keys):
        return None, None
    like = [masks[k] for k in keys]
    if any(t.dtype != torch.bool for t in like):
        return None, None
    cache = items[0][1].__dict__.setdefault('_sp_topo', {})
    fc = flat_consistency(keys, [t.shape for t in like], sets, like[0].device, cache)
    return (fc, like) if fc.applicable else (None, None)


def flat_consistency(keys, shapes, sets: List[ChannelSet], device, cache: dict) -> 'FlatConsistency':
    """The :class:`FlatConsistency` of these keys, shapes and sets on ``device``, kept in ``cache``."""
    hit = cache.get(str(device))
    if hit is None or not hit.matches(keys, shapes, sets, device):
        hit = cache[str(device)] = FlatConsistency(keys, shapes, sets, device)
    return hit
