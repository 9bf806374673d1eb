"""tools/test.py and tools/train.py --resume on the shared tiny run (``demo_run``, tests/conftest.py).

- ``tools/test.py CONFIG CHECKPOINT`` reports MMAction2's AccMetric (top-1 / top-5 / mean-class) and a
  ``prune_rate`` line, with the weights-only ``*_pruned.pth`` and with a full ``epoch_N.pth`` of the run.
- An interrupted run (simulated crash after the epoch-1 checkpoint) resumed with ``--resume`` ends with
  the same frozen masks, schedule position and weights as the uninterrupted run (seed 0, deterministic).
"""
import os.path as osp
import re

import pytest
import torch

ACC = re.compile(r'acc/top1: ([0-9.]+)\s+acc/top5: ([0-9.]+)\s+acc/mean1: ([0-9.]+)')


def final_val(demo_run):
    val = [e for e in demo_run.scalars if 'acc/top1' in e]
    assert val
    return val[-1]


@pytest.mark.parametrize('which', ['pruned', 'epoch'])
def test_test_py_reports_accuracy_and_rate(which, demo_run, run_tool, sp, tmp_path):
    name = osp.splitext(osp.basename(demo_run.cfg))[0]
    ckpt = osp.join(demo_run.work_dir, f'{name}_pruned.pth' if which == 'pruned' else 'epoch_2.pth')
    # a full checkpoint needs unpickling: allowed because it lies in the run's own work dir
    work = demo_run.work_dir if which == 'epoch' else tmp_path / 'test_work'
    proc = run_tool('test.py', demo_run.cfg, ckpt, '--work-dir', work)
    assert proc.returncode == 0, sp.tail(proc)
    out = proc.output
    m = ACC.search(out.split('metrics:')[-1])
    assert m, f'no AccMetric result (acc/top1, acc/top5, acc/mean1) in:\n{out[-2000:]}'
    top1, top5, mean1 = map(float, m.groups())
    assert 0 <= top1 <= top5 <= 1 and 0 <= mean1 <= 1
    rate_line = [ln for ln in out.splitlines() if ln.startswith('prune_rate:')]
    assert rate_line, f'no prune_rate line in:\n{out[-2000:]}'
    rate = float(re.match(r'prune_rate: ([0-9.]+)', rate_line[-1]).group(1))
    assert abs(rate - demo_run.target_rate) <= 0.01 and 'frozen: True' in rate_line[-1]
    # same model, same data and pipeline as the run's last validation -> same accuracy
    val = final_val(demo_run)
    assert (top1, top5, mean1) == pytest.approx((val['acc/top1'], val['acc/top5'], val['acc/mean1']), abs=1e-4)


def test_resume_matches_uninterrupted_run(demo_run, run_tool, sp, tmp_path):
    cfg = tmp_path / 'demo_stop.py'
    cfg.write_text(f"_base_ = {demo_run.cfg!r}\n"
                   "custom_imports = dict(imports=['mmsemiprune', 'sp_test_hooks'], allow_failed_imports=False)\n"
                   "custom_hooks = [dict(type='mmsemiprune.SemiPruneHook', log_interval=1),\n"
                   "                dict(type='SPTestStopHook', stop_epoch=1)]\n")
    work = tmp_path / 'work'
    proc = run_tool('train.py', cfg, '--work-dir', work)
    assert proc.returncode != 0 and 'simulated interruption after epoch 1' in proc.output, sp.tail(proc)
    assert osp.isfile(work / 'epoch_1.pth') and not osp.exists(work / 'epoch_2.pth')
    # resume in the same work dir with the original config (no crash hook)
    proc = run_tool('train.py', demo_run.cfg, '--work-dir', work, '--resume')
    assert proc.returncode == 0, sp.tail(proc)
    assert re.search(r'resumed epoch: 1, iter: 4', proc.output), sp.tail(proc)
    ref = torch.load(osp.join(demo_run.work_dir, 'epoch_2.pth'), map_location='cpu', weights_only=False)['state_dict']
    got = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert ref.keys() == got.keys()
    masks = [k for k in ref if k.endswith('_psi.mask')]
    assert masks
    for k in masks:
        assert torch.equal(ref[k], got[k]), f'{k}: resumed run froze another mask'
        assert bool(got[k.replace('.mask', '.frozen')])
    for k in ('pruner.progress', 'pruner.rate_now', 'pruner.frozen_at'):
        assert float(got[k]) == float(ref[k]), k
    for k, v in ref.items():
        if v.is_floating_point():
            assert torch.allclose(v, got[k], atol=1e-5), f'{k} differs after resuming'
    # the resumed part logged the same schedule as the uninterrupted run
    res = [e for e in sp.read_scalars(str(work)) if 'prune_tau' in e]
    full = {e['step']: e for e in demo_run.scalars if 'prune_tau' in e}
    assert [e['step'] for e in res] == [5, 6, 7, 8]
    for e in res:
        assert e['prune_tau'] == pytest.approx(full[e['step']]['prune_tau'])
        assert e['prune_rate'] == pytest.approx(full[e['step']]['prune_rate'])
