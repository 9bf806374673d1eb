"""core/compute.py: MACs after physical removal and the compute projection, on the device with O(1) host reads.

The references here are the plain definitions, written as loops on the host: MACs(M) from the per-entry
export map (:func:`removed_entries`), and the greedy projection as a Python loop over sorted candidates (what
the module ran before it was vectorised). The vectorised versions must give the same numbers and the same masks.
"""
import math

import pytest
import torch

from mmsemiprune.core.compute import (Allocation, channel_freed_macs, dense_macs, entry_macs, masked_macs,
                                      masked_macs_tensor, min_channels, project_macs, removed_entries)
from mmsemiprune.core.topology import aggregation_macs, alive, channel_view, make_consistent, zero_channels
from test_step_cost import _model, count_step


def _ref_masked_macs(items, masks, sets):
    removed, _ = removed_entries(masks, sets)
    macs = {k: float(m.macs) for k, m, _ in items}
    total = sum(macs[k] * float((~removed[k]).sum()) for k, _, _ in items)
    for cs in sets:
        a = aggregation_macs(cs, macs)
        if a > 0:
            cons = alive(masks, cs)[1] if not cs.fixed_consumer else torch.ones(cs.size, dtype=torch.bool)
            total += a * float(cons.sum())
    return total


def _ref_priority(order, s, f, live, c):
    """Priority of channel c as the Allocation docstring defines it, one channel at a time."""
    if order == 'per_mac':
        return float(s[c]) / f
    if order == 'score':
        return float(s[c])
    ranked = sorted((float(s[j]), j) for j in range(len(s)) if live[j])  # by score, ties by channel
    rank = [j for _, j in ranked].index(c)
    return (int((~live).sum()) + rank + 1) / len(s)


def _ref_project(items, masks, sets, target, scores=None, order='per_mac', channel_floor=0.0):
    """The greedy of project_macs as a host loop: weakest score per freed MAC first (or ``order``), a set keeps
    min_channels (or ``ceil(channel_floor · size)`` when more)."""
    macs = {k: float(m.macs) for k, m, _ in items}
    shapes = {k: tuple(w.shape) for k, _, w in items}
    budget = target * dense_macs(items, sets)
    removed = 0
    for _ in range(10):
        now = _ref_masked_macs(items, masks, sets)
        if now <= budget:
            break
        cands, room = [], {}
        for i, cs in enumerate(sets):
            if cs.fixed_consumer or cs.fixed_producer:
                continue
            prod, cons = alive(masks, cs)
            live = prod & cons
            room[i] = int(live.sum()) - max(min_channels(cs.size), math.ceil(channel_floor * cs.size - 1e-9))
            f = channel_freed_macs(cs, macs, shapes)
            if room[i] <= 0 or f <= 0:
                continue
            s = None
            for sl in cs.producers:
                if scores is not None and sl.key() in scores and scores[sl.key()].numel() == cs.size:
                    v = scores[sl.key()].double()
                    s = v if s is None else torch.maximum(s, v)
            if s is None:
                s = sum(channel_view(masks[sl.key()], sl, cs.size).float().mean(dim=(0, 2)).double()
                        for sl in cs.producers if sl.key() in masks)
            cands += [(_ref_priority(order, s, f, live, c), i, c, f) for c in range(cs.size) if live[c]]
        est, dead = now, {}
        for _, i, c, f in sorted(cands):
            if est <= budget:
                break
            if room[i] > 0:
                room[i] -= 1
                dead.setdefault(i, []).append(c)
                est -= f
                removed += 1
        if not dead:
            break
        for i, chans in dead.items():
            d = torch.zeros(sets[i].size, dtype=torch.bool)
            d[chans] = True
            for sl in sets[i].producers + sets[i].consumers:
                if sl.key() in masks:
                    masks[sl.key()] = zero_channels(masks[sl.key()], sl, sets[i].size, d)
    return removed


def _profiled_model(stages, seed=0):
    """A small MMAction2 ST-GCN under semi pruning with profiled MACs and random hard masks (with whole dead
    channels, as the hard phase makes them)."""
    model = _model(stages, True)
    pr = model.pruner
    pr.profile(lambda: model.extract_feat(torch.randn(1, 1, 2, 16, 25, 3)))
    g = torch.Generator().manual_seed(seed)
    items = pr.items()
    masks = {}
    for k, _, w in items:
        keep = torch.rand(w.shape, generator=g) > 0.5
        if w.dim() >= 2:  # some dead rows and columns
            keep &= (torch.rand(w.shape[0], generator=g) > 0.2).view(-1, *([1] * (w.dim() - 1)))
            keep &= (torch.rand(w.shape[1], generator=g) > 0.2).view(1, -1, *([1] * (w.dim() - 2)))
        masks[k] = keep
    make_consistent(masks, pr.channel_sets)
    return pr, items, masks


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_masked_macs_equals_the_per_entry_count(seed):
    pr, items, masks = _profiled_model(4, seed)
    assert all(float(m.macs) > 0 for _, m, _ in items)
    ref = _ref_masked_macs(items, masks, pr.channel_sets)
    assert masked_macs(items, masks, pr.channel_sets) == ref  # same summation order: bit-equal on CPU
    assert float(masked_macs_tensor(items, masks, pr.channel_sets)) == ref
    assert ref < dense_macs(items, pr.channel_sets)
    full = {k: torch.ones_like(w, dtype=torch.bool) for k, _, w in items}
    assert masked_macs(items, full, pr.channel_sets) == pytest.approx(dense_macs(items, pr.channel_sets))


@pytest.mark.parametrize('seed,target,with_scores', [(0, 0.5, False), (1, 0.3, True), (2, 0.15, False),
                                                     (3, 0.05, True)])
def test_projection_takes_exactly_the_greedy_loop_s_channels(seed, target, with_scores):
    pr, items, masks = _profiled_model(4, seed)
    sets = pr.channel_sets
    scores = None
    if with_scores:
        g = torch.Generator().manual_seed(seed + 10)
        scores = {k: torch.rand(m.num_groups[0], generator=g) for k, m, _ in items if m.groupings}
    ref = {k: v.clone() for k, v in masks.items()}
    n_ref = _ref_project(items, ref, sets, target, scores)
    n = project_macs(items, masks, sets, target, scores)
    assert n == n_ref > 0
    assert all(torch.equal(masks[k], ref[k]) for k in masks)
    ratio = masked_macs(items, masks, sets) / dense_macs(items, sets)
    floor_hit = any(int((alive(masks, cs)[0] & alive(masks, cs)[1]).sum()) == min_channels(cs.size)
                    for cs in sets if not (cs.fixed_consumer or cs.fixed_producer))
    assert ratio <= target or floor_hit, ratio


@pytest.mark.parametrize('order,channel_floor,seed,target', [('score', 0.0, 0, 0.3), ('uniform', 0.0, 1, 0.3),
                                                              ('uniform', 0.0, 2, 0.1), ('per_mac', 0.4, 3, 0.1),
                                                              ('uniform', 0.3, 4, 0.05)])
def test_projection_takes_the_greedy_loop_s_channels_under_every_allocation(order, channel_floor, seed, target):
    pr, items, masks = _profiled_model(4, seed)
    sets = pr.channel_sets
    g = torch.Generator().manual_seed(seed + 10)
    scores = {k: torch.rand(m.num_groups[0], generator=g) for k, m, _ in items if m.groupings}
    ref = {k: v.clone() for k, v in masks.items()}
    n_ref = _ref_project(items, ref, sets, target, scores, order, channel_floor)
    n = project_macs(items, masks, sets, target, scores, Allocation(order, channel_floor))
    assert n == n_ref > 0
    assert all(torch.equal(masks[k], ref[k]) for k in masks)


def _live_counts(masks, sets):
    return [int((alive(masks, cs)[0] & alive(masks, cs)[1]).sum()) if not (cs.fixed_consumer or cs.fixed_producer)
            else None for cs in sets]


def test_channel_floor_keeps_that_fraction_of_every_set():
    pr, items, masks = _profiled_model(4, 5)
    sets = pr.channel_sets
    before = _live_counts(masks, sets)
    project_macs(items, masks, sets, 0.01, allocation=Allocation('per_mac', channel_floor=0.5))
    after = _live_counts(masks, sets)
    checked = 0
    for cs, b, a in zip(sets, before, after):
        if a is None:
            continue
        assert a >= min(b, math.ceil(0.5 * cs.size)), (cs, b, a)  # a set never goes below the floor by the projection
        checked += a < b
    assert checked  # the projection did remove channels
    # without the floor the same budget empties sets down to min_channels
    pr, items, masks = _profiled_model(4, 5)
    project_macs(items, masks, sets, 0.01)
    assert any(a is not None and a < math.ceil(0.5 * cs.size) for cs, a in zip(sets, _live_counts(masks, sets)))


def test_uniform_allocation_removes_the_same_fraction_of_every_set():
    """From full masks, every set that still has room ends within one channel's share of the same removed
    fraction; per MAC, the fractions spread (narrow sets free fewer MACs per channel and keep more)."""
    spread = {}
    for order in ('uniform', 'per_mac'):
        pr, items, _ = _profiled_model(4, 6)
        sets = pr.channel_sets
        masks = {k: torch.ones_like(w, dtype=torch.bool) for k, _, w in items}
        project_macs(items, masks, sets, 0.5, allocation=Allocation(order))
        fr = [(1 - a / cs.size, 1 / cs.size) for cs, a in zip(sets, _live_counts(masks, sets))
              if a is not None and a > min_channels(cs.size)]
        top = max(f for f, _ in fr)
        assert top > 0
        spread[order] = top - min(f for f, _ in fr)
        if order == 'uniform':
            assert all(f >= top - share - 1e-9 for f, share in fr), fr
    assert spread['uniform'] < spread['per_mac']


def test_projection_is_a_no_op_when_the_budget_is_met():
    pr, items, masks = _profiled_model(4, 0)
    before = {k: v.clone() for k, v in masks.items()}
    ratio = masked_macs(items, masks, pr.channel_sets) / dense_macs(items, pr.channel_sets)
    assert project_macs(items, masks, pr.channel_sets, min(1.0, ratio + 1e-6)) == 0
    assert all(torch.equal(masks[k], before[k]) for k in masks)
    with pytest.raises(ValueError, match='target_macs'):
        project_macs(items, masks, pr.channel_sets, 0.0)


def test_projection_host_reads_do_not_grow_with_the_model():
    """One host read for the per-entry MACs and one per greedy round, whatever the number of tensors and channels
    (measured before: 7,148 reads and 39 boolean indexings for one projection on the NTU ST-GCN)."""
    out = {}
    for stages in (4, 7):
        pr, items, masks = _profiled_model(stages, 0)
        rounds = []
        def run():
            rounds.append(project_macs(items, masks, pr.channel_sets, 0.2))
        syncs, nz, _, names = count_step(run)
        assert rounds[0] > 0 and nz == 0, names
        out[stages] = syncs
        assert syncs <= 1 + 10, (stages, syncs)
        syncs, nz, _, _ = count_step(lambda: masked_macs(items, masks, pr.channel_sets))
        # the total's read; the per-entry MACs come back with one .tolist() (a device->host copy on CUDA, which the
        # CPU profiler does not see as a scalar read)
        assert syncs == 1 and nz == 0
        assert len(entry_macs(items)) == len(items) and not math.isnan(sum(entry_macs(items).values()))
    assert abs(out[4] - out[7]) <= 2, out


@pytest.mark.parametrize('force', [None, True])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_flat_macs_are_the_per_tensor_count_bit_for_bit(seed, force):
    """The projection's MACs for all tensors at once (one segment sum over the consumer-alive map) equal the
    per-tensor loop to the last bit (integer terms in float64), at 4 and 7 stages, on both reduction paths; a
    non-integer entry MAC (where the summation order could matter) turns it off."""
    from mmsemiprune.core.fused import segment
    with segment.force(force):
        _check_flat_macs(seed)


def _check_flat_macs(seed):
    from mmsemiprune.core.fused.macs import flat_macs
    from mmsemiprune.core.topology import flat_for_masks
    for stages in (4, 7):
        pr, items, masks = _profiled_model(stages, seed)
        sets = pr.channel_sets
        macs = entry_macs(items)
        fc, like = flat_for_masks(items, masks, sets)
        assert fc is not None
        state, cons = fc.alive_all(torch.cat([t.reshape(-1) for t in like]), full=True)
        fm = flat_macs(fc, macs, 'cpu')
        ref = masked_macs_tensor(items, masks, sets, macs, [alive(masks, cs) for cs in sets])
        assert fm is not None and torch.equal(fm(cons), ref), (float(fm(cons)), float(ref))
        assert float(ref) < dense_macs(items, sets, macs)  # some channels are gone
        for (p, c), cs in zip(state, sets):
            a = alive(masks, cs)
            assert torch.equal(p, a[0]) and torch.equal(c, a[1])
        k0 = items[0][0]
        assert flat_macs(fc, dict(macs, **{k0: macs[k0] + 0.5}), 'cpu') is None


def test_macs_count_parts_gates_and_aggregations_as_export_does():
    """With branch parts, gate rows and several aggregations per set, MACs(M) is what the shrunk module computes:
    its remaining conv entries × output positions plus each aggregation per kept channel."""
    from test_shrink import _Concat, _concat_sets

    from mmsemiprune.core.shrink import shrink
    torch.manual_seed(0)
    pos = 6 * 4  # every conv keeps the (6, 4) positions of the input
    for unread in ([1, 3, 5], [0, 1, 4], [0, 1, 2, 3, 4, 5]):
        net = _Concat().eval()
        with torch.no_grad():
            net.n.weight[:, unread] = 0
        sets = _concat_sets()
        sets[1].aggs = [('p1.weight', 2.0), ('r.weight', 3.0)]  # 2·24 + 3·24 MACs per kept 'cat' channel
        names = ['z', 'p0', 'p1', 'r', 'gt', 'n']
        items = [(f'{n}.weight', None, getattr(net, n).weight) for n in names]
        macs = {f'{n}.weight': float(pos) for n in names}
        masks = {k: w != 0 for k, _, w in items}
        assert aggregation_macs(sets[1], macs) == 5.0 * pos
        got = float(masked_macs_tensor(items, masks, sets, macs))
        shrink(net, sets)
        real = sum(getattr(net, n).weight.numel() * pos for n in names) + aggregation_macs(sets[1], macs) * sets[1].size
        assert got == real, unread


@pytest.mark.parametrize('allocation,channel_floor', [('per_mac', 0.5), ('uniform', 0.0)])
def test_prune_cfg_allocation_reaches_the_frozen_masks(allocation, channel_floor):
    """prune_cfg.allocation / channel_floor travel from the config to the freeze's projection: the frozen masks of
    a small ST-GCN are those of project_macs with the same Allocation, and differ from the default order's."""
    live = {}
    for alloc, floor in (('per_mac', 0.0), (allocation, channel_floor)):
        model = _model(4, True, target_macs=0.15, allocation=alloc, channel_floor=floor)
        pr = model.pruner
        assert pr.allocation == Allocation(alloc, floor)
        pr.profile(lambda: model.extract_feat(torch.randn(1, 1, 2, 16, 25, 3)))
        pr.freeze()
        masks = {k: m.mask for k, m, _ in pr.items()}
        live[alloc, floor] = _live_counts(masks, pr.channel_sets)
        for cs, a in zip(pr.channel_sets, live[alloc, floor]):
            if a is not None:
                assert a >= math.ceil(floor * cs.size)
    assert live['per_mac', 0.0] != live[allocation, channel_floor]
