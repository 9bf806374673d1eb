"""The batched soft masks (core/fused/batch.py) are the per-tensor cascade (SemiMask._soft) over all tensors at once:
same ψ, same masked weights and biases, same budget loss, same gradients to the latents and gate logits, for every
mode, two groupings on a tensor (the toy's c2: out + in; fc: in only), normalize False and the l1 statistic."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmsemiprune.core.cascade import MODES


def _per_tensor(pr):
    """Context: the pruner's masks use the per-tensor path (the reference)."""
    class _Ctx:
        def __enter__(self):
            for m in pr.masks:
                m._batch = None

        def __exit__(self, *exc):
            for m in pr.masks:
                m._batch = pr._batch
    return _Ctx()


def _setup(toy, mode, **kw):
    net, pr = toy.make_pruner(mode, 'params', 0.8, **kw)
    pr.set_progress(0.5)  # thresholds placed, τ annealed part-way
    g = torch.Generator().manual_seed(3)
    toy.random_gates(pr, g)  # distinct gate logits and biases, so the gates and the bias masks are not trivial
    with torch.no_grad():
        net.c1.bias.copy_(torch.randn(net.c1.bias.shape, generator=g))
    return net, pr


def _grads(net, pr, loss):
    params = [w for _, _, w in pr.items()] + [m.gate.logit for m in pr.masks if m.gate.mode == 'learned'] \
        + [net.c1.bias, net.c2.bias]
    return torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('normalize,group_stat', [(True, 'rms'), (False, 'rms'), (True, 'l1')])
def test_batched_masks_equal_per_tensor(toy, mode, normalize, group_stat):
    net, pr = _setup(toy, mode, normalize=normalize, group_stat=group_stat, gate_price_by='params')
    items = pr.items()
    # ψ, masked weight and masked bias: batched vs SemiMask._soft
    for key, m, w in items:
        mod = dict(net.named_modules())[key.rsplit('.', 1)[0]]
        W, b = mod.masked_params()
        assert m.__dict__['_lazy'] is not None, key  # the batch was used
        psi = m.last_psi
        ref = m._soft(w)
        assert torch.allclose(psi, ref, rtol=1e-5, atol=1e-6), (key, (psi - ref).abs().max())
        assert torch.allclose(W, w * ref, rtol=1e-5, atol=1e-7)
        if mod.bias is not None:
            assert torch.allclose(b, mod.bias * ref.reshape(ref.shape[0], -1).amax(1), rtol=1e-5, atol=1e-7)
    # training loss (task + budget with the gate price) and its gradients
    x, y = toy.data(8)
    loss_b = F.cross_entropy(net(x), y) + pr.budget_loss()
    assert pr._batch.current(pr.masks) is not None  # the budget loss read the batch
    gb = _grads(net, pr, loss_b)
    with _per_tensor(pr):
        loss_r = F.cross_entropy(net(x), y) + pr.budget_loss()
        assert pr._batch.current(pr.masks) is None
        gr = _grads(net, pr, loss_r)
    assert torch.allclose(loss_b, loss_r, rtol=1e-5, atol=1e-7), (loss_b, loss_r)
    for a, r in zip(gb, gr):
        assert (a is None) == (r is None)
        if a is not None:
            assert torch.allclose(a, r, rtol=1e-4, atol=1e-6), (a - r).abs().max()


def test_batched_budget_loss_with_mac_prices(toy):
    """gate_price_by='both' (the default) after profiling: the MAC price over the batch equals the per-tensor one."""
    net, pr = _setup(toy, 'semi')
    assert bool(pr.profiled) and pr.gate_price_by == 'both'
    x, _ = toy.data(8)
    net(x)
    lb = pr.budget_loss()
    gb = torch.autograd.grad(lb, [m.gate.logit for m in pr.masks])
    with _per_tensor(pr):
        net(x)
        lr = pr.budget_loss()
        gr = torch.autograd.grad(lr, [m.gate.logit for m in pr.masks])
    assert torch.allclose(lb, lr, rtol=1e-5, atol=1e-8)
    for a, r in zip(gb, gr):
        assert torch.allclose(a, r, rtol=1e-4, atol=1e-7)


def test_second_forward_and_stale_entries_recompute(toy):
    """Each mask takes its entry once: a second forward (gradient accumulation) builds a new graph, and a latent
    changed in place in between is seen (its version counter)."""
    net, pr = _setup(toy, 'semi')
    x, y = toy.data(8)
    F.cross_entropy(net(x), y).backward()
    c1 = pr._batch._cache
    F.cross_entropy(net(x), y).backward()  # would fail on a freed graph if the first evaluation were reused
    assert pr._batch._cache is not c1
    with torch.no_grad():
        net.c2.weight.mul_(2.0)
        net.c2.weight[0].zero_()
    W, _ = net.c2.masked_params()
    W2, _ = net.c2.masked_params()  # a second read in the same forward: recomputed, same value
    m = net.c2.weight_psi
    ref = net.c2.weight * m._soft(net.c2.weight)
    assert torch.allclose(W, ref, rtol=1e-5, atol=1e-7) and torch.allclose(W2, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('normalize', [True, False])
def test_the_search_values_the_batch_takes_give_the_same_bits(toy, mode, normalize, monkeypatch):
    """The batched masks take the threshold search's flat latents and x = w / s of the same step (flat.flat_scores
    keeps them, keyed by the latents' versions): the same loss and gradients bit for bit as computing them again,
    and a latent changed in place after the search is seen (the values are not taken)."""
    from mmsemiprune.core.fused import batch
    taken = []
    flat_cat, scaled = batch.flat_cat, batch.scaled
    monkeypatch.setattr(batch, 'flat_cat', lambda t, pre=None: (taken.append(pre is not None), flat_cat(t, pre))[1])
    monkeypatch.setattr(batch, 'scaled', lambda *a: (taken.append('x'), scaled(*a))[1])
    net, pr = _setup(toy, mode, normalize=normalize)
    x, y = toy.data(8)
    params = [w for _, _, w in pr.items()] + [m.gate.logit for m in pr.masks if m.gate.mode == 'learned']

    def run():
        taken.clear()
        loss = F.cross_entropy(net(x), y) + pr.budget_loss()
        return [loss.detach()] + list(torch.autograd.grad(loss, params, allow_unused=True)), list(taken)

    got, used = run()
    assert used[0] is True and ('x' in used) == normalize  # the latents' cat (and x) from the search
    flat = next(iter(pr._batch._index.values())).flat
    flat.shared = None  # what the batch computes without the search's values
    pr._batch.clear()
    ref, used = run()
    assert used[0] is False and 'x' not in used
    assert len(got) == len(ref)
    for a, r in zip(got, ref):
        assert (a is None and r is None) or torch.equal(a, r)
    pr.set_progress(0.5)  # the search again: values kept for these latents ...
    assert flat.shared is not None
    with torch.no_grad():
        net.c2.weight.mul_(2.0)  # ... then one changed in place
    pr._batch.clear()
    _, used = run()
    assert used[0] is False and 'x' not in used


def test_frozen_hard_and_copies_leave_the_soft_batch(toy):
    net, pr = toy.train('semi', 'params', 0.8, iters=30)
    assert pr.frozen
    x, _ = toy.data(4)
    net(x)
    assert all(m.__dict__['_lazy'] is None for m in pr.masks)
    net2, pr2 = _setup(toy, 'semi')
    net3 = copy.deepcopy(net2)  # the copy drops the link to the original's batch ...
    assert all(m._batch is None for m in net3.modules() if hasattr(m, 'gate'))
    assert torch.allclose(net3(x), net2(x), atol=1e-6)


@pytest.mark.parametrize('read_first', [False, True])
def test_deepcopy_after_a_soft_step(toy, read_first):
    """A model copied between steps (EMA / SWA hooks, a diagnostic copy) after a soft forward + backward:
    the per-step caches (graph views, which deepcopy refuses; the search's flat index and values) are dropped, the
    copy computes its own."""
    net, pr = _setup(toy, 'semi')
    x, y = toy.data(8)
    F.cross_entropy(net(x), y).backward()
    if read_first:  # the budget loss materialises the lazy views
        pr.budget_loss()
    assert pr.masks[0].__dict__.get('_sp_flat')  # the search's index, with this step's flat latents
    net2, pr2 = copy.deepcopy((net, pr))
    assert all(m.__dict__.get('_last_psi') is None for m in pr2.masks)
    assert all('_sp_flat' not in m.__dict__ for m in pr2.masks)  # not copied: the copy's masks build their own
    loss = F.cross_entropy(net2(x), y) + pr2.budget_loss()
    loss.backward()
    assert torch.allclose(net2(x), net(x), atol=1e-6)


def test_stored_masks_batched_equal_per_tensor_bit_for_bit(toy, monkeypatch):
    """Frozen masks: Ŵ ⊙ M of every tensor by one foreach multiply forward and one backward, the same outputs and
    gradients bit for bit as the per-tensor multiplies; a latent changed in place (an optimizer step) or a second
    forward recomputes; under distributed training (one backward operator for all latents would delay DDP's
    bucket reductions to the end of the backward) the per-tensor path runs."""
    from torch.profiler import ProfilerActivity, profile

    from mmsemiprune.core.fused import batch
    net, pr = toy.train('semi', 'params', 0.8, iters=30)
    assert pr.frozen
    with torch.no_grad():
        net.c1.bias.copy_(torch.randn(net.c1.bias.shape, generator=torch.Generator().manual_seed(1)))
    x, y = toy.data(8)
    params = [w for _, _, w in pr.items()] + [net.c1.bias, net.c2.bias]

    def step():
        out = net(x)
        return out, torch.autograd.grad(F.cross_entropy(out, y), params, allow_unused=True)

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out, grads = step()
    names = [e.name for e in prof.events()]
    assert pr._batch._stored is not None and names.count('aten::_foreach_mul') == 2  # forward, backward
    with _per_tensor(pr):
        ref_out, ref_grads = step()
    assert torch.equal(out, ref_out)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(grads, ref_grads))
    first = pr._batch._stored
    step()  # a second forward: a new evaluation, not the first one's freed graph
    assert pr._batch._stored is not first
    with torch.no_grad():
        net.c2.weight.mul_(2.0)  # in place, as an optimizer step
    W, _ = net.c2.masked_params()
    assert torch.equal(W, net.c2.weight * net.c2.weight_psi._mask_f)
    monkeypatch.setattr(batch, '_distributed', lambda: True)
    pr._batch._stored = None
    net(x)
    assert pr._batch._stored is None


def test_flat_cat_and_split_as_are_cat_and_split_with_one_operator_each_way():
    """The flattening of the latents / gate logits / biases and the split of Ŵ ⊙ ψ back into shaped weights: the values
    and gradients of ``cat`` + ``split`` bit for bit (an unused output's gradient counts as zeros; 1-D inputs as
    is), one operator forward and one backward each, whatever the number of tensors."""
    from torch.profiler import profile

    from mmsemiprune.core.fused.batch import flat_cat, split_as
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 3, 9, 1), (5, ), (4, 2), (7, 7, 1, 1)]
    ours = [torch.randn(s, generator=g, requires_grad=True) for s in shapes]
    ref = [t.detach().clone().requires_grad_() for t in ours]
    scale = torch.randn(sum(t.numel() for t in ours), generator=g)
    flat = flat_cat(ours)
    flat_ref = torch.cat([t.reshape(-1) for t in ref])
    assert torch.equal(flat, flat_ref)
    parts = split_as(flat * scale, ours)
    parts_ref = [p.view(s) for p, s in zip((flat_ref * scale).split([t.numel() for t in ref]), shapes)]
    assert [p.shape for p in parts] == [torch.Size(s) for s in shapes]
    assert all(torch.equal(a, b) for a, b in zip(parts, parts_ref))
    loss = sum((p ** 2).sum() for i, p in enumerate(parts) if i != 1)  # output 1 unused
    loss_ref = sum((p ** 2).sum() for i, p in enumerate(parts_ref) if i != 1)
    loss.backward()
    loss_ref.backward()
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, ref))
    with profile() as prof:
        out = split_as(flat_cat(ours) * 2, ours)
        sum(o.sum() for o in out).backward()
    names = [e.name for e in prof.events() if e.name.endswith('flatten_dense_tensors')]
    assert names.count('aten::flatten_dense_tensors') == 2 and names.count('aten::unflatten_dense_tensors') == 2
    assert not any(e.name in ('aten::narrow', 'aten::cat') for e in prof.events() if e.cpu_parent is None)
