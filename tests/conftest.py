"""Fixtures shared by the MMAction2-integration tests (tests/models, tests/engine, tests/tools).

- The repository root is put on ``sys.path`` (the package is used from the source tree).
- ``one_thread``: torch runs single-threaded inside a test (restored afterwards). On the shared 2-core
  machine, two OpenMP threads spin against the other processes: a tiny GCN training step measured ~30x
  slower with 2 threads than with 1 under load. Tool subprocesses get ``OMP_NUM_THREADS=1`` likewise.
- ``run_tool``: runs ``tools/<script>`` in a subprocess (single-threaded, repo + test-only hooks on
  ``PYTHONPATH``) and returns the finished process with stdout+stderr in ``.output``.
- ``tiny_pkl``: the synthetic NTU-25 demo data, 16 train / 8 val clips (session).
- ``sp_hooks_dir``: a folder holding ``sp_test_hooks.py``, test-only MMEngine hooks (simulated crash
  after an epoch, per-rank state dump); configs import it with ``custom_imports``.
- ``demo_run``: ONE tiny ``tools/train.py`` run of ``configs/demo/stgcn_semiprune_demo.py`` (2 epochs x 4
  iterations, seed 0, deterministic), shared by tests/engine and tests/tools (session).
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import types
import warnings

import pytest

warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

SP_TEST_HOOKS = '''"""Test-only MMEngine hooks, written by tests/conftest.py (never part of the package)."""
import os.path as osp

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


class SimulatedInterruption(RuntimeError):
    pass


@HOOKS.register_module()
class SPTestStopHook(Hook):
    """Crash right after the checkpoint of epoch ``stop_epoch`` was written (CheckpointHook is VERY_LOW)."""
    priority = 'LOWEST'

    def __init__(self, stop_epoch=1):
        self.stop_epoch = stop_epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.stop_epoch:
            raise SimulatedInterruption(f'sp-test: simulated interruption after epoch {self.stop_epoch}')


@HOOKS.register_module()
class SPTestDumpStateHook(Hook):
    """Save this rank's model state_dict at the end of training to <out_dir>/state_rank<R>.pth."""
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(sd, osp.join(self.out_dir, f'state_rank{runner.rank}.pth'))
'''

# The demo config on the tiny data: 16 train clips, batch 4 -> 4 iterations per epoch, 2 epochs (8 iterations:
# warm-up, annealing, freeze at the last one), logged every iteration, a checkpoint every epoch.
DEMO_TINY = '''_base_ = {base!r}
ann_file = {ann!r}
train_dataloader = dict(batch_size=4, dataset=dict(ann_file=ann_file))
val_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
test_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
train_cfg = dict(max_epochs=2, val_interval=5)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=2, by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=-1))
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook', log_interval=1)]
randomness = dict(seed=0, deterministic=True)
'''
DEMO_CFG = osp.join(REPO, 'configs', 'demo', 'stgcn_semiprune_demo.py')


@pytest.fixture
def one_thread():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='session')
def sp_hooks_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('sp_hooks')
    (d / 'sp_test_hooks.py').write_text(SP_TEST_HOOKS)
    return str(d)


def tool_env(extra_path=()):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join([REPO, *extra_path] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    return env


def _run(cmd, env, timeout, cwd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          timeout=timeout, cwd=cwd)
    proc.output = proc.stdout
    return proc


@pytest.fixture(scope='session')
def run_tool(sp_hooks_dir, tmp_path_factory):
    """run_tool('train.py', *args, timeout=300) -> CompletedProcess (.output = stdout + stderr).
    Runs from a temporary cwd so that nothing is written into the repository."""
    cwd = str(tmp_path_factory.mktemp('cwd'))

    def run(script, *args, timeout=300, env=None):
        cmd = [sys.executable, osp.join(REPO, 'tools', script), *map(str, args)]
        return _run(cmd, env or tool_env([sp_hooks_dir]), timeout, cwd)
    run.env = lambda: tool_env([sp_hooks_dir])
    run.cwd = cwd
    return run


def tail(proc, n=3000):
    return f'exit code {proc.returncode}; output tail:\n' + proc.output[-n:]


@pytest.fixture(scope='session')
def tiny_pkl(tmp_path_factory):
    from mmsemiprune.datasets.demo import write_demo_dataset
    path = str(tmp_path_factory.mktemp('data') / 'demo_tiny.pkl')
    write_demo_dataset(path, 16, 8, 0, progress=False)
    return path


def read_scalars(work_dir):
    """Entries of <work_dir>/<timestamp>/vis_data/scalars.json (the latest run in that work dir)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_log(work_dir):
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    assert files, f'no log file under {work_dir}'
    with open(files[-1]) as f:
        return f.read()


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory, tiny_pkl, run_tool):
    """The shared tiny training run (see module doc). Fails every dependent test if training fails."""
    root = tmp_path_factory.mktemp('demo_run')
    cfg = root / 'demo_tiny.py'
    cfg.write_text(DEMO_TINY.format(base=DEMO_CFG, ann=tiny_pkl))
    work = root / 'work'
    proc = run_tool('train.py', cfg, '--work-dir', work)
    assert proc.returncode == 0, tail(proc)
    return types.SimpleNamespace(root=str(root), cfg=str(cfg), work_dir=str(work), output=proc.output,
                                 ann=tiny_pkl, max_iters=8, target_rate=0.8,
                                 scalars=read_scalars(str(work)), log=read_log(str(work)))


@pytest.fixture(scope='session')
def sp():
    """Helpers for the test modules (conftest functions are not importable from them)."""
    return types.SimpleNamespace(REPO=REPO, DEMO_CFG=DEMO_CFG, tail=tail, read_scalars=read_scalars,
                                 read_log=read_log, tool_env=tool_env)
