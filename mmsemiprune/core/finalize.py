"""Finalize: binary masks at exactly the target rate, no dead channel, fresh BatchNorm statistics.

1. **Harden**: thresholds are placed for the target (see :func:`~.budget.solve_thresholds`) and the
   hard masks (τ → 0, hard gates) are taken.
2. **Topological consistency**: channels without a surviving producer or consumer are removed whole
   (:func:`~.topology.make_consistent`). This prunes a little more than asked, so the rate passed to
   step 1 is lowered by bisection until the consistent masks meet the target (|achieved − r| is
   reported; it is within half a point unless a single channel is larger than that).
3. **BatchNorm re-estimation** (:func:`recalibrate_bn`): measured on SBU, stale running statistics, not
   the mask, explain most of the accuracy collapse right after hardening.
"""
from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import nn

from .budget import solve_thresholds
from .compute import project_macs
from .fused.flat import flat_for, flat_scores
from .fused.segment import segment_sum
from .topology import flat_for_masks, make_consistent

__all__ = ['harden', 'consistent_masks', 'recalibrate_bn', 'live_region', 'LiveRegions']


@torch.no_grad()
def live_region(mask: torch.Tensor) -> torch.Tensor:
    """K (float, mask's shape): 1 on entries whose output row (dim 0) and input column (dim 1) both keep at
    least one entry of ``mask``, 0 on all-zero rows and columns (the channels the masks remove whole)."""
    m = mask if mask.dtype == torch.bool else mask.to(torch.bool)
    rows = m.reshape(m.shape[0], -1).any(1)
    k = rows.view((-1, ) + (1, ) * (m.dim() - 1))
    if m.dim() >= 2:
        cols = m.transpose(0, 1).reshape(m.shape[1], -1).any(1)
        k = k & cols.view((1, -1) + (1, ) * (m.dim() - 2))
    return k.expand(m.shape).to(torch.float32)


class LiveRegions:
    """:func:`live_region` of many masks at once, over their concatenation (N,) (static ids built once per list
    of shapes and device): entry i of tensor ℓ belongs to output row r(i) and input column c(i) (global ids);

        K = [Σ_{r(j)=r(i)} M_j > 0] ∧ [Σ_{c(j)=c(i)} M_j > 0]      (1-D tensors: rows only)

    with two segment sums (:func:`~.fused.segment.segment_sum`) and two gathers instead of ~11 operators per tensor."""

    def __init__(self, shapes, device):
        self.shapes = [tuple(s) for s in shapes]
        rows, cols, R, C = [], [], 0, 0
        for shp in self.shapes:
            n = 1
            for d in shp:
                n *= d
            i = torch.arange(n, device=device)
            rows.append(i // max(n // shp[0], 1) + R)
            R += shp[0]
            if len(shp) >= 2:
                inner = n // (shp[0] * shp[1])
                cols.append((i // max(inner, 1)) % shp[1] + C)
                C += shp[1]
            else:
                cols.append(torch.full((n, ), -1, dtype=torch.long, device=device))
        self.R, self.C = R, C
        self.rowid = torch.cat(rows)
        colid = torch.cat(cols)
        self.colid = torch.where(colid < 0, C, colid)  # 1-D tensors: a dummy column, always live
        self.dummy = torch.zeros(C + 1, dtype=torch.bool, device=device)
        self.dummy[C] = True
        self.plans = {}

    def __call__(self, flat_mask: torch.Tensor) -> torch.Tensor:
        """float32 (N,) K of the concatenated boolean masks ``flat_mask`` (N,)."""
        v = flat_mask.to(torch.float32)  # counts up to 2^24 per row / column are exact
        rows = segment_sum(v, self.rowid, self.R, self.plans, 'row') > 0
        cols = (segment_sum(v, self.colid, self.C + 1, self.plans, 'col') > 0) | self.dummy
        return (rows.index_select(0, self.rowid) & cols.index_select(0, self.colid)).to(torch.float32)


@torch.no_grad()
def _hard_masks(items, rate, floor, sets, target_macs=None, scores=None, allocation=None):
    # no host reads; the hard masks from the search's own flat scores (per tensor only for mixed modes / frozen)
    hard = solve_thresholds([(m, w) for _, m, w in items], rate, floor, stats=False, hard_masks=True)
    if hard is not None:
        masks = {key: h for (key, _, _), h in zip(items, hard)}
    else:
        masks = {key: m.hard(w) for key, m, w in items}
    if sets:
        _consistent(items, masks, sets)
        if target_macs is not None:
            if project_macs(items, masks, sets, target_macs, scores, allocation):
                _consistent(items, masks, sets)
    return masks


def _consistent(items, masks, sets) -> None:
    """:func:`~.topology.make_consistent` in place in ``masks``, for all sets at once over the flat masks
    (:class:`~.topology.FlatConsistency`: the same masks, ~20 operators per round instead of ~20 per set and slot)
    where it applies, else set by set."""
    fc, like = flat_for_masks(items, masks, sets)
    if fc is None:
        make_consistent(masks, sets)
        return
    out = fc(torch._C._nn.flatten_dense_tensors(like))
    masks.update(zip([k for k, _, _ in items], torch._C._nn.unflatten_dense_tensors(out, like)))


def _pruned_fraction(items, masks) -> float:
    """1 − Σ c_ℓ·kept_ℓ / Σ c_ℓ·numel_ℓ, in float64 on the device, read back once (one host sync, not 2L): the kept
    counts by one flatten and one segment sum over the masks' cached flat index (exact integers, so the same bits
    as per-tensor sums), the costs and sizes cached there too (a tensor made from host data per probe would be a
    host-to-device copy, which on CUDA synchronises the stream)."""
    ms = [m for _, m, _ in items]
    like = [masks[k] for k, _, _ in items]
    flat = flat_for(ms, like[0].device)
    costs = flat.cost_weights(ms)[0]
    v = torch._C._nn.flatten_dense_tensors(like).to(torch.float32)  # counts per tensor up to 2^24 are exact
    kept = segment_sum(v, flat.lid, flat.L, flat.plans, 'lid').double()
    return float(1.0 - (costs * kept).sum() / (costs * flat.numel).sum())


class _RateProbes:
    """The probes of one :func:`consistent_masks` call: asked rate → (consistent masks, achieved rate), the
    bracket [lo, hi] of asked rates (with the achieved rates at its ends where probed) and the best probe so far."""

    def __init__(self, items, rate, floor, sets, target_macs, scores, memo, allocation=None):
        self.items, self.rate, self.floor, self.sets = items, rate, floor, sets
        self.target_macs, self.scores, self.memo, self.allocation = target_macs, scores, memo, allocation
        self.seen = {}  # asked rate -> (masks, achieved): a probe is a function of the rate within this call
        self.written = None  # the asked rate whose thresholds the masks' buffers hold
        self.lo, self.hi, self.best = 0.0, rate, None
        self.a_lo = self.a_hi = None  # achieved rates at lo / hi where probed (secant mode's interpolation)

    def probe(self, r):
        """(masks, achieved) at asked rate r; a rate probed before in this call is not probed again (the bisection
        revisits the warm start's rate: one search, consistency pass and host read fewer)."""
        hit = self.seen.get(r) if self.memo else None
        if hit is None:
            mk = _hard_masks(self.items, r, self.floor, self.sets, self.target_macs, self.scores, self.allocation)
            hit = self.seen[r] = (mk, _pruned_fraction(self.items, mk))
            self.written = r
        return hit

    def keep_best(self, asked, masks, achieved) -> None:
        """Remember the probe at ``asked`` when it is the closest to the rate so far."""
        if self.best is None or abs(achieved - self.rate) < self.best[0]:
            self.best = (abs(achieved - self.rate), asked, masks, achieved)

    def bracket(self, asked, achieved) -> None:
        """Narrow [lo, hi] by the probe at ``asked`` (above the rate: a new hi, else a new lo)."""
        if achieved > self.rate:
            self.hi, self.a_hi = asked, achieved
        else:
            self.lo, self.a_lo = asked, achieved

    def done(self, masks, asked, achieved):
        if self.written != asked:  # leave the thresholds of the chosen probe, not of the last one, in the buffers
            # (the same thresholds; nothing read back)
            solve_thresholds([(m, w) for _, m, w in self.items], asked, self.floor, stats=False)
        return masks, asked, achieved

    def warm_start(self, start: float, secant: bool, tol: float):
        """The previous recomputation's asked rate, then (``secant``) one secant step of slope 1 (the rate
        consistency adds varies little between nearby latents): (masks, asked, achieved) when one is within
        ``tol``, else None (without ``secant`` the bracket and the best probe are reset to the plain search's)."""
        rate, guess = self.rate, start
        for _ in range(2 if secant else 1):
            mk, a = self.probe(guess)
            self.keep_best(guess, mk, a)
            if abs(a - rate) < tol:
                return mk, guess, a
            if a > rate:
                if guess <= self.hi:
                    self.hi, self.a_hi = guess, a
            elif guess >= self.lo:
                self.lo, self.a_lo = guess, a
            nxt = min(max(guess - (a - rate), self.lo), self.hi)
            if nxt == guess:
                break
            guess = nxt
        if not secant:  # the start missed: the plain search from [0, rate]
            self.lo, self.hi, self.best = 0.0, rate, None
        return None

    def next_rate(self, secant: bool) -> float:
        """The next asked rate inside [lo, hi]: the midpoint or, with ``secant``, safeguarded regula falsi."""
        lo, hi, mid = self.lo, self.hi, 0.5 * (self.lo + self.hi)
        if secant and self.a_hi is not None and self.a_hi > (self.a_lo if self.a_lo is not None else 0.0):
            # safeguarded regula falsi (the achieved rate is monotone and nearly linear in the asked one; an
            # unprobed lo = 0 counts as achieving 0): updates of 4-5 probes where bisection took 6-7 (NTU
            # ST-GCN, compute target, update_every 16, warm-up); kept 10 % inside the bracket: it always shrinks
            a0 = self.a_lo if self.a_lo is not None else 0.0
            x = lo + (self.rate - a0) * (hi - lo) / (self.a_hi - a0)
            mid = min(max(x, lo + 0.1 * (hi - lo)), hi - 0.1 * (hi - lo))
        return mid

    def bisect(self, iters: int, secant: bool, tol: float) -> None:
        """Up to ``iters`` probes inside the bracket, until the best is within ``tol``."""
        for _ in range(iters):
            mid = self.next_rate(secant)
            mk, a = self.probe(mid)
            self.keep_best(mid, mk, a)
            self.bracket(mid, a)
            if self.best[0] < tol:
                break


@torch.no_grad()
def consistent_masks(items: List, rate: float, floor: float = 0.0, sets=None, iters: int = 20,
                     target_macs: Optional[float] = None, start: Optional[float] = None, tol: float = 1e-3,
                     secant: bool = False, memo: bool = True, allocation=None):
    """Hard masks (no gradient) at the current latents and hard gates that meet ``rate`` after
    topological consistency (and, with ``target_macs``, after :func:`~.compute.project_macs`).

    Consistency and the MAC projection prune a little more than asked, so the rate passed to the
    threshold search is lowered until the consistent masks meet the target: ``start`` (a rate to try first,
    e.g. the previous recomputation's), with ``secant`` one secant step from it, else the rate itself and a
    bisection below it (the pruner uses the secant step with a mask update interval > 1, where the start
    misses more often, and then interpolates (safeguarded regula falsi) instead of bisecting; without it the search
    is exactly the one the published leaderboard ran). The thresholds of the chosen probe are left in the masks'
    buffers. ``tol``: the accepted |achieved − rate|. ``memo``: a rate probed before in this call is not probed
    again (its masks and achieved rate are a function of the rate here: the same result; False: probe again, the
    reference). ``allocation``: the compute projection's order and floor (:class:`~.compute.Allocation`).
    Returns (masks, asked, achieved)."""
    scores = producer_scores(items) if target_macs is not None else None
    pr = _RateProbes(items, rate, floor, sets, target_macs, scores, memo, allocation)
    if start is not None and 0.0 <= start <= rate:
        hit = pr.warm_start(start, secant, tol)
        if hit is not None:
            return pr.done(*hit)
    if pr.best is None or pr.hi >= rate:  # the rate itself (no consistency loss: done)
        masks, achieved = pr.probe(rate)
        pr.keep_best(rate, masks, achieved)
        if not (sets and achieved > rate + 1e-4):
            return pr.done(masks, rate, achieved)
        if achieved > rate:
            pr.a_hi = achieved
    if sets:
        pr.bisect(iters, secant, tol)
    _, asked, masks, achieved = pr.best
    return pr.done(masks, asked, achieved)


def producer_scores(items) -> Dict[str, torch.Tensor]:
    """Per-group coarse score of every mask with one grouping (for the MAC projection's order): ``(G,)``
    views of the first grouping's statistics of :func:`~.fused.flat.flat_scores`, all masks in one pass (what
    ``m.first_group_scores(w)`` gives per tensor, with the same additions in the same order; per tensor only when
    the masks differ in normalisation or statistic)."""
    want = [bool(m.groupings and m.per_group_scores) for _, m, _ in items]
    if not any(want):
        return {}
    masks = [m for _, m, _ in items]
    m0 = masks[0]
    if any(m.normalize != m0.normalize or m.group_stat != m0.group_stat for m in masks):
        return {key: m.first_group_scores(w) for (key, m, w), k in zip(items, want) if k}
    latents = [w for _, _, w in items]
    flat = flat_for(masks, latents[0].device)
    _, stats, _ = flat_scores(flat, masks, latents)
    parts = stats[0].split(flat.slots[0]['lens'] + [1])  # + the dummy group
    return {key: parts[i] for i, ((key, _, _), k) in enumerate(zip(items, want)) if k}


@torch.no_grad()
def harden(items: List, rate: float, floor: float = 0.0, sets=None, iters: int = 20,
           target_macs: Optional[float] = None, allocation=None) -> Dict[str, float]:
    """Freeze every mask. ``items``: list of (key 'module.param', SemiMask, latent). Returns stats."""
    items = [it for it in items if not it[1]._is_frozen]
    if not items:
        return dict(achieved=float('nan'), asked=rate)
    masks, asked, achieved = consistent_masks(items, rate, floor, sets, iters, target_macs, allocation=allocation)
    for key, m, w in items:
        m.freeze(masks[key])
    return dict(achieved=achieved, asked=asked)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, run_batch: Callable, batches: Iterable, max_batches: int = 50) -> int:
    """Re-estimate every BatchNorm's running statistics as a cumulative average over ``batches``
    (``run_batch(batch)`` runs a forward pass). Restores train/eval mode and momenta. Returns the
    number of batches used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
    model.train()
    n = 0
    try:
        for batch in batches:
            run_batch(batch)
            n += 1
            if n >= max_batches:
                break
    finally:
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        model.train(was_training)
    return n
