"""Training faults and reproducibility (real tools/train.py processes, tiny config: 3 epochs x 2 iterations).

- a NaN loss stops the run with one message naming the iteration and the last good checkpoint;
- a run SIGKILLed in the middle of epoch 3 and continued with ``--resume`` ends bit-identical to an
  uninterrupted run with the same seed (frozen masks, weights, schedule position, logged losses): the
  kill-style resume test (the clean max_epochs-style resume is tested elsewhere);
- two runs with ``randomness=dict(seed=0, deterministic=True)`` give identical masks and accuracy;
- the final ``*_pruned.pth`` is plain tensors that load with ``torch.load(weights_only=True)``; a training
  checkpoint in the run's own work dir loads without ``--trust-checkpoint``.
"""
import json
import os
import os.path as osp
import subprocess

import pytest
import torch
from conftest import run_tool

pytestmark = pytest.mark.slow

RUN_HOOKS = """
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook'), dict(type='RelKillAtIter', iter=6)]
"""


def _train(cfg, work, *extra):
    code, out, err = run_tool('train', cfg, '--work-dir', work, *extra)
    return code, out + err


def _scalars(work):
    """Logged training/validation scalars of all runs in ``work``, keyed by (kind, step), without timings."""
    rows = {}
    for d in sorted(os.listdir(work)):
        f = osp.join(work, d, 'vis_data', 'scalars.json')
        if osp.isfile(f):
            for line in open(f):
                r = json.loads(line)
                kind = 'val' if 'acc/top1' in r else 'train'
                rows[(kind, r['step'])] = {k: v for k, v in r.items() if k not in ('time', 'data_time')}
    return rows


@pytest.fixture(scope='module')
def runs(write_config, tmp_path_factory):
    """Uninterrupted run A, identical run A2, run B killed (SIGKILL) before iteration 6 then resumed."""
    cfg = write_config('rel_run', epochs=3, extra=RUN_HOOKS)
    root = tmp_path_factory.mktemp('relruns')
    res = {'cfg': cfg}
    for name in ('A', 'A2'):
        work = root / name
        work.mkdir()
        (work / 'KILLED').touch()  # marker: RelKillAtIter does nothing
        code, log = _train(cfg, work)
        assert code == 0, log[-3000:]
        res[name] = str(work)
    work = root / 'B'
    code, log = _train(cfg, work)
    assert code == -9, (code, log[-3000:])  # really killed, mid-epoch 3 (iteration 5 done, 6 not)
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    code, log = _train(cfg, work, '--resume')
    assert code == 0, log[-3000:]
    res['B'], res['B_log'] = str(work), log
    return res


def _final(work):
    return torch.load(osp.join(work, 'rel_run_pruned.pth'), weights_only=True)


def test_kill_and_resume_reproduces_the_uninterrupted_run(runs):
    assert 'resumed epoch: 2, iter: 4' in runs['B_log']  # from its own work dir: no --trust-checkpoint needed
    a, b = _final(runs['A'])['state_dict'], _final(runs['B'])['state_dict']
    assert a.keys() == b.keys()
    masks = [k for k in a if k.endswith('_psi.mask')]
    assert len(masks) == 5 and all(bool(a[k.replace('.mask', '.frozen')]) for k in masks)
    assert [k for k in masks if not torch.equal(a[k], b[k])] == []  # the final frozen masks, exactly
    for k in ('pruner.progress', 'pruner.frozen_at', 'pruner.rate_now'):  # schedule position
        assert torch.equal(a[k], b[k]), k
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # weights and BN statistics too
    sa, sb = _scalars(runs['A']), _scalars(runs['B'])
    for step in (5, 6):  # the iterations redone after the resume
        assert sa[('train', step)] == sb[('train', step)]
    assert sa[('val', 3)] == sb[('val', 3)]
    assert _final(runs['A'])['meta'] == _final(runs['B'])['meta']


def test_same_seed_deterministic_runs_are_identical(runs):
    a, a2 = _final(runs['A']), _final(runs['A2'])
    assert [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k], a2['state_dict'][k])] == []
    assert a['meta'] == a2['meta']
    sa, sa2 = _scalars(runs['A']), _scalars(runs['A2'])
    assert sa.keys() == sa2.keys() and len(sa) == 9  # 6 training iterations + 3 validations
    assert sa == sa2  # every loss, prune_rate, temperature and accuracy


def _plain(x):
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))


def test_pruned_file_is_weights_only_and_training_checkpoints_load_from_the_work_dir(runs, run_tool_inproc):
    path = osp.join(runs['A'], 'rel_run_pruned.pth')
    ck = torch.load(path, weights_only=True)
    assert set(ck) == {'state_dict', 'meta'} and _plain(ck)
    assert all(isinstance(v, torch.Tensor) for v in ck['state_dict'].values())
    assert ck['meta']['mmsemiprune']['target_rate'] == 0.8
    # a full training checkpoint in the run's own work dir: tools/test.py loads it without any flag
    code, err = run_tool_inproc('test', runs['cfg'], osp.join(runs['A'], 'epoch_3.pth'), '--work-dir', runs['A'])
    assert code == 0, err[-3000:]
    # ... but the same file copied elsewhere needs trust
    other = osp.join(osp.dirname(runs['A']), 'copied_epoch_3.pth')
    with open(osp.join(runs['A'], 'epoch_3.pth'), 'rb') as f, open(other, 'wb') as g:
        g.write(f.read())
    code, err = run_tool_inproc('test', runs['cfg'], other, '--work-dir', osp.join(runs['A'], 'test_other'))
    assert code == 2 and '--trust-checkpoint' in err
    code, err = run_tool_inproc('test', runs['cfg'], other, '--work-dir', osp.join(runs['A'], 'test_other'),
                                '--trust-checkpoint')
    assert code == 0, err[-3000:]


def test_nan_loss_stops_with_step_and_last_good_checkpoint(write_config, tmp_path):
    cfg = write_config('rel_nan', epochs=2, extra="""
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook'), dict(type='RelNaNAtIter', iter=3)]
""")
    work = tmp_path / 'w'
    code, log = _train(cfg, work)
    assert code == 2, log[-3000:]
    assert 'Traceback' not in log
    (line, ) = [ln for ln in log.splitlines() if ln.startswith('error:')]
    assert line == (f"error: non-finite loss at iteration 3 (epoch 2): {{'loss': nan, 'loss_cls': nan}}. "
                    f'Last good checkpoint: {work}/epoch_1.pth. Lower the learning rate or budget_weight, check '
                    'the data for NaN/inf, then resume with --resume.')
    assert not osp.exists(work / 'epoch_2.pth')  # the run stopped; no NaN checkpoint was written
    assert open(work / 'last_checkpoint').read().strip() == f'{work}/epoch_1.pth'


def test_nan_loss_before_any_checkpoint(write_config, tmp_path, run_tool_inproc):
    cfg = write_config('rel_nan_first', epochs=1, extra="""
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook'), dict(type='RelNaNAtIter', iter=1)]
""")
    code, err = run_tool_inproc('train', cfg, '--work-dir', tmp_path / 'w')
    assert code == 2
    assert 'error: non-finite loss at iteration 1 (epoch 1)' in err
    assert 'Last good checkpoint: none saved yet.' in err


def test_subprocess_signal_is_real_kill():
    """Guard for the kill test: a SIGKILLed child reports -9 (nothing ran its cleanup)."""
    p = subprocess.run(['sh', '-c', 'kill -9 $$'])
    assert p.returncode == -9
