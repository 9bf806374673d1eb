"""End to end on synthetic demo data, with the package installed (non-editable, ``pip install --target``)
and run from a directory outside the repository: ``python -m mmsemiprune.leaderboard`` trains a dense
run and a semi run from it (1 epoch each, seed 1), evaluates, writes every table and plot, refreshes the
reports and skips finished runs. Also checks the real-data configs where /work/shared/data exists."""
import json
import os
import os.path as osp
import shutil
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


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A non-editable install of the package (from a copy of its sources, so nothing is written into the
    checkout) into a fresh folder: (site folder, user folder with a copy of configs/)."""
    base = tmp_path_factory.mktemp('inst')
    src = base / 'src'
    src.mkdir()
    shutil.copytree(osp.join(ROOT, 'mmsemiprune'), src / 'mmsemiprune',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    for f in ('setup.py', 'README.md'):
        shutil.copy(osp.join(ROOT, f), src / f)
    site = base / 'site'
    out = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index',
                          '--quiet', '--target', str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert osp.isfile(site / 'mmsemiprune' / 'leaderboard' / '__main__.py')
    user = base / 'user'
    shutil.copytree(osp.join(ROOT, 'configs'), user / 'configs')  # a user's own configs, outside the repo
    return str(site), str(user)


def test_e2e_installed_outside_repo(tmp_path, demo_pkl, installed):
    import yaml
    site, user = installed
    opts = {f'{k}_dataloader.dataset.ann_file': demo_pkl for k in ('train', 'val', 'test')}
    opts.update({'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, 'default_hooks.logger.interval': 1})
    spec = dict(title='demo board', runs_dir='runs', out_dir=str(tmp_path / 'out'),
                groups=[dict(dataset='demo', backbone='stgcn', config='configs/demo/stgcn_semiprune_demo.py',
                             folds=[None], seeds=[1], methods=['dense', 'semi'], rates=[0.8],
                             prune=dict(epochs=1, schedule=dict(warmup=0.3, freeze=0.7)), cfg_options=opts)])
    p = tmp_path / 'spec.yaml'
    p.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=site)
    cmd = [sys.executable, '-m', 'mmsemiprune.leaderboard', '--sweep', str(p), '--jobs', '1']
    which = subprocess.run([sys.executable, '-c', 'import mmsemiprune; print(mmsemiprune.__file__)'], cwd=user,
                           env=env, capture_output=True, text=True)
    assert which.stdout.strip().startswith(site), which.stdout + which.stderr  # the installed copy is used
    dry = subprocess.run(cmd + ['--dry-run'], cwd=user, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert 'pending  demo/stgcn/split/seed1/dense' in dry.stdout and '2 to run' in dry.stdout
    out = subprocess.run(cmd, cwd=user, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '[2/2]' in out.stdout and 'ETA' in out.stdout
    run = osp.join(user, 'runs/demo/stgcn/split/seed1')
    res = json.load(open(osp.join(run, 'semi_r0.8/result.json')))
    assert 0 <= res['top1'] <= 1 and abs(res['rate_params'] - 0.8) < 0.02 and res['seed'] == 1
    assert res['report_code'].startswith('mmsemiprune')  # evaluated by the installed copy (no git checkout)
    assert res['macs_exported'] < res['macs_dense'] and res['macs_input_shape'].startswith('1x')
    assert 0 < res['traffic_exported'] <= res['traffic_dense']  # bytes written per clip (count_traffic)
    assert res['params_compact_nonzero'] <= res['params_nonzero'] < res['params_dense']
    assert 0 < res['rate_whole'] < res['rate_params'] and res['export_max_abs_diff'] < 1e-3
    assert res['train_s'] > 1 and res['train_segments'] == 1 and res['device'] == 'cpu'
    assert 'latency_ms' not in res
    with open(osp.join(run, 'semi_r0.8/config.py')) as f:
        assert "seed=1" in f.read().replace(' ', '')
    assert 'mmsemiprune.leaderboard.train' in open(osp.join(run, 'semi_r0.8/train.log')).read()
    assert osp.isfile(osp.join(run, 'dense/dense_weights.pth'))
    for f in ('leaderboard.md', 'leaderboard.csv', 'leaderboard.png', 'runs.csv', 'paired.csv',
              'pareto_demo_macs.png', 'pareto_demo_nonzeros.png'):
        assert osp.isfile(tmp_path / 'out' / f), f
    # recompute the report columns with the current code, keeping the accuracy and the timing
    ref = subprocess.run(cmd + ['--tables-only', '--refresh-report'], cwd=user, env=env, capture_output=True,
                         text=True, timeout=200)
    assert ref.returncode == 0 and 'refreshed 2/2' in ref.stdout, ref.stdout[-2000:] + ref.stderr[-2000:]
    res2 = json.load(open(osp.join(run, 'semi_r0.8/result.json')))
    assert res2['top1'] == res['top1'] and res2['rate_params'] == res['rate_params']
    assert res2['macs_exported'] == pytest.approx(res['macs_exported']) and res2['train_s'] == res['train_s']
    # a second call skips both finished runs
    again = subprocess.run(cmd + ['--dry-run'], cwd=user, env=env, capture_output=True, text=True)
    assert '0 to run' in again.stdout


@pytest.mark.skipif(not osp.isdir(SHARED), reason=f'real skeleton data not present ({SHARED} is absent): '
                    'the SBU/FPHA/MSR3D leaderboard configs are checked only where the data is')
def test_real_data_configs_build():
    from mmsemiprune.leaderboard import build_run_config
    from mmsemiprune.leaderboard.spec import RunSpec
    for cfgp, fold in (('configs/leaderboard/stgcn_sbu.py', 2), ('configs/leaderboard/stgcn_fpha.py', None),
                       ('configs/leaderboard/stgcn_msr3d.py', None)):
        cfg = build_run_config(RunSpec('x', 'stgcn', 'semi', osp.join(ROOT, cfgp), 0.9, fold,
                                       prune=dict(epochs=2)), dense_ckpt='d.pth')
        assert cfg.model.prune_cfg.target_rate == 0.9
        if fold:
            assert cfg.train_dataloader.dataset.split == 'fold2_fit'
    msr = build_run_config(RunSpec('msr3d', 'stgcn', 'dense', osp.join(ROOT, 'configs/leaderboard/stgcn_msr3d.py')))
    assert msr.model.backbone.graph_cfg.layout == 'kinect20' and msr.model.cls_head.num_classes == 20
    assert msr.test_dataloader.dataset.split == 'xsub_test' and msr.dataset_info.num_joints == 20
