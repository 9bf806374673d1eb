"""Exact selections on the device: the weighted threshold and the per-segment k-th largest value the threshold search
(:func:`~mmsemiprune.core.budget.solve_thresholds`) places its bands with, with a fixed number of operators and no
host synchronisation.

On the CPU each is a two-pass radix select over the float32 bit patterns (two histograms by ``bincount``,
cumulative sums, no sort, no ``.item()``, no boolean indexing); where atomic adds are slow
(:func:`~.segment.atomic_free`, a GPU) one sort instead (:func:`~.segment.select_sorted`,
:func:`~.segment.select_per_segment_sorted`: the same values).
"""
import torch

from .segment import atomic_free, select_per_segment_sorted, select_sorted

__all__ = ['weighted_select', 'kth_largest_per_segment']

_HI, _LO = 1 << 15, 1 << 16  # non-negative float32: sign bit 0, 15 high bits + 16 low bits


def weighted_select(v: torch.Tensor, target, w: torch.Tensor) -> torch.Tensor:
    """Smallest t ≥ 0 with Σ_i w_i·[v_i > t] ≤ target, exactly: 0 or one of the values of ``v``.

    ``v``: float32 ≥ 0 (+inf allowed), ``w``: float64 weights ≥ 0, ``target``: float or 0-dim float64.
    Radix select over the bit patterns (monotone for non-negative floats): a weighted histogram of the
    high 15 bits finds the bucket where the cumulative weight (largest first) crosses the target, a
    second one of the low 16 bits inside that bucket finds the value. Returns a 0-dim float32 tensor.
    On a GPU (:func:`~.segment.atomic_free`) one sort instead (:func:`~.segment.select_sorted`, the same value):
    the histograms' atomic adds pile onto the few buckets where the values cluster."""
    if atomic_free(v.device):
        return select_sorted(v, target, w)
    bits = v.contiguous().view(torch.int32)
    hi, lo = bits >> 16, bits & (_LO - 1)
    # weighted histograms by bincount: the same float64 sums as index_add_ (each bucket adds its entries in index
    # order), without a zero-filled histogram to allocate and no (N,) float64 of masked weights for the second one
    h1 = torch.bincount(hi, w, minlength=_HI + 1)
    r1 = h1.flip(0).cumsum(0).flip(0)  # r1[h] = Σ w over high bits ≥ h (r1[_HI] = 0)
    # bucket ids counted in int32, hi's dtype (a mixed int32 == int64 compare runs a slower loop, and no casts:
    # index_select takes int32 indices; hs·2¹⁶ + lstar ≤ 2³¹ − 1)
    hstar = (r1 > target).sum(dtype=torch.int32) - 1  # the bucket of the crossing element; -1: everything fits
    hs = hstar.clamp_min(0).reshape(1)
    rest = target - r1.index_select(0, hs + 1)  # weight still allowed inside the bucket
    # entries outside the bucket go to one extra bin, dropped (adding their weight as 0.0 would give the same sums)
    h2 = torch.bincount(torch.where(hi == hs, lo, _LO), w, minlength=_LO + 1)[:_LO]
    r2 = h2.flip(0).cumsum(0).flip(0)
    lstar = ((r2 > rest).sum(dtype=torch.int32) - 1).clamp_min(0)
    val = (hs * _LO + lstar).view(torch.float32)
    return torch.where(hstar >= 0, val, 0.0).reshape(())


def kth_largest_per_segment(v: torch.Tensor, seg: torch.Tensor, nseg: int, k: torch.Tensor,
                        plans=None) -> torch.Tensor:
    """Per segment s, the k_s-th largest value of ``v[seg == s]`` (k_s ≥ 1, as float64 tensor (nseg,)),
    with the same two-pass radix select as :func:`weighted_select`, all segments at once. Returns float32 (nseg,).
    On a GPU one sort instead (:func:`~.segment.select_per_segment_sorted`; ``plans``: where its static plan of
    ``seg`` is kept)."""
    if atomic_free(v.device):
        return select_per_segment_sorted(v, seg, nseg, k, {} if plans is None else plans, 'select')
    bits = v.contiguous().view(torch.int32)
    hi, lo = bits >> 16, bits & (_LO - 1)
    base_hi, base_lo = _radix_bases(seg, nseg, plans)
    if base_hi.dtype != hi.dtype:
        hi, lo = hi.to(base_hi.dtype), lo.to(base_hi.dtype)
    # unweighted: integer counts by bincount (the float64 sums of ones index_add_ gave are these integers exactly;
    # NTU ST-GCN, 3.05 M entries, 22 tensors: ~48 -> ~30 ms per search on one thread, no (N,) float64 of ones)
    h1 = torch.bincount(base_hi + hi, minlength=nseg * (_HI + 1)).view(nseg, _HI + 1)
    r1 = h1.flip(1).cumsum(1).flip(1)
    limit = (k - 1).unsqueeze(1)
    hstar = ((r1 > limit).sum(1) - 1).clamp_min(0)
    rest = limit.squeeze(1) - r1.gather(1, (hstar + 1).unsqueeze(1)).squeeze(1)
    # compared in hi's dtype (int32 == int64 runs a slower mixed-type loop: 17 -> ~4 ms per 3 M entries); entries
    # outside their segment's bucket counted in one extra bin, dropped
    inb = hi == hstar.to(hi.dtype).index_select(0, seg)
    h2 = torch.bincount(torch.where(inb, base_lo + lo, nseg * _LO), minlength=nseg * _LO + 1)[:nseg * _LO]
    r2 = h2.view(nseg, _LO).flip(1).cumsum(1).flip(1)
    lstar = ((r2 > rest.unsqueeze(1)).sum(1) - 1).clamp_min(0)
    return (hstar * _LO + lstar).to(torch.int32).view(torch.float32)


def _radix_bases(seg: torch.Tensor, nseg: int, plans) -> tuple:
    """(seg·(2¹⁵ + 1), seg·2¹⁶): the histogram offsets of the static segment ids ``seg``, kept in ``plans`` (the
    integer multiplies over the 3 M entries cost ~12 ms each per search on one CPU thread); int32 while they fit,
    the dtype of the bit patterns they are added to (a mixed int64 + int32 add runs a slower loop)."""
    hit = plans.get('radix_bases') if plans is not None else None
    if hit is None or hit[0] is not seg or hit[3] != nseg:
        idx = seg.to(torch.int32) if nseg * _LO < 2 ** 31 else seg.to(torch.int64)
        hit = (seg, idx * (_HI + 1), idx * _LO, nseg)
        if plans is not None:
            plans['radix_bases'] = hit
    return hit[1], hit[2]
