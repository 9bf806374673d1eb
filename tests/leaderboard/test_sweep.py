"""Sweep expansion, spec loading, skip-finished logic and method configs (no training)."""
import json
import os
import os.path as osp

import pytest

from mmsemiprune.leaderboard import (RunPaths, Scheduler, expand_sweep, load_sweep, pending_runs, prune_cfg_for,
                                     run_status)
from mmsemiprune.leaderboard.spec import RunSpec

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SPEC = dict(groups=[
    dict(dataset='sbu', backbone='stgcn', config='configs/leaderboard/stgcn_sbu.py', folds=[1, 2],
         methods=['semi', 'dense', 'magnitude'], rates=[0.5, 0.9], prune=dict(epochs=3)),
    dict(dataset='fpha', backbone='stgcn', config='configs/leaderboard/stgcn_fpha.py', folds=[None],
         methods=['dense', 'structured'], rates=[0.9]),
])


def test_expand_counts_and_order():
    runs = expand_sweep(SPEC)
    # sbu: 2 folds x (1 dense + 2 methods x 2 rates) = 10; fpha: 1 + 1 = 2
    assert len(runs) == 12
    names = [r.rel_dir() for r in runs]
    # fold-major: all of fold 1 (sbu, then fpha's only split), then fold 2; dense first in a fold
    assert names[0] == 'sbu/stgcn/fold1/dense'
    assert names[1:5] == ['sbu/stgcn/fold1/semi_r0.5', 'sbu/stgcn/fold1/semi_r0.9',
                          'sbu/stgcn/fold1/magnitude_r0.5', 'sbu/stgcn/fold1/magnitude_r0.9']
    assert names[5:7] == ['fpha/stgcn/split/dense', 'fpha/stgcn/split/structured_r0.9']
    assert names[7] == 'sbu/stgcn/fold2/dense'
    assert len(set(names)) == len(names)


def test_expand_rejects_bad_input():
    with pytest.raises(ValueError, match='unknown method'):
        expand_sweep(dict(groups=[dict(dataset='x', config='c.py', methods=['nope'], rates=[0.5])]))
    with pytest.raises(ValueError, match='rates'):
        expand_sweep(dict(groups=[dict(dataset='x', config='c.py', methods=['semi'])]))
    with pytest.raises(ValueError, match=r'not in \(0, 1\)'):
        expand_sweep(dict(groups=[dict(dataset='x', config='c.py', methods=['semi'], rates=[1.5])]))


@pytest.mark.parametrize('ext', ['yaml', 'json', 'py'])
def test_load_sweep_formats(tmp_path, ext):
    p = tmp_path / f'spec.{ext}'
    if ext == 'yaml':
        import yaml
        p.write_text(yaml.safe_dump(SPEC))
    elif ext == 'json':
        p.write_text(json.dumps(SPEC))
    else:
        p.write_text(f'groups = {SPEC["groups"]!r}\n')
    assert len(expand_sweep(load_sweep(str(p)))) == 12


def test_main_sweep_file_expands():
    runs = expand_sweep(load_sweep(osp.join(ROOT, 'configs/leaderboard/sweep_main.yaml')))
    assert len(runs) == 5 * (1 + 5 * 4) + (1 + 3 * 2)


def test_skip_finished(tmp_path):
    runs = expand_sweep(SPEC)
    rd = str(tmp_path)
    assert all(run_status(rd, r) == 'pending' for r in runs)
    done = runs[0]
    p = RunPaths(rd, done)
    os.makedirs(p.work_dir)
    with open(p.result, 'w') as f:
        json.dump(dict(top1=0.5, mean_class=0.5), f)
    partial = RunPaths(rd, runs[1])
    os.makedirs(partial.work_dir)
    open(osp.join(partial.work_dir, 'epoch_1.pth'), 'w').close()
    with open(osp.join(partial.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(partial.work_dir, 'epoch_1.pth'))
    assert run_status(rd, done) == 'done'
    assert run_status(rd, runs[1]) == 'partial'
    todo = pending_runs(rd, runs)
    assert done not in todo and runs[1] in todo and len(todo) == len(runs) - 1


def test_scheduler_waits_for_dense(tmp_path):
    runs = expand_sweep(SPEC)
    s = Scheduler(str(tmp_path), runs)
    assert s._ready(runs[0])  # dense
    assert not s._ready(runs[1])  # semi waits for dense_weights.pth of its fold
    p = RunPaths(str(tmp_path), runs[0])
    os.makedirs(p.work_dir)
    open(p.dense_weights, 'w').close()
    assert s._ready(runs[1])
    assert not s._ready([r for r in runs if r.fold == 2 and r.method == 'semi'][0])


def test_method_configs():
    assert prune_cfg_for('magnitude', 0.9) == dict(mode='unstructured', oneshot=True, normalize=False,
                                                   target_rate=0.9)
    assert prune_cfg_for('l1_channel', 0.8) == dict(mode='structured', oneshot=True, group_stat='l1',
                                                    target_rate=0.8)
    c = prune_cfg_for('semi', 0.5, dict(epochs=3, lr=0.1, schedule=dict(warmup=0.2)), dict(budget_weight=2.0))
    assert c == dict(mode='semi', target_rate=0.5, schedule=dict(warmup=0.2), budget_weight=2.0)
    # one-shot baselines must not get a schedule (the recognizer rejects it)
    assert 'schedule' not in prune_cfg_for('magnitude', 0.5, dict(schedule=dict(warmup=0.2)))


def test_build_run_config_fold_and_method():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    r = RunSpec('sbu', 'stgcn', 'l1_channel', osp.join(ROOT, 'configs/leaderboard/stgcn_sbu.py'), 0.9, 3,
                prune=dict(epochs=4, lr=0.02))
    cfg = build_run_config(r, dense_ckpt='/x/dense_weights.pth')
    assert cfg.train_dataloader.dataset.split == 'fold3_train'
    assert cfg.test_dataloader.dataset.split == 'fold3_test'
    assert cfg.model.type == 'mmsemiprune.SemiPruneRecognizerGCN'
    assert cfg.model.prune_cfg == dict(mode='structured', oneshot=True, group_stat='l1', target_rate=0.9)
    assert cfg.train_cfg.max_epochs == 4 and cfg.param_scheduler[0].T_max == 4
    assert cfg.optim_wrapper.optimizer.lr == 0.02 and cfg.load_from == '/x/dense_weights.pth'
    d = build_run_config(r.dense_twin())
    assert d.model.type == 'RecognizerGCN' and 'prune_cfg' not in d.model
    with pytest.raises(ValueError, match='dense checkpoint'):
        build_run_config(r)


def test_variant_shares_dense_and_gets_own_rows(tmp_path):
    spec = dict(groups=[SPEC['groups'][0], dict(SPEC['groups'][0], methods=['dense', 'semi'], variant='ft50',
                                               prune=dict(epochs=3, schedule=dict(freeze=0.5)))])
    runs = expand_sweep(spec)
    names = [r.rel_dir() for r in runs]
    assert names.count('sbu/stgcn/fold1/dense') == 1  # the dense run is shared
    assert 'sbu/stgcn/fold1/semi-ft50_r0.9' in names and 'sbu/stgcn/fold1/semi_r0.9' in names
    v = [r for r in runs if r.variant][0]
    assert v.label == 'semi-ft50' and v.dense_twin().rel_dir() == 'sbu/stgcn/fold1/dense'
    p = RunPaths(str(tmp_path), v)
    os.makedirs(p.work_dir)
    with open(p.result, 'w') as f:
        json.dump(dict(top1=0.5, mean_class=0.5), f)
    from mmsemiprune.leaderboard import load_results
    assert load_results(str(tmp_path), runs)[0]['method'] == 'semi-ft50'


def test_cli_dry_run_several_specs(tmp_path, capsys):
    import importlib.util
    import yaml
    spec = importlib.util.spec_from_file_location('lb_cli', osp.join(ROOT, 'tools/leaderboard.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    a.write_text(yaml.safe_dump(SPEC))
    b.write_text(yaml.safe_dump(dict(groups=[dict(SPEC['groups'][0], methods=['dense', 'semi'], variant='v')])))
    assert cli.main(['--sweep', str(a), str(b), '--runs-dir', str(tmp_path / 'runs'), '--dry-run']) == 0
    out = capsys.readouterr().out
    # 12 + 2 folds x 2 rates of semi-v; the dense runs are shared
    assert '16 sweep runs, 16 to run' in out and out.count('fold1/dense') == 1 and 'fold2/semi-v_r0.9' in out
