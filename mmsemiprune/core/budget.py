"""Cost model, budget regularizer and rate controller.

Cost: every entry of a prunable tensor ℓ costs ``c_ℓ``: 1 for ``cost='params'``; for ``cost='flops'``
the number of times it is applied per sample (the output positions T'·V of a conv, recorded by
:meth:`~.pruner.SemiPruner.profile`), i.e. its multiply-accumulates.

Budget regularizer (the sibling papers' λ(Σψ − c)², normalised so λ is scale-free):

    R = λ · ((Σ_ℓ c_ℓ Σ_i ψ_ℓ,i − (1 − r)·N) / N)²,   N = Σ_ℓ c_ℓ·numel_ℓ

Rate controller (our choice; the paper's threshold rule is not public): every step the band positions
a_e (entries) and a_g (groups) are placed so that the *hard* kept cost equals the scheduled target,
as MRMP's quantile map a(r) does for a prior. Measured on SBU: thresholds moved by the penalty's
gradient alone overshoot or freeze once τ is small; placing them by a monotone search on the hard
count cannot. The penalty R still acts on the latents and the gates (it polarises the soft mask
towards the hard one and prices the gate's choice).

Speed (issue "pruning at GPU speed"): the search runs on the device over all tensors at once, with a
fixed number of operators and no host synchronisation: the scores of all masks live in one flat vector
(static index tensors per mask list, :class:`~.fused.flat.FlatIndex`), and every weighted quantile is an exact
two-pass radix select over the float32 bit patterns (:func:`~.fused.select.weighted_select`: two weighted
histograms, cumulative sums, no sort, no ``.item()``, no boolean indexing).
"""
import math
from typing import Optional, Sequence

import torch

from .fused.flat import FlatIndex, flat_for, flat_scores
from .fused.select import kth_largest_per_segment, weighted_select

__all__ = ['CostModel', 'BudgetRegularizer', 'solve_thresholds', 'COSTS']

COSTS = ('params', 'flops')


class CostModel:
    """The cost an entry of a pruned tensor counts for: 'params' (1) or 'flops' (its MACs per sample,
    recorded by :meth:`~.pruner.SemiPruner.profile`). Validates the name."""

    def __init__(self, cost: str = 'params'):
        if cost not in COSTS:
            raise ValueError(f'unknown cost {cost!r}; choose one of {COSTS} (cost="params" counts weights, '
                             'cost="flops" weights each entry by the output positions it is applied to)')
        self.cost = cost


class BudgetRegularizer:
    """R = λ((Σ c·ψ − (1 − r)N)/N)² over the cached soft masks of the last forward. ``rate`` may be a
    float or a 0-dim tensor (no host synchronisation)."""

    def __init__(self, weight: float = 5.0):
        if not weight >= 0:
            raise ValueError(f'budget weight must be >= 0, got {weight!r}')
        self.weight = float(weight)

    def kept_fraction(self, masks) -> torch.Tensor:
        masks = [m for m in masks if m.last_psi is not None]
        if not masks:
            return None
        sums = torch.stack([m.last_psi.sum() for m in masks])
        costs = torch.stack([m.cost for m in masks]).to(sums.dtype)
        numels = [m.last_psi.numel() for m in masks]
        total = (costs * sums.new_tensor(numels)).sum() if len(set(numels)) > 1 else costs.sum() * numels[0]
        return (sums * costs).sum() / total

    def __call__(self, masks, rate, frac=None) -> torch.Tensor:
        """``frac``: the kept fraction when already computed (the pruner's batched masks)."""
        frac = self.kept_fraction(masks) if frac is None else frac
        if frac is None:
            return torch.zeros(())
        return self.weight * (frac - (1.0 - rate)) ** 2


def _gate_hard(flat: FlatIndex, masks, device):
    """Hard gate decision per group of slot 0 (True: the group mask decides), (G_0 + 1,) with the dummy."""
    gates = [m.gate for m in masks]
    if all(g.mode == 'learned' and not getattr(g, '_is_frozen', False) for g in gates):
        hard = torch.cat([g.logit.detach() if torch.is_grad_enabled() else g.logit for g in gates]) > 0
    else:
        hard = torch.cat([g.hard().to(device) for g in gates])
    return torch.cat([hard, hard.new_zeros(1)])


@torch.no_grad()
def solve_thresholds(items: Sequence, rate: float, floor: float = 0.0, stats: bool = True,
                     hard_masks: bool = False, rate_t: Optional[torch.Tensor] = None):
    """Place the band of every mask so that the hard kept cost is (1 − rate)·N.

    ``items``: list of (SemiMask, latent); frozen masks are skipped. Steps:
      1. α_e: global entry threshold meeting the target with entry masks alone (on a deterministic
         subsample: it is only a scale reference); α_g: the same for group masks alone;
      2. per entry the ratio ρ = score/α of whichever mask decides it (hard gate; for ctf the smaller);
      3. layer floor: in every tensor the ⌈floor·n_ℓ⌉ largest ρ are kept whatever the level (its own,
         lower level u_ℓ);
      4. t: the global level with Σ_ℓ c_ℓ·max(#(ρ_ℓ > t), floor part) = target, i.e. the rate is met
         exactly (to one entry / group) including the floors (no undershoot);
      5. a_e,ℓ = t_ℓ·α_e, a_g,ℓ = t_ℓ·α_g are written into each mask's buffers (t_ℓ = t, or just below
         u_ℓ where the floor binds).
    All on the device, O(1) operators in the number of masks, no host synchronisation. Returns a dict with
    alpha_entry, alpha_group, level, kept_fraction as floats (``stats=False``: nothing is read back to the
    host and None is returned, the form the training step uses). ``hard_masks=True``: return instead the list of
    boolean hard masks at the new thresholds, one per item in order (views of one flat mask: what
    ``m.hard(w)`` gives, from the same flat scores the thresholds were selected from; one pass instead of ~26
    operators per tensor), or None when per-tensor masks are needed (mixed modes, frozen items).
    ``rate_t``: the rate as a 0-dim float64 tensor on the latents' device, used instead of ``rate`` in the
    arithmetic (same value, same numbers): the input a captured CUDA graph of the search reads
    (:mod:`.fused.cudagraph`).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f'pruning rate must be in [0, 1), got {rate!r}')
    live = [(m, w) for m, w in items if not _is_frozen(m)]
    if not live:
        return None if hard_masks or not stats else dict(alpha_entry=0.0, alpha_group=0.0, level=0.0,
                                                         kept_fraction=1.0)
    masks = [m for m, _ in live]
    latents = [w for _, w in live]
    for m, w in live:
        m.check_latent(w)
    dev = latents[0].device
    flat = flat_for(masks, dev)
    x, gstats, coarse = flat_scores(flat, masks, latents, reuse=rate_t is None)  # rate_t: the graphed search
    c64, total, sub_w, pool_w, w_entry = flat.cost_weights(masks)
    target = (1.0 - (rate if rate_t is None else rate_t)) * total

    alpha_e, alpha_g = _scale_references(flat, masks, x, gstats, coarse, target, sub_w, pool_w)  # 1.
    rho, group_decides = _deciding_ratios(flat, masks, x, coarse, alpha_e, alpha_g)  # 2.
    t_l, level = _levels(flat, rho, float(floor), target, w_entry)  # 3. and 4.

    # 5. write the thresholds (one operator per buffer list)
    te, tg = (t_l * alpha_e).float(), (t_l * alpha_g).float()
    torch._foreach_copy_([m.thr_entry for m in masks], list(te.unbind()))
    torch._foreach_copy_([m.thr_group for m in masks], list(tg.unbind()))
    if hard_masks and (len(live) != len(items) or len(flat.modes) != 1):
        return None  # frozen items keep their stored masks, mixed modes decide per tensor: the caller's job
    if not stats and not hard_masks:
        return None
    kept_mask = _kept_mask(flat, live, x, coarse, te, tg, group_decides)
    if hard_masks:
        return list(torch._C._nn.unflatten_dense_tensors(kept_mask, latents))  # views shaped as the latents
    kept = (w_entry * kept_mask).sum() / total
    return dict(alpha_entry=float(alpha_e), alpha_group=float(alpha_g), level=float(level),
                kept_fraction=float(kept))


def _scale_references(flat: FlatIndex, masks, x, gstats, coarse, target, sub_w, pool_w):
    """Step 1 of :func:`solve_thresholds`: (α_e, α_g), 0-dim float64, the global thresholds meeting ``target`` with
    entry masks alone (on the deterministic subsample) and with group masks alone (1 where no mask uses them)."""
    dev = x.device
    if any(m.uses_entries for m in masks):
        sub = x.index_select(0, flat.sub_idx)
        alpha_e = weighted_select(sub, target, sub_w).double().clamp_min(1e-8)
    else:
        alpha_e = torch.ones((), dtype=torch.float64, device=dev)
    if any(m.uses_groups for m in masks):
        vals = []
        if flat.pool_groups is not None:
            vals.append(gstats[0].index_select(0, flat.pool_groups))
        if flat.pool_entries is not None:
            vals.append(coarse.index_select(0, flat.pool_entries))
        pool = torch.cat(vals) if len(vals) > 1 else vals[0]
        alpha_g = weighted_select(pool, target, pool_w).double().clamp_min(1e-8)
    else:
        alpha_g = torch.ones((), dtype=torch.float64, device=dev)
    return alpha_e, alpha_g


def _deciding_ratios(flat: FlatIndex, masks, x, coarse, alpha_e, alpha_g):
    """Step 2 of :func:`solve_thresholds`: (ρ float32 (N,), the ratio score/α of whichever mask decides each entry
    (:meth:`~.modes.PruneMode.ratio`); for gated masks of one mode the hard gate per entry (True: the group mask
    decides), else None)."""
    group_decides = None
    if len(flat.modes) == 1:
        pm = masks[0].prune_mode
        e = x / alpha_e if pm.entries else None
        g = coarse / alpha_g if pm.groups else None
        if pm.gated:
            group_decides = _gate_hard(flat, masks, x.device).index_select(0, flat.slots[0]['gid'])
        rho = pm.ratio(g, e, group_decides)
    else:  # mixed modes (not produced by SemiPruner): per mask
        parts = []
        for m, xs, cs in zip(masks, x.split(flat.sizes), (coarse.split(flat.sizes) if coarse is not None
                                                            else [None] * flat.L)):
            pm, gd = m.prune_mode, m.group_decides()
            parts.append(pm.ratio(cs / alpha_g if pm.groups else None, xs / alpha_e if pm.entries else None,
                                  None if gd is None else gd.reshape(-1)))
        rho = torch.cat(parts)
    return rho.to(torch.float32), group_decides


def _levels(flat: FlatIndex, rho, floor: float, target, w_entry):
    """Steps 3 and 4 of :func:`solve_thresholds`: (t_ℓ float64 (L,), the global level t), with the layer floors."""
    # 3. layer floors: u_ℓ = the k_ℓ-th largest ρ of tensor ℓ; entries ≥ u_ℓ are kept at any level
    k, any_floor = flat.floor_counts(floor)
    if any_floor:
        u = kth_largest_per_segment(rho, flat.lid, flat.L, k.clamp_min(1), flat.plans)
        u = torch.where(k > 0, u, float('inf'))
        in_floor = rho >= u.index_select(0, flat.lid)
        rho_level = torch.where(in_floor, float('inf'), rho)
    else:
        u = None
        rho_level = rho

    # 4. global level
    level = weighted_select(rho_level, target, w_entry).double()
    if any_floor:  # floors alone above the target (rounding of ⌈floor·n⌉): prune everything else
        # (≡ where(isinf(ρ), 0, ρ).max(), NaN kept as NaN: one pass over the entries instead of two)
        finite = torch.nan_to_num(rho_level, nan=math.nan, posinf=0.0, neginf=0.0).max().double()
        level = torch.where(torch.isinf(level), finite, level)
    # the hard masks compare score > t·α, not score/α > t: step just past the boundary score so that
    # float rounding cannot keep the element the search has just excluded
    level = torch.where(level > 0, level * (1 + 1e-6) + 1e-12, level)
    t_l = level.expand(flat.L)
    if u is not None:
        u64 = u.double()
        t_l = torch.where(u64 <= level, (u64 * (1 - 1e-6) - 1e-12).clamp_min(0.0), t_l)
    return t_l, level


def _kept_mask(flat: FlatIndex, live, x, coarse, te, tg, group_decides):
    """The flat boolean hard masks (N,) at the written thresholds, exactly as the hard masks compare (score >
    stored float32 threshold, :meth:`~.modes.PruneMode.keep`); per tensor (:meth:`~.cascade.SemiMask.hard`) for
    mixed modes."""
    if len(flat.modes) != 1:
        return torch.cat([m.hard(w).reshape(-1) for m, w in live])
    pm = live[0][0].prune_mode
    keep_e = x > te.index_select(0, flat.lid) if pm.entries else None
    keep_g = coarse > tg.index_select(0, flat.lid) if pm.groups else None
    return pm.keep(keep_g, keep_e, group_decides)


def _is_frozen(m) -> bool:
    v = getattr(m, '_is_frozen', None)
    return bool(m.frozen) if v is None else v
