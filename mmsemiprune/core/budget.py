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
"""
from typing import Dict, Sequence

import torch

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


class _Pool:
    """A weighted multiset of scores: entry scores (each of weight c) and group scores (weight c·n_g).
    ``gt(t)`` is the weighted count of scores > t (one vectorised comparison per part)."""

    def __init__(self, c: float, entries=None, groups=None, sizes=None):
        self.c = c
        self.e = entries.reshape(-1) if entries is not None and entries.numel() else None
        self.g = groups if groups is not None and groups.numel() else None
        self.w = sizes.to(torch.float64) if self.g is not None else None

    def gt(self, t: float) -> float:
        n = 0.0
        if self.e is not None:
            n += float((self.e > t).sum())
        if self.g is not None:
            n += float(self.w[self.g > t].sum())
        return self.c * n

    def numel(self) -> float:
        n = 0.0 if self.e is None else self.e.numel()
        return n + (0.0 if self.g is None else float(self.w.sum()))

    def max(self) -> float:
        vals = [float(v.max()) for v in (self.e, self.g) if v is not None]
        return max(vals) if vals else 0.0


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


def _subsample(v: torch.Tensor, k: int = 65536):
    """Deterministic strided subsample (for scale references only) and its weight factor."""
    v = v.reshape(-1)
    if v.numel() <= k:
        return v, 1.0
    step = v.numel() // k
    sub = v[::step]
    return sub, v.numel() / sub.numel()


@torch.no_grad()
def solve_thresholds(items: Sequence, rate: float, floor: float = 0.0) -> Dict[str, float]:
    """Place the band of every mask so that the hard kept cost is (1 − rate)·N.

    ``items``: list of (SemiMask, latent). Steps:
      1. α_e: global entry threshold meeting the target with entry masks alone (on a deterministic
         subsample: it is only a scale reference); α_g: the same for group masks alone;
      2. per entry the ratio ρ = score/α of whichever mask decides it (hard gate);
      3. t: global level with Σ c·#(ρ > t) = target (exact, bisection);
      4. layers that would keep less than ``floor`` of their entries get their own lower level;
      5. a_e,ℓ = t_ℓ·α_e, a_g,ℓ = t_ℓ·α_g are written into each mask's buffers.
    Returns a dict with alpha_entry, alpha_group, level, kept_fraction.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f'pruning rate must be in [0, 1), got {rate!r}')
    data = []
    total = 0.0
    for m, latent in items:
        if bool(m.frozen):
            continue
        x, s_g, n_g = m.group_scores(latent)
        data.append((m, x, s_g, n_g, float(m.cost)))
        total += float(m.cost) * x.numel()
    if not data:
        return dict(alpha_entry=0.0, alpha_group=0.0, level=0.0, kept_fraction=1.0)
    target = (1.0 - rate) * total

    def ref(pools):
        hi = max(p.max() for p in pools) + 1e-6
        return max(_bisect(lambda a: sum(p.gt(a) for p in pools), target, 0.0, hi), 1e-8)

    if any(d[0].uses_entries for d in data):
        pools = []
        for m, x, _, _, c in data:
            sub, f = _subsample(x)
            pools.append(_Pool(c * f, entries=sub))
        alpha_e = ref(pools)
    else:
        alpha_e = 1.0
    if any(d[0].uses_groups for d in data):
        alpha_g = ref([_Pool(c, groups=s_g, sizes=n_g) for m, x, s_g, n_g, c in data if s_g is not None])
    else:
        alpha_g = 1.0
    pools = []
    for m, x, s_g, n_g, c in data:
        if m.mode == 'unstructured':
            pool = _Pool(c, entries=x / alpha_e)
        elif m.mode == 'structured':
            pool = _Pool(c, groups=s_g / alpha_g, sizes=n_g)
        elif m.mode == 'ctf':
            coarse = s_g[m.gid0.reshape(-1)] if m.per_group_scores else s_g
            pool = _Pool(c, entries=torch.minimum(x.reshape(-1) / alpha_e, coarse / alpha_g))
        else:
            ent = m.entry_decides().reshape(-1)
            if m.per_group_scores:
                grp = m.gate.hard()
                pool = _Pool(c, entries=x.reshape(-1)[ent] / alpha_e, groups=s_g[grp] / alpha_g, sizes=n_g[grp])
            else:
                pool = _Pool(c, entries=x.reshape(-1)[ent] / alpha_e, groups=s_g[~ent] / alpha_g,
                             sizes=n_g[~ent])
        pools.append(pool)
    hi = max(p.max() for p in pools) + 1e-6
    level = _bisect(lambda t: sum(p.gt(t) for p in pools), target, 0.0, hi, iters=50)
    # the hard masks compare score > t·α, not score/α > t: step just past the boundary score so that
    # float rounding cannot keep the element the search has just excluded
    level = level * (1 + 1e-6) + 1e-12 if level > 0 else level
    kept = 0.0
    for (m, x, _, _, c), p in zip(data, pools):
        t_l = level
        need = floor * x.numel() * c
        if floor > 0 and p.gt(t_l) < need:  # layer floor: the largest level ≤ t at which it keeps enough
            lo, hi_l = 0.0, level
            for _ in range(40):
                mid = 0.5 * (lo + hi_l)
                lo, hi_l = (mid, hi_l) if p.gt(mid) >= need else (lo, mid)
            t_l = max(0.0, lo * (1 - 1e-6) - 1e-12)
        m.thr_entry.fill_(t_l * alpha_e)
        m.thr_group.fill_(t_l * alpha_g)
        kept += p.gt(t_l)
    return dict(alpha_entry=alpha_e, alpha_group=alpha_g, level=level, kept_fraction=kept / total)
