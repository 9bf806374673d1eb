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
from typing import Callable, Dict, Iterable, List

import torch
from torch import nn

from .budget import solve_thresholds
from .topology import make_consistent

__all__ = ['harden', 'recalibrate_bn']


@torch.no_grad()
def _hard_masks(items, rate, floor, sets):
    solve_thresholds([(m, w) for _, m, w in items], rate, floor)
    masks = {key: m.hard(w) for key, m, w in items}
    if sets:
        make_consistent(masks, sets)
    return masks


def _pruned_fraction(items, masks) -> float:
    tot = sum(float(m.cost) * w.numel() for _, m, w in items)
    kept = sum(float(m.cost) * float(masks[k].sum()) for k, m, w in items)
    return 1.0 - kept / tot


@torch.no_grad()
def harden(items: List, rate: float, floor: float = 0.0, sets=None, iters: int = 20) -> Dict[str, float]:
    """Freeze every mask. ``items``: list of (key 'module.param', SemiMask, latent). Returns stats."""
    items = [it for it in items if not bool(it[1].frozen)]
    if not items:
        return dict(achieved=float('nan'), asked=rate)
    masks = _hard_masks(items, rate, floor, sets)
    achieved = _pruned_fraction(items, masks)
    asked = rate
    if sets and achieved > rate + 1e-4:
        lo, hi = 0.0, rate
        best = (abs(achieved - rate), rate, masks, achieved)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            mk = _hard_masks(items, mid, floor, sets)
            a = _pruned_fraction(items, mk)
            if abs(a - rate) < best[0]:
                best = (abs(a - rate), mid, mk, a)
            if a > rate:
                hi = mid
            else:
                lo = mid
            if best[0] < 1e-3:
                break
        _, asked, masks, achieved = best
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
