"""SemiPruneHook and the training-time logging of the pruned recognizer.

Part 1 reads the shared tiny ``tools/train.py`` run (``demo_run`` in tests/conftest.py: the ST-GCN demo
config, 8 iterations, logged every iteration): ``loss_prune`` is a summed loss term, ``prune_rate`` /
``prune_tau`` are in the log line and ``vis_data/scalars.json``, the temperature follows the
iterations, and the checkpoints record the frozen binary masks.
Part 2 drives the hook directly with a stand-in runner (no Runner): end-of-training freeze and
BatchNorm re-estimation, the NaN guard, metrics, a dense model.
"""
import math
import os.path as osp
import types

import pytest
import torch

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmaction.utils import register_all_modules
from mmengine.config import Config
from mmsemiprune.core.schedule import PruneSchedule
from mmsemiprune.engine import SemiPruneHook
from mmsemiprune.engine.hooks import NonFiniteLossError

register_all_modules(init_default_scope=True)


def demo_schedule(demo_run):
    cfg = Config.fromfile(demo_run.cfg)
    return PruneSchedule(**dict(cfg.model.prune_cfg.get('schedule') or {})), cfg.model.prune_cfg.target_rate


def train_entries(demo_run):
    return [e for e in demo_run.scalars if 'loss' in e]


# -- part 1: the shared tiny run ---------------------------------------------------------------------
def test_log_line_has_prune_terms(demo_run):
    lines = [ln for ln in demo_run.log.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) == demo_run.max_iters
    for ln in lines:
        for key in ('loss_prune:', 'prune_rate:', 'prune_tau:', 'loss_cls:'):
            assert key in ln, f'{key} missing from the log line: {ln}'
    assert 'pruning report' in demo_run.log and 'weights-only pruned checkpoint' in demo_run.log


def test_mask_transitions_are_logged(demo_run):
    """The hook logs loss_cls of the step's batch with the masks before and after each change of kind (same
    weights): soft -> hard phase, then hard -> frozen, which must change nothing (the freeze keeps the
    hard-phase masks)."""
    import re
    pat = re.compile(r'masks (\w+) -> (\w+) at iteration (\d+): loss_cls of this batch with the same weights '
                     r'([\d.]+) -> ([\d.]+) \(([-+][\d.]+)%\), structural share ([\d.]+) -> ([\d.]+)')
    found = [m.groups() for m in pat.finditer(demo_run.log)]
    assert [f[:3] for f in found] == [('soft', 'hard', '7'), ('hard', 'frozen', '8')], found
    _, _, _, before, after, _, sb, sa = found[1]
    assert before == after and sb == sa  # frozen forward == last hard-phase forward, same gate decisions
    assert float(found[0][3]) > 0 and float(found[0][4]) > 0


def test_scalars_loss_rate_and_temperature(demo_run):
    entries = train_entries(demo_run)
    sched, target = demo_schedule(demo_run)
    n = demo_run.max_iters
    assert [e['step'] for e in entries] == list(range(1, n + 1))
    for e in entries:
        assert {'loss_prune', 'prune_rate', 'prune_tau', 'prune_gate_group_share'} <= set(e)
        # loss_prune is a loss term: it is part of the optimised total (mmengine sums keys with 'loss')
        assert e['loss'] == pytest.approx(e['loss_cls'] + e['loss_prune'], abs=2e-4)
    assert any(e['loss_prune'] > 0 for e in entries)
    # the schedule follows the iterations: progress p = iter / max_iters, the last iteration freezes
    frozen_from = None
    for it, e in enumerate(entries):
        p = 1.0 if it == n - 1 else it / n
        if sched.frozen(p):
            frozen_from = it
            break
        assert e['prune_tau'] == pytest.approx(sched.tau(p), rel=1e-3)
        assert e['prune_rate'] == pytest.approx(sched.rate(p, target), abs=1e-4)
    assert frozen_from is not None, 'the run never froze its masks'
    taus = [e['prune_tau'] for e in entries]
    assert taus[0] == pytest.approx(sched.tau_start) and taus[-1] < taus[0] / 10
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert len(set(taus)) >= 4, f'the temperature should anneal over several iterations: {taus}'
    assert entries[-1]['prune_rate'] == pytest.approx(target)
    # validation metrics carry the achieved rate (SemiPruneHook.after_val_epoch)
    val = [e for e in demo_run.scalars if 'acc/top1' in e]
    assert val and abs(val[-1]['prune_rate'] - target) <= 0.01


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def test_checkpoints_record_frozen_masks(demo_run):
    sd = _state(osp.join(demo_run.work_dir, 'epoch_2.pth'))
    masks = {k[:-len('_psi.mask')]: v for k, v in sd.items() if k.endswith('_psi.mask')}
    assert len(masks) >= 10 and all(k.endswith('.weight') for k in masks)
    n = kept = 0
    for k, m in masks.items():
        assert m.dtype == torch.bool
        assert bool(sd[f'{k}_psi.frozen']), f'{k} not frozen in the final checkpoint'
        assert m.shape == sd[k].shape
        n += m.numel()
        kept += int(m.sum())
    _, target = demo_schedule(demo_run)
    assert abs(1 - kept / n - target) <= 0.01
    assert float(sd['pruner.progress']) == 1.0 and float(sd['pruner.frozen_at']) >= 0.8
    assert float(sd['pruner.rate_now']) == pytest.approx(target)
    # mid-run (end of epoch 1): masks still soft, schedule position recorded
    sd1 = _state(osp.join(demo_run.work_dir, 'epoch_1.pth'))
    assert not any(bool(v) for k, v in sd1.items() if k.endswith('_psi.frozen'))
    assert float(sd1['pruner.progress']) == pytest.approx(3 / demo_run.max_iters)
    # the weights-only export: plain tensors (loads with weights_only=True), the same masks
    name = osp.splitext(osp.basename(demo_run.cfg))[0]
    exp = torch.load(osp.join(demo_run.work_dir, f'{name}_pruned.pth'), map_location='cpu', weights_only=True)
    assert set(exp) == {'state_dict', 'meta'}
    for k, m in masks.items():
        assert torch.equal(exp['state_dict'][f'{k}_psi.mask'], m)
    meta = exp['meta']['mmsemiprune']
    assert meta['target_rate'] == pytest.approx(target) and abs(meta['rate_params'] - target) <= 0.01
    assert meta['mode'] == 'semi'


# -- part 2: the hook with a stand-in runner -----------------------------------------------------------
class _Logger:
    def __init__(self):
        self.records = []

    def info(self, msg):
        self.records.append(('info', msg))

    def warning(self, msg):
        self.records.append(('warning', msg))


def tiny_model(schedule=None, pruned=True, **prune_cfg):
    torch.manual_seed(0)
    cfg = dict(type='RecognizerGCN',
               backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'),
                             base_channels=8, num_stages=3, inflate_stages=[3], down_stages=[3]),
               cls_head=dict(type='GCNHead', num_classes=4, in_channels=16))
    if pruned:
        cfg.update(type='mmsemiprune.SemiPruneRecognizerGCN',
                   prune_cfg=dict(target_rate=0.7, **({'schedule': schedule} if schedule else {}), **prune_cfg))
    return MODELS.build(cfg)


def fake_runner(model, tmp_path, epoch=0, max_epochs=1, loader=()):
    return types.SimpleNamespace(model=model, logger=_Logger(), epoch=epoch, max_epochs=max_epochs, iter=3,
                                 rank=0, work_dir=str(tmp_path), cfg=types.SimpleNamespace(filename='x/run.py'),
                                 train_dataloader=list(loader),
                                 message_hub=types.SimpleNamespace(get_info=lambda k: None,
                                                                   update_scalar=lambda *a, **k: None))


def batches(n=2):
    g = torch.Generator().manual_seed(0)
    return [dict(inputs=[torch.randn(1, 2, 12, 25, 3, generator=g) for _ in range(2)],
                 data_samples=[ActionDataSample().set_gt_labels(i) for i in range(2)]) for _ in range(n)]


def test_hook_freezes_and_recalibrates_bn_at_the_end(tmp_path, one_thread):
    model = tiny_model(schedule=dict(warmup=0.3, freeze=1.0))
    model.profile(torch.randn(1, 1, 2, 12, 25, 3))
    model.pruner.set_progress(0.97)  # the schedule never froze (freeze=1.0)
    assert not model.pruner.frozen
    bn = model.backbone.gcn[0].tcn.bn
    before = bn.running_mean.clone()
    hook = SemiPruneHook(bn_batches=2)
    runner = fake_runner(model, tmp_path, epoch=0, max_epochs=1, loader=batches(3))
    hook.after_train_epoch(runner)  # last epoch
    assert model.pruner.frozen and abs(model.pruner.report()['rate_params'] - 0.7) <= 0.01
    assert not torch.equal(bn.running_mean, before), 'BatchNorm statistics were not re-estimated'
    assert any('re-estimated BatchNorm statistics on 2 training batches' in m for _, m in runner.logger.records)
    # after_train: report + weights-only export by rank 0; a second _finish does nothing
    hook.after_train(runner)
    path = tmp_path / 'run_pruned.pth'
    sd = torch.load(path, weights_only=True)['state_dict']
    assert all(bool(v) for k, v in sd.items() if k.endswith('_psi.frozen'))
    assert any('pruning report' in m for _, m in runner.logger.records)
    metrics = {'acc/top1': 0.5}
    hook.after_val_epoch(runner, metrics)
    assert abs(metrics['prune_rate'] - 0.7) <= 0.01 and 'prune_structural_share' in metrics


def test_hook_nan_guard(tmp_path):
    hook = SemiPruneHook()
    runner = fake_runner(tiny_model(), tmp_path)
    hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(1.0)})
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss at iteration 4.*--resume'):
        hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(1.0), 'loss_prune': torch.tensor(math.nan)})


def test_hook_on_a_dense_model_warns_and_does_nothing(tmp_path):
    hook = SemiPruneHook()
    runner = fake_runner(tiny_model(pruned=False), tmp_path)
    hook.before_run(runner)
    assert any(level == 'warning' and 'no pruner' in m for level, m in runner.logger.records)
    hook.after_train_epoch(runner)
    hook.after_train(runner)
    metrics = {}
    hook.after_val_epoch(runner, metrics)
    assert metrics == {} and not list(tmp_path.iterdir())


def test_gate_logits_get_their_own_group_and_stop_at_the_freeze(one_thread):
    """gate_group: weight decay 0 while masks are soft; lr 0 and no momentum once frozen."""
    import types

    import torch.nn.functional as F
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    from mmsemiprune.engine import SemiPruneHook
    from tests.models.test_recognizer import batch, build

    model = build('stgcn', 'semi', 0.8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    runner = types.SimpleNamespace(optim_wrapper=OptimWrapper(opt), logger=MMLogger.get_instance('gate-group-test'),
                                   work_dir='.')
    hook = SemiPruneHook()
    hook._split_gate_group(runner, model)
    gates = [m.gate.logit for m in model.pruner.masks]
    gate_groups = [g for g in opt.param_groups if g.get('gate_group')]
    assert len(gate_groups) == 1 and gate_groups[0]['weight_decay'] == 0.0
    assert {id(p) for p in gate_groups[0]['params']} == {id(p) for p in gates}
    assert all(id(p) not in {id(q) for q in gates} for g in opt.param_groups if not g.get('gate_group')
               for p in g['params'])
    assert sum(len(g['params']) for g in opt.param_groups) == len(list(model.parameters()))
    x, ds = batch()

    def step():
        opt.zero_grad()
        sum(v for k, v in model.loss(x, ds).items() if k.startswith('loss')).backward()
        opt.step()
    model.train()
    model.pruner.set_progress(0.5)
    step()
    model.pruner.freeze()
    before = [g.detach().clone() for g in gates]
    hook._stop_gates(runner)
    for _ in range(3):
        step()
    for g, b in zip(gates, before):
        assert torch.equal(g.detach(), b)


def test_momentum_of_masked_tensors_cleared_once_masks_are_hard(one_thread):
    """reset_momentum: the optimizer state built from soft-mask gradients is dropped when masks become hard."""
    import types

    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper

    from mmsemiprune.engine import SemiPruneHook
    from tests.models.test_recognizer import batch, build

    model = build('stgcn', 'semi', 0.8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    runner = types.SimpleNamespace(optim_wrapper=OptimWrapper(opt), logger=MMLogger.get_instance('momentum-test'))
    x, ds = batch()
    model.train()
    model.pruner.set_progress(0.5)
    sum(v for k, v in model.loss(x, ds).items() if k.startswith('loss')).backward()
    opt.step()
    latents = [w for _, _, w in model.pruner.items()]
    gates = [m.gate.logit for m in model.pruner.masks]
    others = [p for p in model.parameters() if all(p is not w for w in latents + gates) and p.grad is not None]
    assert others
    assert all('momentum_buffer' in opt.state[w] for w in latents)
    hook = SemiPruneHook()
    hook._reset_momentum(runner, model)
    assert all(w not in opt.state for w in latents + gates)
    assert all(p in opt.state for p in others)  # BatchNorm, head, biases keep theirs


@pytest.mark.parametrize('on', [True, False])
def test_hook_retains_freed_memory_on_a_cpu_run(tmp_path, monkeypatch, on):
    """before_run of a CPU run asks glibc to keep freed memory (engine/allocator.py) and logs the outcome; off with
    SemiPruneHook(retain_freed_memory=False); a dense model (no pruner) is left alone."""
    from mmsemiprune.engine import allocator
    calls = []
    monkeypatch.setattr(allocator, 'retain_freed_memory', lambda: calls.append(1) or 'applied')
    runner = fake_runner(tiny_model(), tmp_path, loader=batches(1))
    runner.optim_wrapper = {}  # (the gate group needs a real optimizer: not what this test is about)
    SemiPruneHook(retain_freed_memory=on).before_run(runner)
    assert calls == ([1] if on else [])
    assert any('keeps freed memory for reuse: applied' in m for _, m in runner.logger.records) == on
    SemiPruneHook().before_run(fake_runner(tiny_model(pruned=False), tmp_path))
    assert calls == ([1] if on else [])


@pytest.mark.parametrize('ablation,hook_kw,want', [
    (None, {}, (True, True)),
    (dict(gate_group=False, reset_momentum=False), {}, (False, False)),
    (dict(gate_group=False, reset_momentum=False), dict(gate_group=True), (True, False)),
    (None, dict(reset_momentum=False), (True, False)),
])
def test_gate_group_and_reset_momentum_follow_prune_cfg_ablation(tmp_path, one_thread, ablation, hook_kw, want):
    """The hook's ablation switches default to prune_cfg.ablation; an argument given to the hook wins."""
    from mmengine.optim import OptimWrapper
    model = tiny_model(**(dict(ablation=ablation) if ablation else {}))
    runner = fake_runner(model, tmp_path)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    runner.optim_wrapper = OptimWrapper(opt)
    hook = SemiPruneHook(retain_freed_memory=False, **hook_kw)
    hook.before_run(runner)
    assert (hook.gate_group, hook.reset_momentum) == want
    assert any(g.get('gate_group') for g in opt.param_groups) == want[0]
