"""Segment sums and weighted selection without contended atomics (issue "pruning at GPU speed").

The batched masks (:mod:`.batch`) and the threshold search (:mod:`~mmsemiprune.core.budget`) reduce (N,) vectors over
static segments: groups (output / input channel, node, tap), tensors, histogram buckets. ``index_add_`` does this with
one atomic add per entry; on a GPU thousands of entries of one group hit the same address and serialise (measured on
an H200, NTU ST-GCN, 3.1 M prunable entries: 0.55-0.74 ms per call, ~12 ms of a 47 ms soft step). On a GPU this
module reduces instead with gathers and one scan:

    s = seg sorted (once: a stable permutation P of the entries; none when seg is already sorted, e.g. output
        channels, tensors)
    c = cumsum(float64(v[P])),  c₀ = 0                       (N + 1,)
    sum_s = c[end_s] − c[start_s]                             (S,)   start / end of segment s in the sorted order

with the adjoint pair written out as autograd functions: the backward of a segment sum is the gather
``grad[seg]`` (one operator, where autograd would differentiate the scan: a reversed scan, a pad and two
index_add_ over N + 1 slots), and :func:`expand` (``v[seg]``, a group value to its entries) has the segment-sum scan
as its backward instead of ``index_add_`` (the atomics the H200 profile showed there: 3 calls, ~0.75 ms per fp32
step). :func:`select_sorted` finds the weighted threshold by one sort instead of two radix histograms.

On the CPU the reference semantics stay, bit for bit the numbers every earlier CPU run produced: the radix select
of :mod:`~mmsemiprune.core.budget`, and segment sums that add each segment's entries one after the other in index order,
as ``index_add_`` does, but by ``torch.segment_reduce`` over the stably ordered entries (float32 / float64; ~2x faster
on one thread: an ``index_add_`` into few segments is a chain of dependent adds); the per-row max of the masked
biases likewise, with ``scatter_reduce_``'s amax gradient written out (:class:`_SegmentMax`; ~4x faster than
``scatter_reduce_`` and its backward). NTU ST-GCN, 1 thread, batch 4 x 100 frames: soft step 1.23x -> 1.16x stock
at update_every 1, 1.15x -> 1.10x at 16 (interleaved in one process). ``atomic_free(device)`` decides;
:func:`force` switches it for tests, which compare both paths on the CPU. Float64 prefix sums make the two agree
to float32 rounding (the order of additions differs; so does CUDA's ``index_add_`` from run to run).
"""
import functools
from contextlib import contextmanager
from typing import NamedTuple, Optional, Tuple

import torch

__all__ = ['SegmentPlan', 'atomic_free', 'expand', 'force', 'segment_amax', 'segment_sum', 'select_sorted',
           'select_per_segment_sorted']

_FORCE: Optional[bool] = None


def atomic_free(device) -> bool:
    """Whether reductions on ``device`` use the scan path (CUDA, or :func:`force`)."""
    if _FORCE is not None:
        return _FORCE
    return torch.device(device).type == 'cuda'


@contextmanager
def force(on: Optional[bool]):
    """Within the block, use the scan path everywhere (True), the ``index_add_`` path everywhere (False) or
    decide by device (None)."""
    global _FORCE
    old, _FORCE = _FORCE, on
    try:
        yield
    finally:
        _FORCE = old


class _Layout(NamedTuple):
    """Where each segment lies once the entries are in segment order."""
    perm: Optional[torch.Tensor]  # (N,) stable order of the entries by segment id; None when ``seg`` is sorted
    edges: torch.Tensor  # (S + 1,) first ordered position of each segment id (offsets for segment_reduce)
    start: torch.Tensor  # (S,) edges[:-1]
    end: torch.Tensor  # (S,) edges[1:]
    bounds: torch.Tensor  # (2S,) end then start: one gather reads both ends of every segment


def _sequential(v: torch.Tensor) -> bool:
    """CPU, float32 / float64: where ``segment_reduce`` adds each segment's entries one after the other in index
    order, as ``index_add_`` does: the same sums bit for bit, ~2x faster on one thread (NTU ST-GCN, 3.05 M
    entries: 10.1 -> 5.1 ms with the permutation, 10.9 -> 4.5 ms sorted)."""
    return v.dtype in _SEQUENTIAL and v.device.type == 'cpu'


class SegmentPlan:
    """Static plan to sum (N,) vectors over the S segments of ``seg`` ((N,) int64 ids in [0, S)).

    Built once per index (one host read: whether ``seg`` is sorted); :meth:`sum` then runs without host sync. The
    scan's order (a stable sort of ``seg`` unless sorted) and segment edges (:attr:`layout`) are built at their
    first use."""

    def __init__(self, seg: torch.Tensor, nseg: int):
        self.seg, self.nseg = seg, int(nseg)
        n = seg.numel()
        self.sorted = n < 2 or bool((seg[1:] >= seg[:-1]).all())
        self._empty = None  # whether a segment is empty (amax on the CPU)

    @functools.cached_property
    def layout(self) -> _Layout:
        if self.sorted:
            perm, ordered = None, self.seg
        else:
            ordered, perm = torch.sort(self.seg, stable=True)
        ids = torch.arange(self.nseg + 1, device=self.seg.device, dtype=ordered.dtype)
        edges = torch.searchsorted(ordered, ids)
        start, end = edges[:-1].contiguous(), edges[1:].contiguous()
        return _Layout(perm, edges, start, end, torch.cat([end, start]))

    def sequential(self, v: torch.Tensor) -> bool:
        """CPU: whether :meth:`sum` runs ``segment_reduce`` over ``v`` in segment order (:func:`_sequential`)."""
        return _sequential(v)

    def sum(self, v: torch.Tensor) -> torch.Tensor:
        """(S,) Σ v ((N,)) over each segment, in v's dtype (differentiable in v: backward ``grad[seg]``)."""
        if v.requires_grad and torch.is_grad_enabled() and (atomic_free(v.device) or _sequential(v)):
            return _SegmentSum.apply(v, self)
        return self._reduce(v)  # (index_add_'s own backward is the same gather)

    def _ordered(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``v`` in segment order (stable: index order within a segment) and the (S + 1,) segment offsets."""
        perm, edges = self.layout.perm, self.layout.edges
        return (v if perm is None else v.index_select(0, perm)), edges

    def _reduce(self, v: torch.Tensor) -> torch.Tensor:
        """(S,) segment sums without autograd: the scan (atomic-free path), ``segment_reduce`` (CPU) or
        ``index_add_``."""
        if atomic_free(v.device):
            return self._scan(v)
        if _sequential(v):
            x, offsets = self._ordered(v)
            return torch.segment_reduce(x, 'sum', offsets=offsets, unsafe=True)
        return torch.zeros(self.nseg, dtype=v.dtype, device=v.device).index_add_(0, self.seg, v)

    def amax(self, v: torch.Tensor) -> torch.Tensor:
        """(S,) max of v ((N,)) per segment, 0 for an empty one, with the values and gradient of
        ``zeros(S).scatter_reduce_(0, seg, v, 'amax', include_self=False)`` (ties share the gradient evenly; a
        maximum of 0 counts the initial 0 as one more tie, as torch's backward does). ``segment_reduce`` on the
        CPU (float32 / float64: NTU ST-GCN rows, forward and backward ~4x faster than scatter_reduce's), else
        ``scatter_reduce_``."""
        if atomic_free(v.device) or not _sequential(v):
            return _scatter_amax(v, self.seg, self.nseg)
        if v.requires_grad and torch.is_grad_enabled():
            return _SegmentMax.apply(v, self)
        return self._max(v)

    def _max(self, v: torch.Tensor) -> torch.Tensor:
        x, offsets = self._ordered(v)
        out = torch.segment_reduce(x, 'max', offsets=offsets, unsafe=True)
        if self._empty is None:
            self._empty = bool((offsets[1:] == offsets[:-1]).any())  # once per plan (host read; CPU only)
        return torch.where(offsets[1:] > offsets[:-1], out, 0.0) if self._empty else out

    def _scan(self, v: torch.Tensor) -> torch.Tensor:
        # 1-D scans only: CUDA runs those device-wide (CUB); a 2-D cumsum runs one block per row along the last
        # dimension and one thread per column along the first. Measured on an H200, one (N, 2) scan for the two
        # gate-price sums made the NTU soft step 470 ms (along dim 0) or +8 ms (as (2, N) rows) instead of two 1-D
        # scans (tests/core/fused/test_segment.py checks that every scan of the GPU path is 1-D).
        x, _ = self._ordered(v)
        c = torch.nn.functional.pad(torch.cumsum(x, 0, dtype=torch.float64), (1, 0))
        ends = c.index_select(0, self.layout.bounds)
        return (ends[:self.nseg] - ends[self.nseg:]).to(v.dtype)


_SEQUENTIAL = (torch.float32, torch.float64)


class _SegmentSum(torch.autograd.Function):
    """(S,) = Σ v over segments (scan or segment_reduce); backward: grad[seg] (a gather: no atomics, one operator,
    what autograd gives ``index_add_``)."""

    @staticmethod
    def forward(ctx, v, plan):
        ctx.plan = plan
        return plan._reduce(v)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return grad.index_select(0, ctx.plan.seg), None


class _SegmentMax(torch.autograd.Function):
    """(S,) = max of v per segment (CPU, ``segment_reduce``); backward as ``scatter_reduce``'s amax with
    ``include_self=False``: grad_i = [v_i = m_s]·grad_s / (#{j ∈ s: v_j = m_s} + [m_s = 0]) for i in segment s."""

    @staticmethod
    def forward(ctx, v, plan):
        out = plan._max(v)
        ctx.plan = plan
        ctx.save_for_backward(v, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        v, out = ctx.saved_tensors
        seg = ctx.plan.seg
        tie = (v == out.index_select(0, seg)).to(v.dtype)
        n = (out == 0).to(v.dtype) + ctx.plan._reduce(tie)
        return tie * (grad / n).index_select(0, seg), None


def segment_amax(v: torch.Tensor, seg: torch.Tensor, nseg: int, plans: dict, key) -> torch.Tensor:
    """(nseg,) max of v ((N,)) over the segments ``seg`` (0 for an empty one) by the :class:`SegmentPlan`
    ``plans[key]``: what ``zeros(nseg).scatter_reduce_(0, seg, v, 'amax', include_self=False)`` gives, values and
    gradient (see :meth:`SegmentPlan.amax`). No plan off the CPU or on the forced GPU path (``scatter_reduce_``)."""
    if atomic_free(v.device) or not _sequential(v):  # no plan needed (its sortedness check reads the host)
        return _scatter_amax(v, seg, nseg)
    return _plan(plans, key, seg, nseg).amax(v)


def _scatter_amax(v: torch.Tensor, seg: torch.Tensor, nseg: int) -> torch.Tensor:
    """The reference: ``zeros(nseg).scatter_reduce_(0, seg, v, 'amax', include_self=False)``."""
    return torch.zeros(nseg, dtype=v.dtype, device=v.device).scatter_reduce_(0, seg, v, 'amax', include_self=False)


class _Expand(torch.autograd.Function):
    """(N,) = v[seg] (a per-segment value on every entry); backward: the segment sum of grad (the scan on the GPU,
    no atomics; ``segment_reduce`` on the CPU)."""

    @staticmethod
    def forward(ctx, v, plan):
        ctx.plan, ctx.n = plan, v.shape[0]
        return v.index_select(0, plan.seg)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        g = ctx.plan._reduce(grad)
        return (g if g.shape[0] == ctx.n else g[:ctx.n]), None


def expand(v: torch.Tensor, seg: torch.Tensor, plans: dict, key) -> torch.Tensor:
    """(N,) ``v[seg]`` for static segment ids ``seg`` ((N,), values in [0, len(v))): the gather whose backward is
    the segment sum of a :class:`SegmentPlan` kept in ``plans[key]``: the scan where :func:`atomic_free` says so
    (no atomics), ``segment_reduce`` on the CPU (float32 / float64); else ``index_select`` (backward ``index_add_``)."""
    if not (v.requires_grad and torch.is_grad_enabled() and (atomic_free(v.device) or _sequential(v))):
        return v.index_select(0, seg)
    return _Expand.apply(v, _plan(plans, key, seg, v.shape[0], at_least=True))


def segment_sum(v: torch.Tensor, seg: torch.Tensor, nseg: int, plans: dict, key) -> torch.Tensor:
    """(nseg,) Σ v ((N,)) over the segments ``seg`` by a :class:`SegmentPlan` kept in ``plans[key]`` (built at the
    first call: ``seg`` must be static): a scan where :func:`atomic_free` says so, else ``segment_reduce`` (sorted
    ids, CPU) or ``index_add_``."""
    return _plan(plans, key, seg, nseg).sum(v)


def _plan(plans: dict, key, seg: torch.Tensor, nseg: int, at_least: bool = False) -> SegmentPlan:
    """``plans[key]``, (re)built when missing, made for another ``seg`` or for another number of segments
    (``at_least``: any number ≥ ``nseg`` serves, as for :func:`expand`, whose backward drops the extra sums)."""
    p = plans.get(key)
    if p is None or p.seg is not seg or (p.nseg < nseg if at_least else p.nseg != nseg):
        p = plans[key] = SegmentPlan(seg, nseg)
    return p


def select_sorted(v: torch.Tensor, target, w: torch.Tensor) -> torch.Tensor:
    """Smallest t ≥ 0 with Σ_i w_i·[v_i > t] ≤ target (what :func:`~.select.weighted_select` returns), by one sort.

    With v ascending and g_j = Σ_{i > j} w_i, the answer is v at the first j with g_j ≤ target (the first such j
    ends a run of ties or its value is feasible through the ties after it), or 0 when Σ w ≤ target.
    ``v`` float32 ≥ 0 (+inf allowed), ``w`` float64 ≥ 0; 0-dim float32 result."""
    if v.numel() == 0:  # nothing to keep or prune (the radix select's answer too)
        return torch.zeros((), dtype=torch.float32, device=v.device)
    vs, order = torch.sort(v.reshape(-1))
    ws = w.reshape(-1).index_select(0, order)
    g = ws.flip(0).cumsum(0).flip(0)  # g_j + w_j: Σ_{i ≥ j}
    after = torch.nn.functional.pad(g[1:], (0, 1))  # Σ_{i > j}
    j = (after > target).sum().clamp_max(vs.numel() - 1)
    return torch.where(g[0] > target, vs.index_select(0, j.reshape(1)).reshape(()), 0.0)


def select_per_segment_sorted(v: torch.Tensor, seg: torch.Tensor, nseg: int, k: torch.Tensor, plans: dict,
                              key) -> torch.Tensor:
    """Per segment s the k_s-th largest of ``v[seg == s]`` (what :func:`~.select.kth_largest_per_segment` returns), by
    one sort of the int64 keys (s << 32 | bits(v)): non-negative float32 bit patterns order as the values.
    ``v`` float32 ≥ 0 (+inf allowed) (N,), ``seg`` static ids (N,), ``k`` (nseg,) float64 in [1, n_s]; float32 (nseg,).
    """
    p = _plan(plans, key, seg, nseg)
    bits = v.contiguous().view(torch.int32).to(torch.int64)
    ks = torch.sort((seg.to(torch.int64) << 32) | bits).values
    vals = (ks & 0xFFFFFFFF).to(torch.int32).view(torch.float32)  # ascending within each segment
    end, start = p.layout.end, p.layout.start
    idx = (end - k.to(torch.int64)).clamp(0, max(v.numel() - 1, 0))
    return torch.where(end > start, vals.index_select(0, idx), 0.0)
