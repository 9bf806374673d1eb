"""Cost model, budget regularizer and rate controller.

Cost: every entry of a prunable tensor ℓ costs ``c_ℓ``: 1 for ``cost='params'``; for ``cost='flops'``
the number of times it is applied per sample (the output positions T'·V of a conv, recorded by
:meth:`CostModel.profile`), i.e. its multiply-accumulates.

Budget regularizer (the sibling papers' λ(Σψ − c)², normalised so λ is scale-free):

    R = λ · ((Σ_ℓ c_ℓ Σ_i ψ_ℓ,i − (1 − r)·N) / N)²,   N = Σ_ℓ c_ℓ·numel_ℓ

Rate controller (our choice; the paper's threshold rule is not public): every step the band positions
a_e (entries) and a_g (groups) are placed so that the *hard* kept cost equals the scheduled target,
as MRMP's quantile map a(r) does for a prior. Measured on SBU: thresholds moved by the penalty's
gradient alone overshoot or freeze once τ is small; placing them by a monotone search on the hard
count cannot. The penalty R still acts on the latents and the gates (it polarises the soft mask
towards the hard one and prices the gate's choice).
"""
from typing import Dict, List, Sequence

import torch

__all__ = ['CostModel', 'BudgetRegularizer', 'solve_thresholds', 'COSTS']

COSTS = ('params', 'flops')


class CostModel:
    """Per-tensor entry costs. ``masks``: list of (name, SemiMask, latent getter)."""

    def __init__(self, cost: str = 'params'):
        if cost not in COSTS:
            raise ValueError(f'unknown cost {cost!r}; choose one of {COSTS} (cost="params" counts weights, '
                             'cost="flops" weights each entry by the output positions it is applied to)')
        self.cost = cost


class BudgetRegularizer:
    """R = λ((Σ c·ψ − (1 − r)N)/N)² over the cached soft masks of the last forward."""

    def __init__(self, weight: float = 5.0):
        if not weight >= 0:
            raise ValueError(f'budget weight must be >= 0, got {weight!r}')
        self.weight = float(weight)

    def kept_fraction(self, masks) -> torch.Tensor:
        kept, total = None, 0.0
        for m in masks:
            psi = m._last
            if psi is None:
                continue
            k = psi.sum() * m.cost
            kept = k if kept is None else kept + k
            total += float(m.cost) * psi.numel()
        if kept is None:
            return None
        return kept / total

    def __call__(self, masks, rate: float) -> torch.Tensor:
        frac = self.kept_fraction(masks)
        if frac is None:
            return torch.zeros(())
        return self.weight * (frac - (1.0 - rate)) ** 2


def _bisect(count_fn, target: float, lo: float, hi: float, iters: int = 40) -> float:
    """Smallest t in [lo, hi] (to precision) with count_fn(t) <= target; count_fn non-increasing."""
    if count_fn(lo) <= target:
        return lo
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if count_fn(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


@torch.no_grad()
def solve_thresholds(items: Sequence, rate: float, floor: float = 0.0) -> Dict[str, float]:
    """Place the band of every mask so that the hard kept cost is (1 − rate)·N.

    ``items``: list of (SemiMask, latent). Steps:
      1. α_e: global entry threshold meeting the target with entry masks alone;
         α_g: global group threshold meeting it with group masks alone (scale references);
      2. per entry the ratio ρ = score/α of whichever mask decides it (hard gate);
      3. t: global level with Σ c·#(ρ > t_ℓ) = target, t_ℓ = min(t, layer floor level);
      4. a_e,ℓ = t_ℓ·α_e, a_g,ℓ = t_ℓ·α_g written into each mask's buffers.
    ``floor``: every tensor keeps at least this fraction of its entries.
    Returns a dict with alpha_entry, alpha_group, level, kept_fraction.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f'pruning rate must be in [0, 1), got {rate!r}')
    data = []
    total = 0.0
    for m, latent in items:
        if bool(m.frozen):
            continue
        x, coarse = m.scores(latent)
        data.append((m, x.reshape(-1), None if coarse is None else coarse.reshape(-1), float(m.cost)))
        total += float(m.cost) * x.numel()
    if not data:
        return dict(alpha_entry=0.0, alpha_group=0.0, level=0.0, kept_fraction=1.0)
    target = (1.0 - rate) * total

    def ref(which):
        vals = [(d[1] if which == 'e' else d[2], d[3]) for d in data if (d[1] if which == 'e' else d[2]) is not None]
        if not vals:
            return 1.0
        hi = max(float(v.max()) for v, _ in vals) + 1e-6
        a = _bisect(lambda a: sum(c * float((v > a).sum()) for v, c in vals), target, 0.0, hi)
        return max(a, 1e-8)

    need_e = any(d[0].uses_entries for d in data)
    need_g = any(d[0].uses_groups for d in data)
    alpha_e = ref('e') if need_e else 1.0
    alpha_g = ref('g') if need_g else 1.0
    ratios = []
    for m, x, coarse, c in data:
        if m.mode == 'unstructured':
            rho = x / alpha_e
        elif m.mode == 'structured':
            rho = coarse / alpha_g
        elif m.mode == 'ctf':
            rho = torch.minimum(x / alpha_e, coarse / alpha_g)
        else:
            rho = torch.where(m.entry_decides().reshape(-1), x / alpha_e, coarse / alpha_g)
        keep_min = int(torch.ceil(torch.tensor(floor * rho.numel())).item()) if floor > 0 else 0
        if keep_min > 0:
            q = torch.topk(rho, min(keep_min, rho.numel())).values[-1].item()
            q = q * (1 - 1e-6)
        else:
            q = float('inf')
        ratios.append((rho, c, q))
    hi = max(float(r.max()) for r, _, _ in ratios) + 1e-6
    level = _bisect(lambda t: sum(c * float((r > min(t, q)).sum()) for r, c, q in ratios), target, 0.0, hi)
    # the hard masks compare score > t·α, not score/α > t: step just past the boundary score so that
    # float rounding cannot keep the element the search has just excluded
    level = level * (1 + 1e-6) + 1e-12 if level > 0 else level
    kept = 0.0
    for (m, _, _, _), (rho, c, q) in zip(data, ratios):
        t_l = min(level, q)
        m.thr_entry.fill_(t_l * alpha_e)
        m.thr_group.fill_(t_l * alpha_g)
        kept += c * float((rho > t_l).sum())
    return dict(alpha_entry=alpha_e, alpha_group=alpha_g, level=level, kept_fraction=kept / total)
