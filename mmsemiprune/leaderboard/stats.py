"""Statistics of the leaderboard, pure Python (no SciPy): Student-t quantiles, paired t-intervals,
domination between table rows and per-method Pareto fronts.

- :func:`t_quantile` ``t_{p, ν}``: inverse of the Student-t CDF
  ``F(t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½)`` (t ≥ 0; ``I`` the regularized incomplete beta function, by
  its continued fraction), inverted by bisection to 1e-12.
- :func:`paired_ci`: for pairs ``(a_i, b_i)``, ``d_i = a_i − b_i``, the mean ``d̄`` and the 95 % t-interval
  ``d̄ ± t_{0.975, n−1} · s_d / √n`` (``s_d`` the sample standard deviation of the ``d_i``).
- :func:`clustered_paired_ci`: the paired interval when pairs share a cluster (runs on the same test fold):
  the differences are averaged within each cluster, then the t-interval is taken over the ``k`` cluster
  means (df ``k − 1``); pairs without a cluster (a single split) are each their own cluster, which is the
  plain paired t-interval over seeds.
- :func:`t_test_p`: the two-sided p-value of a mean against a reference value, ``2 (1 − F_{n−1}(|t|))``.
- :func:`holm`: Holm–Bonferroni step-down adjusted p-values of a family of tests.
- :func:`dominators`: row B dominates row A on a cost axis when B belongs to another method, B's
  accuracy is at least A's (paired mean over their common (fold, seed) runs; plain means if they share
  none) and B's cost is no larger.
- :func:`pareto_front`: the points of one series not dominated by a cheaper-or-equal, at-least-as-
  accurate point of the same series, sorted by cost (drawn as a step line).
"""
import math
import statistics
from typing import Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

__all__ = ['t_cdf', 't_quantile', 'paired_ci', 'clustered_paired_ci', 't_test_p', 'holm', 'mean_ci', 'mean_std',
           'dominators', 'pareto_front']


def mean_std(xs: Iterable[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN for no values (None / NaN skipped)."""
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return float('nan'), float('nan')
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes §6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t CDF ``F(t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½)`` for t ≥ 0 (symmetric for t < 0)."""
    if df <= 0:
        raise ValueError(f'degrees of freedom must be > 0, got {df}')
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """``t_{p, df}``: the t with ``t_cdf(t, df) = p`` (bisection on the CDF), e.g. ``t_quantile(0.975, 4)``
    = 2.7764."""
    if not 0.0 < p < 1.0:
        raise ValueError(f'p must be in (0, 1), got {p}')
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_ci(xs: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """Mean of ``xs`` with its t-interval ``x̄ ± t_{(1+level)/2, n−1} · s / √n`` (NaN bounds for n < 2)."""
    xs = [float(x) for x in xs]
    n = len(xs)
    if n == 0:
        nan = float('nan')
        return dict(n=0, mean=nan, sd=nan, half=nan, lo=nan, hi=nan, t=nan)
    m = statistics.fmean(xs)
    if n < 2:
        nan = float('nan')
        return dict(n=1, mean=m, sd=nan, half=nan, lo=nan, hi=nan, t=nan)
    sd = statistics.stdev(xs)
    t = t_quantile(0.5 + level / 2.0, n - 1)
    half = t * sd / math.sqrt(n)
    return dict(n=n, mean=m, sd=sd, half=half, lo=m - half, hi=m + half, t=t)


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """Mean paired difference ``d̄ = mean(a_i − b_i)`` with its t-interval (see :func:`mean_ci`)."""
    if len(a) != len(b):
        raise ValueError(f'paired samples differ in length: {len(a)} vs {len(b)}')
    return mean_ci([float(x) - float(y) for x, y in zip(a, b)], level)


def clustered_paired_ci(a: Sequence[float], b: Sequence[float], clusters: Sequence[Optional[Hashable]],
                        level: float = 0.95) -> Dict[str, float]:
    """Paired difference of ``a`` and ``b`` when pairs share clusters (e.g. SBU: runs of several seeds on
    the same test fold). ``d_i = a_i − b_i``; the ``d_i`` of one cluster are averaged, ``D_j = mean_{i ∈ j}
    d_i``, and the interval is the t-interval over the ``k`` cluster means,
    ``D̄ ± t_{(1+level)/2, k−1} · s_D / √k`` (df = clusters − 1). A pair whose cluster is None has a cluster
    of its own, so a single split (every cluster None) gives the plain paired t-interval over seeds
    (:func:`paired_ci`). Returns :func:`mean_ci`'s dict over the cluster means (``n`` = clusters,
    ``mean`` = mean of the cluster means, ``sd`` = their standard deviation) plus ``pairs`` and ``clusters``;
    fewer than two clusters: NaN bounds."""
    if not len(a) == len(b) == len(clusters):
        raise ValueError(f'paired samples and clusters differ in length: {len(a)}, {len(b)}, {len(clusters)}')
    groups: Dict[Hashable, List[float]] = {}
    for i, (x, y, c) in enumerate(zip(a, b, clusters)):
        groups.setdefault(('pair', i) if c is None else ('cluster', c), []).append(float(x) - float(y))
    out = mean_ci([statistics.fmean(ds) for ds in groups.values()], level)
    out.update(pairs=len(a), clusters=len(groups))
    return out


def t_test_p(ci: Dict[str, float], ref: float = 0.0) -> float:
    """Two-sided p-value of the t-test of ``ci['mean']`` against ``ref``, for an interval dict of
    :func:`mean_ci` / :func:`clustered_paired_ci`: ``t = (mean − ref) / (sd / √n)``,
    ``p = 2 (1 − F_{n−1}(|t|))``. NaN for n < 2; a zero sd gives p = 0 (mean ≠ ref) or 1 (mean = ref)."""
    n, m, sd = ci['n'], ci['mean'], ci['sd']
    if n < 2 or math.isnan(sd):
        return float('nan')
    if sd == 0:
        return 1.0 if m == ref else 0.0
    t = (m - ref) / (sd / math.sqrt(n))
    return min(1.0, 2.0 * (1.0 - t_cdf(abs(t), n - 1)))


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given: with the ``m`` p-values sorted
    ascending ``p_(1) ≤ … ≤ p_(m)``, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``; a test is rejected
    at level α when ``p̃ < α`` (the family-wise error rate stays ≤ α). NaN p-values (no interval) stay NaN
    and do not count in ``m``."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out = [float('nan')] * len(pvalues)
    m, running = len(idx), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def dominators(items: Sequence[Dict], cost: str, acc: str = 'acc', eps: float = 1e-9) -> Dict[Hashable, List]:
    """For every item, the ids of the items of *other* methods that are at least as accurate and no more
    costly. An item is ``dict(id=..., method=..., <cost>=float, <acc>={pair_key: accuracy})``; accuracy
    is compared as the mean over the pair keys both items have (paired), or over all their keys when they
    share none. Items with a NaN cost neither dominate nor are dominated on that axis."""
    out: Dict[Hashable, List] = {}
    for a in items:
        doms = []
        ca = a.get(cost)
        if ca is None or (isinstance(ca, float) and math.isnan(ca)):
            out[a['id']] = doms
            continue
        for b in items:
            if b is a or b['method'] == a['method']:
                continue
            cb = b.get(cost)
            if cb is None or (isinstance(cb, float) and math.isnan(cb)) or cb > ca + eps * max(1.0, abs(ca)):
                continue
            common = set(a[acc]) & set(b[acc])
            ka, kb = (common, common) if common else (set(a[acc]), set(b[acc]))
            if not ka or not kb:
                continue
            ma = statistics.fmean(a[acc][k] for k in ka)
            mb = statistics.fmean(b[acc][k] for k in kb)
            if mb >= ma - eps:
                doms.append(b['id'])
        out[a['id']] = doms
    return out


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[Tuple[float, float]]:
    """Non-dominated ``(cost, accuracy)`` points of one series, cost ascending (accuracy then strictly
    increasing): a point stays when no other point has cost ≤ and accuracy ≥ with one of them strict."""
    pts = sorted((float(c), float(a)) for c, a in points if not (math.isnan(c) or math.isnan(a)))
    front: List[Tuple[float, float]] = []
    best = -math.inf
    # at equal cost keep only the most accurate: sort by cost asc, accuracy desc
    for c, a in sorted(pts, key=lambda p: (p[0], -p[1])):
        if a > best:
            front.append((c, a))
            best = a
    return front


def optional_float(v) -> Optional[float]:
    """``v`` as float, None for None / '' / NaN."""
    if v is None or v == '':
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f
