"""core/fused/segment.py: the atomic-free reductions the GPU uses (scan-based segment sums, sort-based weighted
selection) give the CPU reference's numbers, alone and inside the batched soft masks, the budget loss and the
threshold search; forced on here with ``segment.force(True)`` (CUDA picks them by itself)."""
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mmsemiprune.core.cascade import MODES
from mmsemiprune.core.fused import segment
from mmsemiprune.core.fused.segment import SegmentPlan, select_per_segment_sorted, select_sorted
from mmsemiprune.core.fused.select import kth_largest_per_segment, weighted_select


def test_atomic_free_by_device_and_force():
    assert segment.atomic_free('cuda') and not segment.atomic_free('cpu')
    with segment.force(True):
        assert segment.atomic_free('cpu')
        with segment.force(False):
            assert not segment.atomic_free('cuda')
        assert segment.atomic_free('cpu')
    assert not segment.atomic_free('cpu')


@pytest.mark.parametrize('sorted_ids', [True, False])
def test_segment_sum_and_gradient_equal_index_add(sorted_ids):
    g = torch.Generator().manual_seed(0)
    n, S = 5000, 40
    seg = torch.randint(0, S - 3, (n, ), generator=g)  # segments S-3.. S-1 stay empty
    if sorted_ids:
        seg = seg.sort().values
    plan = SegmentPlan(seg, S)
    assert (plan.layout.perm is None) == sorted_ids
    v = torch.randn(n, generator=g, dtype=torch.float32).requires_grad_()
    ref = torch.zeros(S).index_add_(0, seg, v)
    with segment.force(True):
        out = plan.sum(v)
    assert out.dtype == v.dtype and out.shape == (S, )
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5) and (out[-3:] == 0).all()
    up = torch.randn(S, generator=g)
    (ga, ) = torch.autograd.grad((out * up).sum(), v)
    assert torch.allclose(ga, up[seg])  # d/dv_i = up[seg_i]


def _ids(g, n, S, sorted_ids):
    seg = torch.randint(0, S - 3, (n, ), generator=g)  # segments S-3.. S-1 stay empty
    return seg.sort().values if sorted_ids else seg


def _ops(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('sorted_ids', [True, False])
def test_cpu_segment_sums_are_index_add_bit_for_bit(dtype, sorted_ids):
    """CPU: segment sums and the backward of expand by segment_reduce over the stably ordered entries give
    index_add_'s bits (each segment summed in index order), empty segments 0, and run no index_add_."""
    g = torch.Generator().manual_seed(1)
    n, S = 20000, 300
    seg = _ids(g, n, S, sorted_ids)
    v = (torch.randn(n, generator=g) * torch.exp(3 * torch.randn(n, generator=g))).to(dtype).requires_grad_()
    plans = {}
    out = segment.segment_sum(v, seg, S, plans, 'k')
    assert plans['k'].sequential(v) and (plans['k'].layout.perm is None) == sorted_ids
    assert torch.equal(out, torch.zeros(S, dtype=dtype).index_add_(0, seg, v.detach()))
    up = torch.randn(S, generator=g, dtype=dtype)
    (gv, ) = torch.autograd.grad((out * up).sum(), v)
    assert torch.equal(gv, up[seg])
    b = torch.randn(S, generator=g, dtype=dtype).requires_grad_()
    w = torch.randn(n, generator=g, dtype=dtype)
    (gb, ) = torch.autograd.grad((segment.expand(b, seg, plans, 'k') * w).sum(), b)
    (ref, ) = torch.autograd.grad((b.index_select(0, seg) * w).sum(), b)  # backward: index_add_
    assert torch.equal(gb, ref)
    ops = _ops(lambda: torch.autograd.grad((segment.expand(b, seg, plans, 'k') * w).sum()
                                           + segment.segment_sum(v, seg, S, plans, 'k').sum(), (b, v)))
    assert 'aten::index_add_' not in ops and 'aten::segment_reduce' in ops, ops


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('sorted_ids', [True, False])
def test_cpu_segment_amax_is_scatter_reduce_bit_for_bit(dtype, sorted_ids):
    """CPU: the per-row max of the masked biases (segment_amax) gives scatter_reduce_'s amax (include_self=False)
    values and gradient: ties share it evenly, an all-zero segment counts the initial 0 as a tie, an empty one is 0
    with no gradient; no scatter_reduce runs."""
    g = torch.Generator().manual_seed(2)
    n, S = 20000, 300
    seg = _ids(g, n, S, sorted_ids)
    v = torch.randint(0, 3, (n, ), generator=g).to(dtype) / 2  # many ties, at 1.0 as saturated masks have
    v[seg == 5] = 0  # an all-zero segment
    v[seg == 7] = torch.rand(int((seg == 7).sum()), generator=g, dtype=dtype)  # no tie
    v.requires_grad_()
    ref = torch.zeros(S, dtype=dtype).scatter_reduce_(0, seg, v, 'amax', include_self=False)
    out = segment.segment_amax(v, seg, S, {}, 'r')
    assert torch.equal(out, ref) and out[5] == 0 and (out[-3:] == 0).all()
    up = torch.randn(S, generator=g, dtype=dtype)
    (gr, ) = torch.autograd.grad((ref * up).sum(), v)
    (go, ) = torch.autograd.grad((out * up).sum(), v)
    assert torch.equal(go, gr)
    assert go[seg == 5].abs().sum() > 0 and 'aten::scatter_reduce_' not in _ops(
        lambda: torch.autograd.grad(segment.segment_amax(v, seg, S, {}, 'r').sum(), v))


def test_segment_sum_keeps_one_plan_per_static_index():
    seg = torch.tensor([2, 0, 1, 0, 2])
    plans = {}
    with segment.force(True):
        a = segment.segment_sum(torch.arange(5.), seg, 3, plans, 'k')
        p = plans['k']
        b = segment.segment_sum(torch.ones(5), seg, 3, plans, 'k')
    assert plans['k'] is p
    assert a.tolist() == [4.0, 2.0, 4.0] and b.tolist() == [2.0, 1.0, 2.0]
    assert segment.segment_sum(torch.ones(5), seg, 3, {}, 'k').tolist() == [2.0, 1.0, 2.0]  # CPU: segment_reduce


def test_expand_and_segment_sum_share_a_plan_of_enough_segments():
    """A gather's plan (built for its input's length) serves a later segment sum only with the number of segments
    the sum asks for; a sum's plan of more segments serves a gather (its backward drops the extra sums)."""
    seg = torch.tensor([0, 0, 1, 2, 2])
    plans = {}
    with segment.force(True):
        v = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        segment.expand(v, seg, plans, 'k').sum().backward()
        assert plans['k'].nseg == 3 and v.grad.tolist() == [2.0, 1.0, 2.0]
        s4 = segment.segment_sum(torch.ones(5), seg, 4, plans, 'k')  # one empty segment more
        assert s4.tolist() == [2.0, 1.0, 2.0, 0.0] and plans['k'].nseg == 4
        p = plans['k']
        v.grad = None
        segment.expand(v, seg, plans, 'k').sum().backward()
        assert plans['k'] is p and v.grad.tolist() == [2.0, 1.0, 2.0]


def _cases():
    g = torch.Generator().manual_seed(1)
    for case in range(60):
        n = int(torch.randint(1, 400, (1, ), generator=g))
        v = torch.rand(n, generator=g) * 3
        if case % 3 == 0:  # heavy ties
            v = (v * 4).floor() / 4
        if case % 5 == 0:
            v[: n // 3] = 0.0
        if case % 7 == 0:
            v[-1] = float('inf')
        w = torch.randint(0, 5, (n, ), generator=g).double() if case % 2 else torch.rand(n, generator=g).double()
        total = float(w.sum())
        for target in (0.0, total * 0.3, total * 0.77, total, total + 1.0, float(w.max()) if n else 0.0):
            yield v, target, w


def test_select_sorted_equals_the_radix_select():
    k = 0
    for v, target, w in _cases():
        a, b = select_sorted(v, target, w), weighted_select(v, target, w)
        assert a.dtype == torch.float32 and a.shape == ()
        assert torch.equal(a, b), (v, target, w, a, b)
        # and it is the definition: the smallest t >= 0 with sum w[v > t] <= target
        assert float(w[v > a].sum()) <= target + 1e-9
        k += 1
    assert k == 360
    empty = torch.zeros(0), torch.zeros(0, dtype=torch.float64)
    assert torch.equal(select_sorted(empty[0], 0.5, empty[1]), weighted_select(empty[0], 0.5, empty[1]))


def test_select_per_segment_sorted_equals_the_radix_select():
    g = torch.Generator().manual_seed(2)
    for case in range(20):
        S = int(torch.randint(1, 8, (1, ), generator=g))
        sizes = torch.randint(1, 60, (S, ), generator=g)
        seg = torch.repeat_interleave(torch.arange(S), sizes)
        v = torch.rand(seg.numel(), generator=g) * 2
        if case % 2:
            v = (v * 3).floor() / 3  # ties
        if case % 3 == 0:
            v[0] = float('inf')
        k = torch.floor(torch.rand(S, generator=g, dtype=torch.float64) * sizes.double()) + 1  # in [1, n_s]
        ref = kth_largest_per_segment(v, seg, S, k)
        out = select_per_segment_sorted(v, seg, S, k, {}, 'k')
        assert out.dtype == torch.float32 and torch.equal(out, ref), (case, out, ref)
        with segment.force(True):
            assert torch.equal(kth_largest_per_segment(v, seg, S, k), ref)


def _toy_step(toy, mode, force):
    net, pr = toy.make_pruner(mode, 'params', 0.8)
    toy.random_gates(pr, torch.Generator().manual_seed(3))
    x, y = toy.data(8)
    with segment.force(force):
        pr.set_progress(0.5)  # threshold search
        thr = [float(t) for m in pr.masks for t in (m.thr_entry, m.thr_group)]
        loss = F.cross_entropy(net(x), y) + pr.budget_loss()
        params = [w for _, _, w in pr.items()] + [m.gate.logit for m in pr.masks if m.gate.mode == 'learned']
        grads = torch.autograd.grad(loss, params)
    return thr, loss, grads


@pytest.mark.parametrize('mode', MODES)
def test_soft_step_on_the_atomic_free_path_equals_the_reference(toy, mode):
    """Same thresholds, loss and gradients to float rounding: the scan sums in float64, index_add_ in float32, so
    group scores differ in their last bits (a threshold by one ulp), which steep band-stops amplify to ~1e-4
    relative in a few gradient entries (the selection itself is exact on both paths: tests above)."""
    thr_a, loss_a, g_a = _toy_step(toy, mode, True)
    thr_r, loss_r, g_r = _toy_step(toy, mode, False)
    assert thr_a == pytest.approx(thr_r, rel=1e-6)  # the group scores they select from differ by rounding
    assert torch.allclose(loss_a, loss_r, rtol=1e-5, atol=1e-7)
    for a, r in zip(g_a, g_r):
        assert (a - r).norm() <= 1e-3 * r.norm() + 1e-9, ((a - r).norm(), r.norm())


@pytest.mark.parametrize('mode', MODES)
def test_atomic_free_soft_step_runs_no_index_add(toy, mode):
    """What the GPU runs for the masks, the search and the budget loss, forward and backward: no index_add_ and no
    bincount (the contended atomics this module removes: in the forward the segment sums and the radix histograms,
    in the backward autograd's index_select_backward of a group value expanded to its entries, 3 calls and ~0.75 ms
    per fp32 H200 step)."""
    net, pr = toy.make_pruner(mode, 'params', 0.8)
    toy.random_gates(pr, torch.Generator().manual_seed(3))
    x, y = toy.data(8)

    def names(force):
        with segment.force(force):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                pr.set_progress(0.5)
                loss = F.cross_entropy(net(x), y) + pr.budget_loss()
                loss.backward()
        return [e.name for e in prof.events()]

    atomics = ('aten::index_add_', 'aten::bincount', 'aten::index_select_backward')
    assert 'aten::bincount' in names(False)  # the CPU reference does use it (its histograms): the check can fail
    forced = names(True)
    assert not [n for n in forced if n in atomics]


def test_soft_projection_makes_no_tensor_from_host_data(toy):
    """A tensor made from host data (torch.tensor / as_tensor of Python values) is a host-to-device copy on CUDA,
    which synchronises the stream: the soft projection with a compute target made 88 per NTU ST-GCN step (94 extra
    CUDA syncs per H200 step). Its probes, consistency pass and MAC projection now make none."""
    net, pr = toy.make_pruner('semi', 'params', 0.8, target_macs=0.5)
    assert pr.soft_projection and pr.target_macs == 0.5
    x, _ = toy.data(8)
    pr.set_progress(0.3)
    net(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pr.set_progress(0.5)  # rate moved: a projection (probes, consistency, MAC projection)
    names = [e.name for e in prof.events()]
    assert names.count('aten::masked_fill') > 0  # the consistency pass ran: the check can fail
    assert 'aten::lift_fresh' not in names, names.count('aten::lift_fresh')


@pytest.mark.parametrize('mode', MODES)
def test_every_scan_of_the_gpu_path_is_one_dimensional(toy, mode):
    """CUDA scans a 1-D tensor device-wide; a 2-D cumsum runs one block per row (along the last dimension) or one
    thread per column (along the first). One (N, 2) scan of the two gate-price sums made the NTU soft step 470 ms
    (dim 0) or +8 ms (as (2, N) rows) on an H200 instead of ~41 ms. The CPU cannot time it: the shapes of every
    scan the GPU path runs (search, masks, budget loss, backward) are checked here instead."""
    from torch.utils._python_dispatch import TorchDispatchMode
    seen = []

    class Scans(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket is torch.ops.aten.cumsum:
                seen.append(tuple(args[0].shape))
            return func(*args, **(kwargs or {}))

    net, pr = toy.make_pruner(mode, 'params', 0.8)
    toy.random_gates(pr, torch.Generator().manual_seed(3))
    x, y = toy.data(8)
    with segment.force(True), Scans():
        pr.set_progress(0.5)
        loss = F.cross_entropy(net(x), y) + pr.budget_loss()
        loss.backward()
    assert len(seen) >= 3  # the check saw the scans
    assert all(len(s) == 1 for s in seen), seen
    seen.clear()
    with Scans():
        torch.randn(4, 9).cumsum(1)
    assert seen == [(4, 9)]  # and would see a 2-D one
