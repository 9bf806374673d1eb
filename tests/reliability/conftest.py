"""Fixtures for tests/reliability: a tiny ST-GCN config on tiny demo data, tool runners (subprocess for the
real command line, in-process for fast error paths) and model builders.

Sizes (2 shared CPU cores): 16 train / 8 val samples, batch 8 (2 iterations per epoch), ST-GCN with
2 stages of 8 and 16 channels.
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import warnings

import pytest

warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.abspath(osp.join(HERE, '..', '..'))
TOOLS = osp.join(REPO, 'tools')
for p in (REPO, TOOLS, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import mmsemiprune  # noqa: E402

mmsemiprune.register_all()  # before mmengine is imported the package import registers nothing
import rel_helpers  # noqa: E402,F401  (registers the test-only backbone and hooks)
from mmsemiprune import compat  # noqa: E402

TINY_BACKBONE = dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), base_channels=8,
                     num_stages=2, inflate_stages=[2], down_stages=[2])

CONFIG = """_base_ = [{base!r}]
custom_imports = dict(imports=['mmsemiprune', 'rel_helpers'], allow_failed_imports=False)
ann_file = {pkl!r}
model = dict(backbone=dict(base_channels=8, num_stages=2, inflate_stages=[2], down_stages=[2]),
             cls_head=dict(in_channels=16))
train_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
val_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
test_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
max_epochs = {epochs}
train_cfg = dict(max_epochs={epochs}, val_interval=1)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max={epochs}, by_epoch=True,
                        convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=5))
randomness = dict(seed=0, deterministic=True)
"""


@pytest.fixture(scope='session')
def tiny_pkl(tmp_path_factory):
    from mmsemiprune.datasets.demo import write_demo_dataset
    path = str(tmp_path_factory.mktemp('reldata') / 'tiny.pkl')
    write_demo_dataset(path, num_train=16, num_val=8, seed=0)
    return path


@pytest.fixture(scope='session')
def write_config(tmp_path_factory, tiny_pkl):
    """write_config(name, epochs=2, extra='') -> path of a tiny training config (unique file name per test,
    so that MMEngine's per-experiment singletons never mix)."""
    root = tmp_path_factory.mktemp('relcfg')

    def write(name, epochs=2, extra='', pkl=None):
        path = root / f'{name}.py'
        base = osp.join(REPO, 'configs', 'demo', 'stgcn_semiprune_demo.py')
        path.write_text(CONFIG.format(base=base, pkl=pkl or tiny_pkl, epochs=epochs) + extra)
        return str(path)
    return write


def tool_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([HERE, REPO] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env['OMP_NUM_THREADS'] = '1'
    env.pop('MMSEMIPRUNE_TRUSTED_DIRS', None)
    return env


def run_tool(tool, *args, cwd=None):
    """Run tools/<tool>.py as a user would; returns (returncode, stdout, stderr)."""
    r = subprocess.run([sys.executable, osp.join(TOOLS, f'{tool}.py'), *map(str, args)], cwd=cwd or REPO,
                       env=tool_env(), capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


_TOOL_MODULES = {}


@pytest.fixture
def run_tool_inproc(monkeypatch, capsys):
    """run_tool_inproc(tool, *args) -> (exit code, stderr): the tool's ``cli(main)`` in this process (fast
    error paths; no import cost)."""
    def run(tool, *args):
        if tool not in _TOOL_MODULES:
            spec = importlib.util.spec_from_file_location(f'_rel_tool_{tool}', osp.join(TOOLS, f'{tool}.py'))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _TOOL_MODULES[tool] = mod
        mod = _TOOL_MODULES[tool]
        monkeypatch.setattr(sys, 'argv', [f'tools/{tool}.py', *map(str, args)])
        capsys.readouterr()
        code = 0
        try:
            mod.cli(mod.main)
        except SystemExit as e:
            code = e.code
        return code, capsys.readouterr().err
    return run


@pytest.fixture(autouse=True)
def _clean_loader_state(monkeypatch):
    """Trust and strictness are process-global in compat: isolate the tests from each other."""
    monkeypatch.setattr(compat, '_TRUSTED', set())
    monkeypatch.setattr(compat, '_STRICT_HEAD', [False])
    monkeypatch.delenv('MMSEMIPRUNE_TRUSTED_DIRS', raising=False)
    yield


def build_model(backbone=None, num_classes=8, head_in=16, plain=False, **prune_cfg):
    """A tiny SemiPruneRecognizerGCN (or, plain=True, a stock RecognizerGCN) built through the registry."""
    from mmaction.registry import MODELS
    from mmengine.registry import DefaultScope
    prune_cfg.setdefault('target_rate', 0.8)
    cfg = dict(type='RecognizerGCN' if plain else 'mmsemiprune.SemiPruneRecognizerGCN',
               backbone=dict(backbone or TINY_BACKBONE), cls_head=dict(type='GCNHead', num_classes=num_classes,
                                                                      in_channels=head_in))
    if not plain:
        cfg['prune_cfg'] = prune_cfg
    with DefaultScope.overwrite_default_scope('mmaction'):
        return MODELS.build(cfg)
