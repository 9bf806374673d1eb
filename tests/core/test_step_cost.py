"""Operators and host synchronisations per training step, counted on CPU with torch.profiler: how CI guards
GPU speed without a GPU (issue "pruning at GPU speed"). Counts are deterministic, so they are exact bounds.

A *sync* is an ``aten::_local_scalar_dense`` (what ``.item()``, ``float(t)``, ``bool(t)`` and Python indexing
with a tensor run; on CUDA each one waits for the device) or an ``aten::nonzero`` (boolean indexing: its
output size is only known on the host). *Operators* are the top-level ``aten::`` calls (those not issued by
another aten call), a proxy for launched kernels. The step is MMEngine's ``model.train_step`` with an
``OptimWrapper`` (data preprocessor, forward, loss, backward, SGD), in the soft phase (progress 0.5), on a
small MMAction2 ST-GCN at two depths (22 vs 12 masked tensors), against the stock ``RecognizerGCN``.
"""
import copy
from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmaction.utils import register_all_modules
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmsemiprune.core.budget import solve_thresholds
from mmsemiprune.models import SemiPruneRecognizerGCN  # noqa: F401  (registers the model)

register_all_modules(init_default_scope=True)

SYNC_OPS = ('aten::_local_scalar_dense', 'aten::nonzero')


def count_step(fn):
    """(syncs, nonzero, top-level aten operators, Counter of them) of one call of ``fn``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = Counter()
    allc = Counter()
    for e in prof.events():
        allc[e.name] += 1
        if not e.name.startswith('aten::'):
            continue
        p = e.cpu_parent
        while p is not None and not p.name.startswith('aten::'):
            p = p.cpu_parent
        if p is None:
            names[e.name] += 1
    syncs = allc['aten::nonzero']
    for e in prof.events():
        if e.name == 'aten::_local_scalar_dense':
            p = e.cpu_parent
            while p is not None and p.name != 'aten::std':
                p = p.cpu_parent
            syncs += p is None
    return syncs, allc['aten::nonzero'], sum(names.values()), names


def _model(stages, pruned, **prune):
    bb = dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), base_channels=16,
              num_stages=stages, inflate_stages=[stages - 1], down_stages=[stages - 1])
    cfg = dict(type='RecognizerGCN', backbone=bb, cls_head=dict(type='GCNHead', num_classes=4, in_channels=32))
    if pruned:
        cfg.update(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode='semi', **prune))
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _data(n=2, T=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 2, T, 25, 3, generator=g)
    return dict(inputs=[x[i] for i in range(n)],
                data_samples=[ActionDataSample().set_gt_labels(torch.tensor([i % 4])) for i in range(n)])


def step_cost(stages, pruned, progress=0.5, before=None, **prune):
    """Counts of one train_step after two warm-up steps (``before(model)`` runs between them and the counted one)."""
    model = _model(stages, pruned, **prune)
    model.train()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 100)
    hub.update_info('iter', int(progress * 100))
    data = _data()
    for _ in range(2):  # warm-up: profiling (first step), caches of the threshold search
        model.train_step(copy.copy(data), ow)
    if before is not None:
        before(model)
    cost = count_step(lambda: model.train_step(copy.copy(data), ow))
    if pruned and progress >= 1.0:
        assert model.pruner.frozen
        return cost + (len(model.pruner.masks), )
    if pruned:
        assert not model.pruner.frozen and float(model.pruner.masks[0].thr_entry) > 0  # soft phase, search ran
        return cost + (len(model.pruner.masks), )
    return cost + (0, )


@pytest.fixture(scope='module')
def costs():
    torch.set_num_threads(1)
    return {(s, p): step_cost(s, p) for s in (4, 7) for p in (False, True)}


def test_soft_step_syncs_are_o1(costs):
    """The soft step adds no host synchronisation to the stock step's, for 9 and 15 masked tensors alike
    (before: ~4,400 per step on the NTU ST-GCN, growing with the number of tensors)."""
    (s_small, nz_small, _, _, L_small), (s_big, nz_big, _, _, L_big) = costs[(4, True)], costs[(7, True)]
    stock_small, stock_big = costs[(4, False)][0], costs[(7, False)][0]
    assert L_big > L_small + 5
    assert nz_small == nz_big == 0  # no boolean indexing in the step
    # measured: none added (host mirrors of the profiled / gates-initialised flags, prune_rate logged as a
    # tensor); before the batched masks 3, before the on-device threshold search ~4,400 on the NTU ST-GCN
    assert s_small == stock_small and s_big == stock_big, (s_small, stock_small, s_big, stock_big)


def test_threshold_search_has_no_sync_and_constant_operators():
    """set_progress (temperatures + the on-device threshold search over all masks) never syncs, and its
    operator count grows by at most a few views per masked tensor."""
    out = {}
    for stages in (4, 7):
        model = _model(stages, True)
        pr = model.pruner
        pr.set_progress(0.5)  # builds the index cache
        syncs, nz, ops, names = count_step(lambda: pr.set_progress(0.5))
        assert syncs <= 1 and nz == 0, names  # ≤ 1: the gates_initialised flag read (gate_init='score')
        items = [(m, w) for _, m, w in pr.items()]
        syncs, nz, ops, names = count_step(lambda: solve_thresholds(items, 0.9, pr.layer_floor, stats=False))
        out[stages] = (syncs, ops, len(pr.masks))
        assert syncs == 0 and nz == 0, names
    (_, ops_s, L_s), (_, ops_b, L_b) = out[4], out[7]
    assert (ops_b - ops_s) <= 6 * (L_b - L_s), out  # per mask: its slice of the flat vectors only
    assert ops_s <= 6 * L_s + 250, out  # measured: 224 + 4 per mask


@pytest.mark.xfail(strict=True, reason='open (issue "pruning at GPU speed"): on these small models with the '
                   'threshold search at every step (update_every=1) the soft step costs 904 / 1,171 operators against '
                   'stock 438 / 669 (2.06x / 1.75x): the on-device search alone is ~230 operators (four radix '
                   'selects), more than the 219 the bound leaves at depth 4, and every masked tensor still costs ~6 '
                   '(its mean square for the search, SGD on its gate logits). On the NTU ST-GCN the bound holds, '
                   'with the search at every step and every 16 steps (tests below)')
def test_soft_step_operators_within_1_5x_stock(costs):
    for s in (4, 7):
        ops_soft, ops_stock = costs[(s, True)][2], costs[(s, False)][2]
        assert ops_soft <= 1.5 * ops_stock, (s, ops_soft, ops_stock)


def test_soft_step_operators_batched(costs):
    """The soft masks are computed for all tensors at once (core/fused/batch.py): what the soft step adds to stock's
    grows by at most 8 operators per masked tensor (measured 6: the search's mean square per tensor, SGD on the gate
    logits (5 on the CPU, where SGD loops over tensors), the gate gradient's accumulation; ~13 with the latents,
    gate logits and biases not flattened and their gradients split by one operator each way, ~40 + 25
    per tensor before the batch), and the step stays within 2.1x stock (measured 2.06x at 9 masks, 1.75x at 15;
    4.7x before)."""
    (ops_s, L_s), (ops_b, L_b) = (costs[(4, True)][2], costs[(4, True)][4]), (costs[(7, True)][2], costs[(7, True)][4])
    stock_s, stock_b = costs[(4, False)][2], costs[(7, False)][2]
    per_mask = ((ops_b - stock_b) - (ops_s - stock_s)) / (L_b - L_s)
    assert per_mask <= 8, (per_mask, ops_s, ops_b, stock_s, stock_b)
    assert ops_s <= 2.1 * stock_s and ops_b <= 2.1 * stock_b, (ops_s, stock_s, ops_b, stock_b)


def test_frozen_step_operators_close_to_stock():
    """Frozen masks (most of a run: the fine-tune): one multiply per masked weight (and per masked bias with a dead
    row), forward and backward; no gate touch outside DDP. Measured 1.10x / 1.09x stock here (9 / 15 masked
    tensors, ~4-5 operators each), 1.06x on the NTU ST-GCN, where an H200 step ran 1.01x stock (CTR-GCN 1.04x);
    1.29x here without the batched soft masks, 1.62x without the float caches."""
    torch.set_num_threads(1)
    s_stock, _, ops_stock, _, _ = step_cost(4, False)
    s_frozen, nz, ops_frozen, names, L = step_cost(4, True, progress=1.0)
    assert nz == 0 and s_frozen == s_stock, (s_frozen, s_stock)
    assert ops_frozen <= 1.15 * ops_stock, (ops_frozen, ops_stock, L)
    assert ops_frozen - ops_stock <= 5 * L, (ops_frozen, ops_stock, L)


def test_hard_phase_progress_syncs_are_o1():
    """set_progress in the hard phase (last quarter of the anneal: consistent hard masks re-solved every step) reads
    the host a constant number of times per probe of the rate (measured 3 for 9 and for 15 masked tensors; 4 + 4L
    before: the threshold search's stats, two reads per tensor for the achieved rate, one per channel set and
    round in the consistency pass) and never indexes with a boolean."""
    out = {}
    for stages in (4, 7):
        model = _model(stages, True)
        pr = model.pruner
        p = 0.5 * (pr.schedule.hard_start + pr.schedule.freeze)
        pr.set_progress(p)
        assert pr.in_hard_phase
        syncs, nz, _, names = count_step(lambda: pr.set_progress(p))
        out[stages] = (syncs, len(pr.masks))
        assert nz == 0, names
    assert out[4][0] == out[7][0] <= 4, out


def _ntu_step_ops(pruned, steps, max_iters=100, **prune):
    """Average (syncs, operators) per train_step over ``steps`` steps at progress 0.5 of the stock NTU-60 ST-GCN
    of configs/stgcn_semiprune_ntu60.py (3.1 M parameters, 22 masked tensors), input 1 clip of 2 x 20 x 25 x 3."""
    import os.path as osp
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = copy.deepcopy(dict(Config.fromfile(osp.join(root, 'configs/stgcn_semiprune_ntu60.py')).model))
    if pruned:
        cfg['prune_cfg'] = dict(cfg['prune_cfg'], **prune)
    else:
        cfg.pop('prune_cfg')
        cfg['type'] = 'RecognizerGCN'
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.train()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', max_iters)
    hub.update_info('iter', max_iters // 2)
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randn(1, 2, 20, 25, 3, generator=g)],
                data_samples=[ActionDataSample().set_gt_labels(torch.tensor([0]))])
    for _ in range(2):
        model.train_step(copy.copy(data), ow)
    tot = [0, 0]
    for _ in range(steps):
        s, _, o, _ = count_step(lambda: model.train_step(copy.copy(data), ow))
        tot[0] += s
        tot[1] += o
    if pruned:
        assert not model.pruner.frozen and not model.pruner.in_hard_phase
        assert model.pruner.update_every == steps
    return tot[0] / steps, tot[1] / steps


@pytest.mark.parametrize('interval, max_iters', [(16, 20000), (1, 100)])
def test_ntu_soft_step_operators_within_1_5x_stock(interval, max_iters):
    """The issue's bound on the issue's model: the NTU-60 ST-GCN soft step (semi 0.9, its shipped config) costs
    <= 1.5x stock's operators per step and no host sync more than stock's, averaged over one mask update interval:
    in a run of 20,000 steps, where update_every='auto' updates the masks every 16 steps (measured 1,654 vs 1,125:
    1.47x), and in a run of up to 1,250 steps (the demo, the leaderboard), where the threshold search
    (eager on the CPU; one CUDA graph replay on a GPU) and the soft masks run at every step: measured 1,678 (1.49x;
    1,862 = 1.66x with the latents, gate logits and biases not flattened by one operator each way and the search's
    bucket ids in int64; 1,685 without the radix histograms by bincount and the search's flat latents reused by the
    masks). The margin there is 9 operators: anything added per masked tensor
    shows."""
    torch.set_num_threads(1)
    s_stock, o_stock = _ntu_step_ops(False, 1)
    s_soft, o_soft = _ntu_step_ops(True, interval, max_iters=max_iters)
    assert s_soft == s_stock, (s_soft, s_stock)
    assert o_soft <= 1.5 * o_stock, (o_soft, o_stock, o_soft / o_stock)


def test_ntu_soft_step_with_compute_target_operators():
    """With a compute target (target_macs 0.4, what the leaderboard's semi runs) and the masks updated at every step,
    the NTU ST-GCN soft step dispatches <= 1.65x stock's operators (measured 1,781 of 1,125 = 1.58x; 3,206 = 2.85x when
    the consistency pass, the projection's alive maps and MAC count ran per channel set instead of over all at
    once) and reads the host 5 times (one per round of the consistency pass and of the projection, and the achieved
    rate), not once per tensor or channel set."""
    torch.set_num_threads(1)
    s_stock, o_stock = _ntu_step_ops(False, 1)
    s_soft, o_soft = _ntu_step_ops(True, 1, max_iters=100, target_macs=0.4)
    assert s_soft <= s_stock + 4, (s_soft, s_stock)
    assert o_soft <= 1.65 * o_stock, (o_soft, o_stock, o_soft / o_stock)


def test_soft_step_with_compute_target_syncs_per_probe_are_o1(monkeypatch):
    """With a compute target the soft step recomputes the consistent, MAC-projected hard masks (update_every=1 in a
    100-step run) by a search over the rate asked of the thresholds (at most 22 probes). Each probe reads the host
    once per round of the consistency pass and of the projection, plus the removed count and the achieved rate,
    not once per tensor or channel: measured 4.8 per probe at 9 and at 15 masked tensors (~120 on the NTU ST-GCN
    before the MAC count and the projection ran on the device). Never a boolean indexing. (How many probes a step
    takes depends on how finely the rate can be met: 13 and 22 here, 1 on the NTU ST-GCN from a warm start.)"""
    import mmsemiprune.core.finalize as fin
    torch.set_num_threads(1)
    probes = [0]
    orig = fin._hard_masks

    def counted(*a, **k):
        probes[0] += 1
        return orig(*a, **k)

    def reset(model):  # after the warm-up: count the probes of the measured step only
        assert model.pruner.soft_projection and model.pruner.update_every == 1
        probes[0] = 0

    monkeypatch.setattr(fin, '_hard_masks', counted)
    out = {}
    for stages in (4, 7):
        stock = step_cost(stages, False)[0]
        syncs, nz, _, names, L = step_cost(stages, True, before=reset, target_macs=0.4)
        assert probes[0] >= 1 and nz == 0, (probes, names)
        out[stages] = ((syncs - stock) / probes[0], probes[0], L)
    assert out[4][0] <= 6 and out[7][0] <= 6 and abs(out[4][0] - out[7][0]) < 0.5, out
