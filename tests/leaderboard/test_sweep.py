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
    # fold-major: all of fold 1 (sbu, then fpha's only split), then fold 2; dense first in a fold; no
    # "seeds" in the spec: seed 0
    assert names[0] == 'sbu/stgcn/fold1/seed0/dense'
    assert names[1:5] == ['sbu/stgcn/fold1/seed0/semi_r0.5', 'sbu/stgcn/fold1/seed0/semi_r0.9',
                          'sbu/stgcn/fold1/seed0/magnitude_r0.5', 'sbu/stgcn/fold1/seed0/magnitude_r0.9']
    assert names[5:7] == ['fpha/stgcn/split/seed0/dense', 'fpha/stgcn/split/seed0/structured_r0.9']
    assert names[7] == 'sbu/stgcn/fold2/seed0/dense'
    assert len(set(names)) == len(names) and all(r.seed == 0 for r in runs)


def test_seeds_expand_name_and_pair_with_their_dense_run():
    spec = dict(groups=[dict(SPEC['groups'][0], seeds=[0, 1, 2]), dict(SPEC['groups'][1], seeds=[0, 1, 2])])
    runs = expand_sweep(spec)
    assert len(runs) == 3 * 12
    names = [r.rel_dir() for r in runs]
    # seed-major: the whole sweep for seed 0 first, then seed 1, then seed 2
    assert names[0] == 'sbu/stgcn/fold1/seed0/dense' and names[12] == 'sbu/stgcn/fold1/seed1/dense'
    assert names[24:26] == ['sbu/stgcn/fold1/seed2/dense', 'sbu/stgcn/fold1/seed2/semi_r0.5']
    assert [r.seed for r in runs] == [0] * 12 + [1] * 12 + [2] * 12
    s = [r for r in runs if r.method == 'semi' and r.seed == 2 and r.fold == 2 and r.rate == 0.9][0]
    assert s.dense_twin().rel_dir() == 'sbu/stgcn/fold2/seed2/dense' and s.dense_twin().seed == 2
    assert len({r.key for r in runs}) == len(runs)
    with pytest.raises(ValueError, match='seeds'):
        expand_sweep(dict(groups=[dict(SPEC['groups'][0], seeds=[0, 0])]))
    with pytest.raises(ValueError, match='seeds'):
        expand_sweep(dict(groups=[dict(SPEC['groups'][0], seeds=[-1])]))


def test_seed_sets_randomness_and_dense_start():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    r = RunSpec('sbu', 'stgcn', 'semi', osp.join(ROOT, 'configs/leaderboard/stgcn_sbu.py'), 0.9, 3,
                prune=dict(epochs=4), seed=2)
    assert build_run_config(r, dense_ckpt='/x/d.pth').randomness.seed == 2
    assert build_run_config(r.dense_twin()).randomness.seed == 2


def test_legacy_dirs_read_as_seed0(tmp_path):
    """Results of sweeps run before seeds existed (<fold>/<method>, no seed dir) stay seed 0's."""
    from mmsemiprune.leaderboard import load_results
    runs = expand_sweep(SPEC)
    rd = str(tmp_path)
    old = osp.join(rd, 'sbu/stgcn/fold1/semi_r0.9')
    os.makedirs(old)
    with open(osp.join(old, 'result.json'), 'w') as f:
        json.dump(dict(top1=0.5, mean_class=0.5), f)  # no seed key
    r = [x for x in runs if x.rel_dir() == 'sbu/stgcn/fold1/seed0/semi_r0.9'][0]
    assert RunPaths(rd, r).work_dir == old and run_status(rd, r) == 'done'
    res = load_results(rd, runs)
    assert len(res) == 1 and res[0]['seed'] == 0 and res[0]['method'] == 'semi'
    assert load_results(rd)[0]['seed'] == 0  # walking the runs dir, too
    # another seed never falls back; a new run of seed 0 goes to the seeded dir
    r1 = RunSpec(**dict(r.to_dict(), seed=1))
    assert RunPaths(rd, r1).work_dir.endswith('fold1/seed1/semi_r0.9') and run_status(rd, r1) == 'pending'
    r2 = [x for x in runs if x.rel_dir() == 'sbu/stgcn/fold1/seed0/semi_r0.5'][0]
    assert RunPaths(rd, r2).work_dir.endswith('fold1/seed0/semi_r0.5')


def test_timing_adds_up_resumed_segments(tmp_path):
    """A run trained in segments (killed, resumed) reports the sum of all of them."""
    from mmsemiprune.leaderboard.runs import record_segment, train_seconds
    wd = tmp_path / 'run'
    wd.mkdir()
    t = str(wd / 'timing.json')
    # segment 1: 100 s, closed normally
    record_segment(t, 1000.0, None)
    record_segment(t, 1000.0, 100.0)
    # segment 2 killed: opened, never closed; its last write (a checkpoint) at t = 2000 + 40
    record_segment(t, 2000.0, None)
    ck = wd / 'epoch_1.pth'
    ck.write_text('x')
    os.utime(ck, (2040.0, 2040.0))
    # segment 3 (the resume) starts later and closes the killed one at its last write
    record_segment(t, 5000.0, None)
    record_segment(t, 5000.0, 60.0)
    got = train_seconds(str(wd))
    assert got == dict(train_s=pytest.approx(200.0), train_segments=3)
    # a run whose training had finished and is only re-evaluated keeps its training time
    assert train_seconds(str(wd))['train_s'] == pytest.approx(200.0)


def test_timing_of_older_runs_from_mmengine_sessions(tmp_path):
    """No timing.json: one MMEngine session dir per (re)start, from its name to its log's last write."""
    import time
    from mmsemiprune.leaderboard.runs import train_seconds
    for stamp, dur in (('20260101_100000', 300.0), ('20260101_120000', 200.0)):
        d = tmp_path / stamp
        d.mkdir()
        log = d / f'{stamp}.log'
        log.write_text('...')
        start = time.mktime(time.strptime(stamp, '%Y%m%d_%H%M%S'))
        os.utime(log, (start + dur, start + dur))
    (tmp_path / 'test').mkdir()  # the evaluation's dir is not a training session
    assert train_seconds(str(tmp_path)) == dict(train_s=pytest.approx(500.0), train_segments=2)


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


def test_v2_sweep_every_method_every_dataset():
    from mmsemiprune.leaderboard import run_epochs
    runs = expand_sweep(load_sweep(osp.join(ROOT, 'configs/leaderboard/sweep_v2.yaml')))
    # every method: 3 seeds x (SBU 5 folds x (dense + 6 x 4 rates) + FPHA, MSR3D x (dense + 6 x 3 rates)); semi-t48:
    # 3 seeds x (5 + 2) splits x 2 rates (its dense runs are the plain group's); semi_oneshot-t48 the same
    assert len(runs) == 3 * (5 * (1 + 6 * 4) + 2 * (1 + 6 * 3)) + 2 * 3 * 7 * 2
    t48 = [r for r in runs if r.variant == 't48']
    assert len(t48) == 84 and all(r.prune['target_macs'] == 0.48 for r in t48)
    assert sum(r.method == 'semi' for r in t48) == sum(r.method == 'semi_oneshot' for r in t48) == 42
    runs = [r for r in runs if not r.variant]
    methods = {'dense', 'semi', 'semi_oneshot', 'structured', 'unstructured', 'magnitude', 'l1_channel'}
    for ds in ('sbu', 'fpha', 'msr3d'):
        sub = [r for r in runs if r.dataset == ds]
        assert {r.method for r in sub} == methods and {r.seed for r in sub} == {0, 1, 2}
        assert {0.8, 0.9, 0.95} <= {r.rate for r in sub if r.rate}
        # equal post-freeze fine-tune: learned = mask phase + the one-shot methods' whole run
        semi = [r for r in sub if r.method == 'semi'][0]
        mag = [r for r in sub if r.method == 'magnitude'][0]
        es, em = run_epochs('semi', semi.prune, 0), run_epochs('magnitude', mag.prune, 0)
        assert es['finetune'] == em['epochs'] == em['finetune'] and es['epochs'] == es['mask'] + es['finetune']
    assert {r.rate for r in runs if r.dataset == 'sbu' and r.rate} == {0.5, 0.8, 0.9, 0.95}


def test_ablation_sweep_has_every_step_with_three_seeds():
    """The semi ablation (sweep_ablation.yaml): every semi step A0-A7t at rates 0.9 / 0.95 on SBU (5 folds) and FPHA with seeds 0, 1, 2;
    the steps that predate the soft projection have it off, A7 on; A6 changes only the learning rate of A5."""
    runs = expand_sweep(load_sweep(osp.join(ROOT, 'configs/leaderboard/sweep_ablation.yaml')))
    steps = ['A0', 'A1', 'A2', 'A3', 'A4', 'A5', 'A6', 'A7', 'A7t']
    for ds, folds in (('sbu', {1, 2, 3, 4, 5}), ('fpha', {None})):
        for v in steps:
            sub = [r for r in runs if r.dataset == ds and r.method == 'semi' and r.variant == v]
            assert {(r.fold, r.seed, r.rate) for r in sub} == {(f, s, q) for f in folds for s in (0, 1, 2)
                                                                 for q in (0.9, 0.95)}, (ds, v)
            cfg = {**sub[0].prune, **sub[0].method_cfg}
            if 'target_macs' in cfg:
                assert cfg.get('soft_projection', True) == (v in ('A7', 'A7t')), (ds, v)
            assert ('target_macs' in cfg) == (v not in ('A0', 'A1', 'A2')), (ds, v)
        a5 = [r for r in runs if r.dataset == ds and r.variant == 'A5' and r.method == 'semi'][0]
        a6 = [r for r in runs if r.dataset == ds and r.variant == 'A6' and r.method == 'semi'][0]
        c5, c6 = {**a5.prune, **a5.method_cfg}, {**a6.prune, **a6.method_cfg}
        assert c5['lr'] == 0.05 and c6['lr'] == 0.02 and dict(c5, lr=0) == dict(c6, lr=0), (c5, c6)


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
    assert prune_cfg_for('magnitude', 0.9) == dict(mode='unstructured', schedule='oneshot', scorer='magnitude',
                                                   target_rate=0.9)
    assert prune_cfg_for('l1_channel', 0.8) == dict(mode='structured', schedule='oneshot', scorer='l1',
                                                    target_rate=0.8)
    c = prune_cfg_for('semi', 0.5, dict(epochs=3, lr=0.1, schedule=dict(warmup=0.2)), dict(budget_weight=2.0))
    assert c == dict(mode='semi', target_rate=0.5, schedule=dict(warmup=0.2), budget_weight=2.0)
    # one-shot baselines keep their schedule='oneshot' (a group's schedule is not theirs)
    assert prune_cfg_for('magnitude', 0.5, dict(schedule=dict(warmup=0.2)))['schedule'] == 'oneshot'
    # method_cfg merges the ablation sub-dict key by key
    c = prune_cfg_for('semi_oneshot', 0.9, {}, dict(ablation=dict(projection_search='bisect')))
    assert c['ablation'] == dict(gate_init='score', projection_search='bisect')


def test_build_run_config_fold_and_method():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    r = RunSpec('sbu', 'stgcn', 'l1_channel', osp.join(ROOT, 'configs/leaderboard/stgcn_sbu.py'), 0.9, 3,
                prune=dict(epochs=4, lr=0.02))
    cfg = build_run_config(r, dense_ckpt='/x/dense_weights.pth')
    assert cfg.train_dataloader.dataset.split == 'fold3_fit' and cfg.val_dataloader.dataset.split == 'fold3_val'
    assert cfg.test_dataloader.dataset.split == 'fold3_test'
    assert cfg.model.type == 'mmsemiprune.SemiPruneRecognizerGCN'
    assert cfg.model.prune_cfg == dict(mode='structured', schedule='oneshot', scorer='l1', target_rate=0.9)
    assert cfg.train_cfg.max_epochs == 4 and cfg.param_scheduler[0].T_max == 4
    assert cfg.optim_wrapper.optimizer.lr == 0.02 and cfg.load_from == '/x/dense_weights.pth'
    d = build_run_config(r.dense_twin())
    assert d.model.type == 'RecognizerGCN' and 'prune_cfg' not in d.model
    with pytest.raises(ValueError, match='dense checkpoint'):
        build_run_config(r)


def test_equal_finetune_schedule():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    prune = dict(mask_epochs=4, finetune_epochs=8, lr=0.05, schedule=dict(warmup=0.1), new_option=3)
    cfgp = osp.join(ROOT, 'configs/leaderboard/stgcn_sbu.py')
    semi = build_run_config(RunSpec('sbu', 'stgcn', 'semi', cfgp, 0.9, 1, prune=prune), dense_ckpt='d.pth')
    mag = build_run_config(RunSpec('sbu', 'stgcn', 'magnitude', cfgp, 0.9, 1, prune=prune), dense_ckpt='d.pth')
    assert semi.train_cfg.max_epochs == 12 and mag.train_cfg.max_epochs == 8
    assert semi.model.prune_cfg.schedule == dict(warmup=0.1, freeze=4 / 12)
    assert semi.model.prune_cfg.new_option == 3 and mag.model.prune_cfg.new_option == 3  # keys pass through
    assert mag.model.prune_cfg.schedule == 'oneshot' and 'finetune_epochs' not in semi.model.prune_cfg
    # the learned run's lr is constant for the mask phase, then the one-shot run's cosine
    (s, ), (m, ) = semi.param_scheduler, mag.param_scheduler
    assert (s.begin, s.end, s.T_max) == (4, 12, 8) and (m.begin, m.end, m.T_max) == (0, 8, 8)


def test_method_prune_overrides_merge():
    spec = dict(groups=[dict(SPEC['groups'][0], method_prune=dict(magnitude=dict(lr=0.01, schedule=dict(a=1))))])
    runs = expand_sweep(spec)
    mag = [r for r in runs if r.method == 'magnitude'][0]
    semi = [r for r in runs if r.method == 'semi'][0]
    assert mag.prune == dict(epochs=3, lr=0.01, schedule=dict(a=1)) and semi.prune == dict(epochs=3)
    with pytest.raises(ValueError, match='unknown method'):
        expand_sweep(dict(groups=[dict(SPEC['groups'][0], method_prune=dict(nope={}))]))


def test_variant_shares_dense_and_gets_own_rows(tmp_path):
    spec = dict(groups=[SPEC['groups'][0], dict(SPEC['groups'][0], methods=['dense', 'semi'], variant='ft50',
                                               prune=dict(epochs=3, schedule=dict(freeze=0.5)))])
    runs = expand_sweep(spec)
    names = [r.rel_dir() for r in runs]
    assert names.count('sbu/stgcn/fold1/seed0/dense') == 1  # the dense run is shared
    assert 'sbu/stgcn/fold1/seed0/semi-ft50_r0.9' in names and 'sbu/stgcn/fold1/seed0/semi_r0.9' in names
    v = [r for r in runs if r.variant][0]
    assert v.label == 'semi-ft50' and v.dense_twin().rel_dir() == 'sbu/stgcn/fold1/seed0/dense'
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
    assert '16 sweep runs, 16 to run' in out and out.count('fold1/seed0/dense') == 1
    assert 'fold2/seed0/semi-v_r0.9' in out
