"""Tiny end-to-end leaderboard on synthetic demo data (1 epoch dense, 1 epoch semi from it), and a
check of the real-data configs when /work/shared/data is present."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHARED = '/work/shared/data'

pytest.importorskip('mmaction')


@pytest.fixture(scope='module')
def demo_pkl(tmp_path_factory):
    d = tmp_path_factory.mktemp('demo')
    pkl = str(d / 'demo.pkl')
    subprocess.check_call([sys.executable, osp.join(ROOT, 'tools/make_demo_data.py'), pkl, '--num-train', '16',
                           '--num-val', '8'], cwd=ROOT, stdout=subprocess.DEVNULL)
    return pkl


def test_e2e_demo_sweep(tmp_path, demo_pkl):
    import yaml
    opts = {f'{k}_dataloader.dataset.ann_file': demo_pkl for k in ('train', 'val', 'test')}
    opts.update({'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, 'default_hooks.logger.interval': 1})
    spec = dict(title='demo board', runs_dir=str(tmp_path / 'runs'), out_dir=str(tmp_path / 'out'),
                groups=[dict(dataset='demo', backbone='stgcn', config='configs/demo/stgcn_semiprune_demo.py',
                             folds=[None], methods=['dense', 'semi'], rates=[0.8],
                             prune=dict(epochs=1, schedule=dict(warmup=0.3, freeze=0.7)), cfg_options=opts)])
    p = tmp_path / 'spec.yaml'
    p.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, 'tools/leaderboard.py', '--sweep', str(p), '--jobs', '1']
    dry = subprocess.run(cmd + ['--dry-run'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert 'pending  demo/stgcn/split/dense' in dry.stdout and '2 to run' in dry.stdout
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '[2/2]' in out.stdout and 'ETA' in out.stdout
    res = json.load(open(tmp_path / 'runs/demo/stgcn/split/semi_r0.8/result.json'))
    assert 0 <= res['top1'] <= 1 and abs(res['rate_params'] - 0.8) < 0.02
    assert res['flops_compact'] <= res['flops_dense'] and res['latency_ms'] > 0
    assert osp.isfile(tmp_path / 'runs/demo/stgcn/split/dense/dense_weights.pth')
    for f in ('leaderboard.md', 'leaderboard.csv', 'leaderboard.png', 'runs.csv'):
        assert osp.isfile(tmp_path / 'out' / f)
    # recompute the report columns with the current code, keeping the accuracy
    ref = subprocess.run(cmd + ['--tables-only', '--refresh-report'], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0 and 'refreshed 2/2' in ref.stdout, ref.stdout[-2000:] + ref.stderr[-2000:]
    res2 = json.load(open(tmp_path / 'runs/demo/stgcn/split/semi_r0.8/result.json'))
    assert res2['top1'] == res['top1'] and res2['report_code'] and res2['rate_params'] == res['rate_params']
    # a second call skips both finished runs
    again = subprocess.run(cmd + ['--dry-run'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert '0 to run' in again.stdout


@pytest.mark.skipif(not osp.isdir(SHARED), reason=f'real skeleton data not present ({SHARED} is absent): '
                    'the SBU/FPHA leaderboard configs are checked only where the data is')
def test_real_data_configs_build():
    from mmsemiprune.leaderboard import build_run_config
    from mmsemiprune.leaderboard.spec import RunSpec
    for cfgp, fold in (('configs/leaderboard/stgcn_sbu.py', 2), ('configs/leaderboard/stgcn_fpha.py', None)):
        cfg = build_run_config(RunSpec('x', 'stgcn', 'semi', osp.join(ROOT, cfgp), 0.9, fold,
                                       prune=dict(epochs=2)), dense_ckpt='d.pth')
        assert cfg.model.prune_cfg.target_rate == 0.9
        if fold:
            assert cfg.train_dataloader.dataset.split == 'fold2_train'
