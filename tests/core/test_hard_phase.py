"""The hard-phase mechanisms on the toy net: the trained mask is the frozen mask (hard straight-through phase,
consistency inside the mask, masked biases, frozen gate decisions), compute pricing and a compute target."""
import pytest
import torch
import torch.nn.functional as F

from mmsemiprune.core import PruneSchedule
from mmsemiprune.core.compute import dense_macs, group_prices, masked_macs
from mmsemiprune.core.finalize import consistent_masks
from mmsemiprune.core.groups import group_rms
from mmsemiprune.core.topology import channel_view

SCHED = dict(warmup=0.3, freeze=0.8)


def _train_until(toy, stop, iters=40, **kw):
    """Train like conftest.train_toy but stop before the step at progress ``stop``; returns the state."""
    net, pr = toy.make_pruner(kw.pop('mode', 'semi'), kw.pop('cost', 'params'), kw.pop('rate', 0.8),
                              schedule=dict(SCHED), **kw)
    x, y = toy.data()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    it = 0
    while it / iters < stop:
        pr.set_progress(it / iters)
        idx = torch.randint(0, len(x), (32, ), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx]) + pr.budget_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
    return net, pr, opt, it


def test_schedule_hard_phase_bounds():
    s = PruneSchedule(warmup=0.2, freeze=0.6)
    assert s.hard_start == pytest.approx(0.5)
    assert not s.in_hard_phase(0.49) and s.in_hard_phase(0.5) and not s.in_hard_phase(0.6)
    assert not PruneSchedule(warmup=0.2, freeze=0.6, hard=0.6).in_hard_phase(0.59)
    with pytest.raises(ValueError, match='schedule.hard'):
        PruneSchedule(warmup=0.3, freeze=0.6, hard=0.7)


def test_hard_forward_equals_frozen_forward(toy):
    net, pr, _, it = _train_until(toy, 0.8)
    assert pr.in_hard_phase and not pr.frozen
    net.eval()
    x = toy.data(16, seed=7)[0]
    with torch.no_grad():
        before = net(x)
        masks = {k: m.mask.clone() for k, m, _ in pr.items()}
        share = [m.current_gates() for m in pr.masks]
        rep = pr.report()
        pr.set_progress(it / 40)  # the freeze step
        assert pr.frozen
        after = net(x)
    assert torch.equal(before, after)  # the network trained on exactly the mask that is kept
    for k, m, _ in pr.items():
        assert torch.equal(m.mask, masks[k])
    for m, s in zip(pr.masks, share):
        assert torch.equal(m.gate.hard(), s)
    rep2 = pr.report()
    assert rep2['structural_share'] == rep['structural_share'] and rep2['kept'] == rep['kept']
    assert rep2['rate_params'] == pytest.approx(0.8, abs=0.01)


def test_loss_change_at_freeze_is_small(toy):
    net, pr, _, it = _train_until(toy, 0.8)
    x, y = toy.data(64, seed=3)
    with torch.no_grad():
        l0 = F.cross_entropy(net(x), y).item()
        pr.set_progress(it / 40)
        l1 = F.cross_entropy(net(x), y).item()
    assert abs(l1 - l0) <= 0.05 * l0


def test_hard_phase_off_rehardens(toy):
    net, pr, _, _ = _train_until(toy, 0.79, hard_phase=False)
    assert not pr.in_hard_phase


def test_hard_phase_trains_kept_weights_on_the_hard_mask(toy):
    net, pr, opt, it = _train_until(toy, 0.7)
    assert pr.in_hard_phase
    decided = [m.gate.hard().clone() for m in pr.masks]
    x, y = toy.data(16)
    opt.zero_grad()
    (F.cross_entropy(net(x), y) + pr.budget_loss()).backward()
    m = net.c2.weight_psi
    assert torch.equal(m.last_psi.detach(), m.mask.float())  # forward value is the hard mask
    g = net.c2.weight.grad
    assert g[m.mask].abs().sum() > 0 and (g[~m.mask] == 0).all()  # W = Ŵ ⊙ M: kept latents learn
    assert all(mm.gate.logit.grad is None for mm in pr.masks)  # decisions final; no DDP here: no touch
    opt.step()
    pr.set_progress((it + 1) / 40)  # masks are re-solved from the moving latents, gate decisions are not
    assert all(torch.equal(mm.gate.hard(), d) for mm, d in zip(pr.masks, decided))
    assert pr.budget_loss().item() == 0.0


def test_dead_producer_is_dead_in_training_too(toy):
    """In the hard phase a channel without producer rows is also without consumer columns, and its
    conv output is exactly 0 (bias masked): nothing the consumer reads changes at the freeze."""
    net, pr, _, it = _train_until(toy, 0.75, rate=0.9)
    m1, m2 = net.c1.weight_psi.mask, net.c2.weight_psi.mask
    dead = ~m1.reshape(m1.shape[0], -1).any(1)
    assert dead.any()
    assert not m2[:, dead].any()  # consistency inside the training mask
    out = {}
    h = net.c1.register_forward_hook(lambda mod, i, o: out.setdefault('c1', o))
    with torch.no_grad():
        net(toy.data(4)[0])
    h.remove()
    assert (out['c1'][:, dead] == 0).all()
    # a consumer column of a dead channel contributes nothing before the freeze, so freezing changes nothing
    with torch.no_grad():
        pr.set_progress(it / 40)
    assert torch.equal(net.c2.weight_psi.mask, m2)


def test_frozen_gates_do_not_move(toy):
    net, pr, opt, _ = _train_until(toy, 1.0)
    pr.set_progress(1.0)
    assert pr.frozen
    decided = [m.gate.hard().clone() for m in pr.masks]
    logits = [m.gate.logit.detach().clone() for m in pr.masks]
    x, y = toy.data()
    with torch.no_grad():  # the logits may still move (DDP's zero gradients under weight decay, a user) ...
        for m in pr.masks:
            m.gate.logit.add_(torch.randn_like(m.gate.logit) * 3)
    for _ in range(10):
        opt.zero_grad()
        (F.cross_entropy(net(x[:32]), y[:32]) + pr.budget_loss()).backward()
        opt.step()
    assert any(not torch.equal(m.gate.logit.detach(), l) for m, l in zip(pr.masks, logits))
    for m, d in zip(pr.masks, decided):  # ... but not the decisions
        assert torch.equal(m.gate.hard(), d)
    # and they survive a state-dict round trip
    net2, pr2 = toy.make_pruner('semi', 'params', 0.8, schedule=dict(SCHED))
    net2.load_state_dict(net.state_dict())
    for m, d in zip(pr2.masks, decided):
        assert torch.equal(m.gate.hard(), d)


def test_all_zero_group_has_finite_gradient():
    x = torch.zeros(6, 4, requires_grad=True)
    gid = torch.arange(6).view(6, 1).expand(6, 4) // 2
    s = group_rms(x * torch.tensor([0., 0., 1., 1., 1., 1.]).view(6, 1), gid, 3)
    s.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_consistent_masks_leave_the_chosen_thresholds(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.9)
    items = pr.items()
    masks, asked, achieved = consistent_masks(items, 0.9, pr.layer_floor, pr.channel_sets)
    assert asked < 0.9 and achieved == pytest.approx(0.9, abs=0.005)
    again, _, _ = consistent_masks(items, asked, pr.layer_floor, pr.channel_sets, start=asked)
    for k, m, w in items:  # the thresholds left in the buffers are those of ``asked``
        hard = m.hard(w)
        assert torch.equal(hard | ~masks[k], hard | ~again[k])


def test_group_prices_count_consumers(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    items = pr.items()
    prices = group_prices(items, pr.channel_sets)
    m1 = net.c1.weight_psi
    # one c1 channel: its 3x3x3 row at 8x8 positions + its c2 input column (96 entries at 4x4 positions)
    assert prices['c1.weight'][0].item() == pytest.approx(27 * 64 + 96 * 16)
    assert float(m1.macs) == 64
    full = {k: torch.ones_like(w, dtype=torch.bool) for k, _, w in items}
    assert masked_macs(items, full, pr.channel_sets) == pytest.approx(dense_macs(items, pr.channel_sets))


@pytest.mark.parametrize('target', [0.2, 0.3])
def test_compute_target_is_met(toy, target):
    net, pr = toy.train('semi', 'params', 0.8, iters=40, target_macs=target)
    assert pr.frozen
    items = pr.items()
    masks = {k: m.mask for k, m, _ in items}
    ratio = masked_macs(items, masks, pr.channel_sets) / dense_macs(items, pr.channel_sets)
    assert target - 0.02 <= ratio <= target + 1e-9
    assert pr.report()['rate_params'] == pytest.approx(0.8, abs=0.01)


def test_gate_init_from_scores(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8, gate_init='score')
    assert not bool(pr.gates_initialised)
    pr.set_progress(0.0)
    m = net.c1.weight_psi
    x = m.normalise(net.c1.weight.detach()).abs()
    s = group_rms(x, m.gid0, m.num_groups[0])
    weak, strong = s.argmin(), s.argmax()
    assert m.gate.logit[weak] > 0 > m.gate.logit[strong]
    logits = m.gate.logit.detach().clone()
    pr.set_progress(0.1)  # once only
    assert torch.equal(m.gate.logit.detach(), logits)


def test_bias_masked_with_its_row(toy):
    net, pr = toy.make_pruner('structured', 'params', 0.5)
    mask = torch.ones_like(net.c1.weight, dtype=torch.bool)
    mask[:5] = False
    with torch.no_grad():
        net.c1.bias.fill_(1.0)
    net.c1.weight_psi.freeze(mask)
    out = net.c1(toy.data(2)[0])
    assert (out[:, :5] == 0).all() and (out[:, 5:] != 0).any()
    assert channel_view(mask, __import__('mmsemiprune.core.topology', fromlist=['Slot']).Slot('c1'), 96).shape[1] == 96


def test_oneshot_semi_takes_gates_from_scores(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8, gate_init='score', schedule=dict(warmup=0.0, freeze=0.0))
    pr.set_progress(0.0)
    assert pr.frozen and bool(pr.gates_initialised)
    share = [m.gate.hard().float().mean().item() for m in pr.masks]
    assert all(0.2 < s < 0.8 for s in share), share  # about half of each tensor's groups decided structured


def test_compute_projection_never_empties_a_channel_set(toy):
    from mmsemiprune.core.compute import min_channels, project_macs
    from mmsemiprune.core.topology import alive
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    items = pr.items()
    masks = {k: torch.ones_like(w, dtype=torch.bool) for k, _, w in items}
    project_macs(items, masks, pr.channel_sets, 0.01)  # unreachable budget
    for cs in pr.channel_sets:
        if not (cs.fixed_consumer or cs.fixed_producer):
            prod, cons = alive(masks, cs)
            assert int((prod & cons).sum()) >= min_channels(cs.size) >= 1


def test_live_region():
    from mmsemiprune.core.finalize import live_region
    m = torch.ones(4, 3, 2, dtype=torch.bool)
    m[1] = False  # a dead output row
    m[:, 2] = False  # a dead input column
    m[0, 0, 0] = False  # a single pruned entry stays live
    k = live_region(m)
    assert k.shape == m.shape and k.dtype == torch.float32
    assert k[1].sum() == 0 and k[:, 2].sum() == 0 and k[0, 0, 0] == 1
    assert k.sum() == 3 * 2 * 2
    assert torch.equal(live_region(torch.tensor([True, False])), torch.tensor([1.0, 0.0]))


def _soft_state(toy, projection, stop=0.6):
    net, pr, opt, it = _train_until(toy, stop, target_macs=0.3, soft_projection=projection)
    assert not pr.in_hard_phase and not pr.frozen
    return net, pr, opt, it


@pytest.mark.parametrize('projection', [True, False])
def test_soft_projection_trains_without_the_projected_channels(toy, projection):
    """soft_projection: after the rate warm-up, the soft phase's hard masks (what the report counts) already
    meet the compute target and the rate, and the soft forward gives exactly zero weights on the removed
    channels; without it the soft phase keeps most of the compute the hard phase then removes at once."""
    net, pr, _, it = _soft_state(toy, projection)
    items = pr.items()
    cur = {k: m.current(w) for k, m, w in items}
    ratio = masked_macs(items, cur, pr.channel_sets) / dense_macs(items, pr.channel_sets)
    kept = sum(int(c.sum()) for c in cur.values()) / sum(c.numel() for c in cur.values())
    if projection:
        assert 0.3 - 0.02 <= ratio <= 0.3 + 1e-6 and kept == pytest.approx(0.2, abs=0.01), (ratio, kept)
        W = net.c1.masked_params()[0] if hasattr(net.c1, 'masked_params') else None
        dead = cur['c1.weight'].reshape(cur['c1.weight'].shape[0], -1).sum(1) == 0
        assert dead.any()
        x = toy.data(4)[0]
        net(x)
        psi = net.c1.weight_psi.last_psi
        assert torch.all(psi[dead] == 0)  # removed channels are exactly dead in the soft forward too
        assert W is None or torch.all(W[dead] == 0)
    else:
        assert ratio > 0.3 + 0.1, ratio


@pytest.mark.parametrize('search', ['bisect', 'secant'])
def test_soft_projection_makes_the_hard_step_smooth(toy, search):
    """Loss on one batch (same weights) with the masks of the last soft step vs the first hard step: with
    the projection the hard phase changes little; without it, it removes the projected channels at once.
    (Over 8 training seeds of this toy, make_pruner seeds 0-7, the change with the projection was 0.019-0.288,
    median 0.067, with the published search; 0.020-0.159, median 0.070, with the secant one from an unmoved warm
    start; 0.014-0.263, median 0.037, with its warm start following the rate's move (moving it by a slope of 1
    instead gave two of 8 seeds at 0.42 and 0.70 on this toy, whose asked rate is ~0.03
    for a rate of 0.8); without the projection ~0.5.)"""
    changes = {}
    for projection in (True, False):
        net, pr, _, it = _train_until(toy, 0.675, target_macs=0.3, soft_projection=projection,
                                      projection_search=search)
        assert not pr.in_hard_phase
        x, y = toy.data(64, seed=5)
        net.eval()
        with torch.no_grad():
            before = F.cross_entropy(net(x), y).item()
            pr.set_progress(0.675)
            assert pr.in_hard_phase
            after = F.cross_entropy(net(x), y).item()
        changes[projection] = abs(after / before - 1)
    # measured at this seed: with the projection 0.019 (bisect) and 0.015 (secant; 0.066 before its warm start
    # followed the rate), without it 0.54 (secant); the published search keeps its original bound
    bound = 0.05 if search == 'bisect' else 0.1
    assert changes[True] < bound and changes[True] < changes[False] / 4, changes


# -- update_every: the host-side consistent masks every N steps (issue "pruning at GPU speed") ----------
def _syncs(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name in ('aten::_local_scalar_dense', 'aten::nonzero') for e in prof.events())


def test_update_every_soft_projection_skips_the_host_search(toy):
    """Between recomputations the soft projection keeps K and its thresholds (as the plain soft phase keeps its
    thresholds): no host sync, no search, the live region and thresholds unchanged, and the hard masks still near
    the scheduled rate; every N-th step recomputes (syncs again, K may move)."""
    net, pr, _, it = _train_until(toy, 0.6, target_macs=0.3, update_every=4)
    assert pr.update_every == 4 and not pr.in_hard_phase
    # align on a recomputation: the counter restarts there
    while pr._updated_at[2] != 0:
        pr.set_progress(it / 40)
    keep = pr._keep_flat.clone()
    thr = [torch.cat([m.thr_entry.reshape(-1), m.thr_group.reshape(-1)]).clone() for m in pr.masks]
    syncs = []
    for k in range(1, 5):
        with torch.no_grad():  # move the latents so that a recomputation would change the masks
            for _, _, w in pr.items():
                w.mul_(1 + 0.05 * torch.randn_like(w))
        syncs.append(_syncs(lambda: pr.set_progress(it / 40)))
        if k < 4:
            assert torch.equal(pr._keep_flat, keep)
            assert all(torch.equal(torch.cat([m.thr_entry.reshape(-1), m.thr_group.reshape(-1)]), t)
                       for m, t in zip(pr.masks, thr))
            items = pr.items()
            cur = {key: m.current(w) for key, m, w in items}
            kept = sum(int(c.sum()) for c in cur.values()) / sum(c.numel() for c in cur.values())
            assert kept == pytest.approx(0.2, abs=0.02), kept
    assert syncs[:3] == [0, 0, 0] and syncs[3] > 0, syncs  # step 4: recomputed on the host
    assert pr._updated_at[2] == 0


def test_update_every_hard_phase_keeps_its_masks(toy):
    """In the hard phase the consistent masks are kept for N − 1 steps and recomputed at the N-th; with N = 1
    (default) they follow the latents every step."""
    net, pr, _, it = _train_until(toy, 0.7, update_every=3)
    assert pr.in_hard_phase
    while pr._updated_at[2] != 0:
        pr.set_progress(it / 40)
    masks = {k: m.mask.clone() for k, m, _ in pr.items()}
    for step in (1, 2, 3):
        with torch.no_grad():
            for _, _, w in pr.items():
                w.copy_(torch.randn_like(w))  # a recomputation would give different masks
        pr.set_progress(it / 40)
        same = all(torch.equal(m.mask, masks[k]) for k, m, _ in pr.items())
        assert same == (step < 3), step


def test_update_every_auto_is_the_default_and_validated(toy):
    """'auto' (default): every step until the run length is known, then about 1,000 updates per mask phase."""
    net, pr = toy.make_pruner('semi', 'params', 0.8, schedule=dict(SCHED))
    assert pr.update_every == 1
    assert pr.set_run_length(1000) == 1 and pr.set_run_length(20000) == 16  # freeze 0.8: 16,000 // 1,000
    net, pr = toy.make_pruner('semi', 'params', 0.8, schedule=dict(SCHED), update_every=3)
    assert pr.set_run_length(20000) == 3  # an explicit interval is kept
    for bad in (0, 2.5, True, '4', 'fast'):
        with pytest.raises(ValueError, match='update_every'):
            toy.make_pruner('semi', 'params', 0.8, schedule=dict(SCHED), update_every=bad)


def test_update_every_soft_thresholds_kept_between_searches(toy):
    """Plain soft phase: the threshold search runs at every N-th step (and at every step of the warm-up, where
    the scheduled rate moves by >= 0.01 per step); in between the thresholds stay where the last search put them
    while ψ still follows the latents."""
    net, pr = toy.make_pruner('semi', 'params', 0.8, schedule=dict(SCHED), update_every=4)
    thr = lambda: torch.stack([m.thr_entry for m in pr.masks] + [m.thr_group for m in pr.masks]).clone()  # noqa
    # warm-up (rate 0 -> 0.8 over progress 0 -> 0.3): the rate moves by >= 0.01 per step at 1/100 progress steps
    pr.set_progress(0.01)
    for p in (0.02, 0.03):
        before = thr()
        pr.set_progress(p)
        assert not torch.equal(thr(), before)
    pr.set_progress(0.5)  # after the warm-up: rate constant, a search now
    ref = thr()
    changed = []
    for _ in range(4):
        with torch.no_grad():
            for _, _, w in pr.items():
                w.copy_(torch.randn_like(w))
        pr.set_progress(0.5)
        changed.append(not torch.equal(thr(), ref))
    assert changed == [False, False, False, True], changed


@pytest.mark.parametrize('secant', [False, True])
@pytest.mark.parametrize('start', [None, 0.0, 0.5, 0.85, 0.9])
def test_consistent_masks_meet_the_rate_from_any_start(toy, start, secant):
    """Warm start (+ secant step) + bisection: whatever the start, the consistent masks meet the rate to ``tol``
    (or as closely as the bisection gets) and the buffers hold the thresholds of the returned masks; a start at
    the solution costs one probe."""
    import mmsemiprune.core.finalize as fin
    net, pr = toy.make_pruner('semi', 'params', 0.9)
    items = pr.items()
    ref, asked, achieved = consistent_masks(items, 0.9, pr.layer_floor, pr.channel_sets)
    calls = []
    orig = fin._hard_masks
    fin._hard_masks = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        masks, asked2, achieved2 = consistent_masks(items, 0.9, pr.layer_floor, pr.channel_sets, start=start,
                                                    secant=secant)
        calls_here = len(calls)
        # the buffers hold the thresholds of the returned probe: the search at asked2 writes the same ones
        now = {k: m.hard(w) for k, m, w in items}
        from mmsemiprune.core.budget import solve_thresholds
        solve_thresholds([(m, w) for _, m, w in items], asked2, pr.layer_floor, stats=False)
        for k, m, w in items:
            assert torch.equal(m.hard(w), now[k]) and not (masks[k] & ~now[k]).any()
        calls.clear()
        consistent_masks(items, 0.9, pr.layer_floor, pr.channel_sets, start=asked)
    finally:
        fin._hard_masks = orig
    assert abs(achieved2 - 0.9) <= max(abs(achieved - 0.9), 1e-3) + 1e-9, (achieved2, achieved)
    assert len(calls) == 1  # warm start at the solution
    assert calls_here <= 23


def test_gate_touch_only_under_distributed(toy, tmp_path):
    """Frozen / hard phase: the forward no longer reads the gates. DDP (find_unused_parameters=False) needs every
    parameter in the graph, so inside an initialised process group the budget loss touches each gate logit with
    a zero gradient; outside one it adds nothing to the graph (no operators for them)."""
    import torch.distributed as dist
    net, pr, _, _ = _train_until(toy, 0.7)
    assert pr.in_hard_phase
    logits = [m.gate.logit for m in pr.masks if m.gate.mode == 'learned']
    loss = pr.budget_loss()
    assert not loss.requires_grad and float(loss) == 0.0
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        loss = pr.budget_loss()
        grads = torch.autograd.grad(loss, logits)
        assert float(loss) == 0.0 and all(g is not None and (g == 0).all() for g in grads)
    finally:
        dist.destroy_process_group()


def test_soft_projection_keep_is_the_live_region_of_the_projected_masks(toy):
    """After every soft-projection update each mask's K is live_region of the consistent projected hard mask at
    the asked rate (the masks hold views of one flat vector, overwritten in place at later updates), also in a
    deep copy updated on its own."""
    import copy
    import mmsemiprune.core.finalize as fin
    net, pr, _, it = _train_until(toy, 0.5, target_macs=0.3)
    twin_net, twin_pr = copy.deepcopy((net, pr))
    for p_, step in ((pr, 1), (twin_pr, 2)):
        ptrs = None
        for k in range(3):
            with torch.no_grad():  # move the latents: each update moves the masks
                for _, _, w in p_.items():
                    w.mul_(1 + 0.1 * torch.randn_like(w))
            p_.set_progress((it + step + k) / 40)
            items = p_.items()
            macs = 1.0 - (1.0 - p_.target_macs) * float(p_.rate_now) / p_.target_rate
            ref = fin._hard_masks(items, p_._soft_asked, p_.layer_floor, p_.channel_sets, macs,
                                  fin.producer_scores(items))
            for key, m, _ in items:
                assert torch.equal(m._keep, fin.live_region(ref[key])), (k, key)
            now = [m._keep.untyped_storage().data_ptr() for m in p_.masks]
            assert len(set(now)) == 1 and now[0] == p_._keep_flat.untyped_storage().data_ptr()
            ptrs = ptrs or now
            assert now == ptrs  # updated in place


@pytest.mark.parametrize('secant', [False, True])
@pytest.mark.parametrize('start', [0.45, 0.675, 0.7875, 0.84375, 0.86])
def test_consistent_masks_probe_a_rate_once(toy, start, secant):
    """A rate the search probed before in the same call (the bisection from [0, rate] revisits the warm start's
    dyadic rate) is not probed again: the same masks, asked and achieved rates and thresholds in the buffers bit
    for bit as probing it again, with one probe per distinct rate."""
    import mmsemiprune.core.finalize as fin
    net, pr = toy.make_pruner('semi', 'params', 0.9, target_macs=0.5)
    pr.profile(lambda: net(toy.data(2)[0]))
    items = pr.items()
    rates = []
    orig = fin._hard_masks

    def run(memo):
        rates.clear()
        out = consistent_masks(items, 0.9, pr.layer_floor, pr.channel_sets, start=start, secant=secant,
                               target_macs=0.5, memo=memo)
        thr = [torch.cat([m.thr_entry.reshape(-1), m.thr_group.reshape(-1)]) for _, m, _ in items]
        return out, thr, list(rates)

    fin._hard_masks = lambda *a, **k: rates.append(a[1]) or orig(*a, **k)
    try:
        (ref, asked, achieved), thr_ref, probed = run(False)
        (got, asked2, achieved2), thr, probed2 = run(True)
    finally:
        fin._hard_masks = orig
    assert (asked2, achieved2) == (asked, achieved)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert all(torch.equal(a, b) for a, b in zip(thr, thr_ref))
    assert probed2 == list(dict.fromkeys(probed))  # each distinct rate once, in the same order
    if start in (0.45, 0.675) and not secant:  # measured: the bisection revisits these starts (7 probes -> 6)
        assert len(probed2) < len(probed), probed


@pytest.mark.parametrize('search, N, macs, secant', [
    ('bisect', 1, 0.3, False), ('bisect', 4, 0.3, True), ('secant', 1, 0.3, True), ('auto', 1, 0.3, True),
    ('auto', 1, None, False), ('auto', 4, None, True), ('secant', 1, None, True)])
def test_projection_search_picks_the_secant_search(toy, monkeypatch, search, N, macs, secant):
    """prune_cfg.projection_search: 'bisect' bisects from [0, rate] at N = 1 (the published leaderboards' search)
    and takes the secant step at N > 1; 'secant' takes it at every N (soft projection and hard phase alike);
    'auto' (the default) is 'secant' with a compute target, else 'bisect'. Without a compute target the
    consistent masks are searched in the hard phase only (trained into it here)."""
    import mmsemiprune.core.pruner as P
    seen = []
    orig = P.consistent_masks
    monkeypatch.setattr(P, 'consistent_masks', lambda *a, **k: seen.append(k['secant']) or orig(*a, **k))
    net, pr, _, it = _train_until(toy, 0.5 if macs else 0.75, target_macs=macs, update_every=N,
                                  projection_search=search)
    assert pr.projection_search == search and seen and set(seen) == {secant}, seen
