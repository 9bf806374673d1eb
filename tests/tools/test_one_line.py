"""One-line enabling on MMAction2's own ST-GCN config, and every config of the repository.

- A user config ``_base_ = 'mmaction::skeleton/stgcn/...'`` + the one ``model`` line (+ tiny data / epoch
  overrides) trains through ``tools/train.py`` in each mode (semi / structured / unstructured).
- The unmodified stock config path + ``--cfg-options model.type=... model.prune_cfg.target_rate=0.9``
  keeps the stock backbone / head, loads a dense stock checkpoint with ``--load-from`` (only mask /
  pruner entries missing, asserted on the logged keys and on the weights) and trains.
- Every ``configs/**/*.py`` (not ``_base_``) parses and builds its model (no data needed).
"""
import glob
import os
import os.path as osp
import re

import pytest
import torch

import mmaction
import mmsemiprune  # noqa: F401  (makes mmaction:: bases resolve; registers the plugin)
from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from mmengine.config import Config

register_all_modules(init_default_scope=True)

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
STOCK_REL = 'skeleton/stgcn/stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py'
STOCK = osp.join(osp.dirname(mmaction.__file__), '.mim', 'configs', STOCK_REL)
ONE_LINE = "model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode={mode!r}))"
USER_CFG = f"""_base_ = 'mmaction::{STOCK_REL}'
{ONE_LINE}
# tiny-run overrides: data path, one epoch of 2 iterations, no worker processes
ann_file = {{ann!r}}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(times=1, dataset=dict(ann_file=ann_file)))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(ann_file=ann_file))
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(ann_file=ann_file))
train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=1, by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))
"""
MASKY = re.compile(r'(_psi\.|^pruner\.)')


@pytest.fixture(scope='module')
def stock_pkl(tmp_path_factory):
    from mmsemiprune.datasets.demo import write_demo_dataset
    path = str(tmp_path_factory.mktemp('stock_data') / 'tiny.pkl')
    write_demo_dataset(path, 4, 2, 0, progress=False)
    return path


def stock_cfg():
    return Config.fromfile(STOCK)


def unscoped(d):
    """A config node without the ``_scope_`` keys that ``pkg::`` bases stamp on their dicts."""
    if isinstance(d, dict):
        return {k: unscoped(v) for k, v in d.items() if k != '_scope_'}
    if isinstance(d, (list, tuple)):
        return [unscoped(v) for v in d]
    return d


def frozen_rate(ckpt):
    sd = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    masks = [k for k in sd if k.endswith('_psi.mask')]
    assert masks
    assert all(bool(sd[k.replace('.mask', '.frozen')]) for k in masks)
    n = sum(sd[k].numel() for k in masks)
    return 1 - sum(int(sd[k].sum()) for k in masks) / n, sd


def test_user_config_keeps_stock_model(tmp_path, one_thread):
    user = tmp_path / 'user.py'
    user.write_text(USER_CFG.format(mode='semi', ann='unused.pkl'))
    cfg, stock = Config.fromfile(str(user)), stock_cfg()
    assert cfg.model.type == 'mmsemiprune.SemiPruneRecognizerGCN'
    for key in ('backbone', 'cls_head'):
        assert unscoped(cfg.model[key]) == unscoped(stock.model[key])
    assert cfg.model.prune_cfg == dict(target_rate=0.9, mode='semi')
    assert unscoped(cfg.optim_wrapper) == unscoped(stock.optim_wrapper)
    assert unscoped(cfg.val_evaluator) == unscoped(stock.val_evaluator)
    assert unscoped(cfg.train_cfg) == dict(unscoped(stock.train_cfg), max_epochs=1)  # only the tiny override
    assert unscoped(cfg.val_dataloader.dataset.pipeline) == unscoped(stock.val_dataloader.dataset.pipeline)
    model = MODELS.build(cfg.model)
    dense = MODELS.build(stock.model)
    assert type(model.backbone) is type(dense.backbone)
    ours = {k: v.shape for k, v in model.state_dict().items() if not MASKY.search(k)}
    assert ours == {k: v.shape for k, v in dense.state_dict().items()}  # stock architecture, untouched
    assert len(model.pruner.masks) == 22  # 10 gcn.conv + 10 tcn.conv + 2 strided residual convs


@pytest.mark.parametrize('mode', ['semi', 'structured', 'unstructured'])
def test_user_config_trains(mode, tmp_path, stock_pkl, run_tool, sp):
    user = tmp_path / f'stgcn_{mode}_user.py'
    user.write_text(USER_CFG.format(mode=mode, ann=stock_pkl))
    work = tmp_path / 'work'
    proc = run_tool('train.py', user, '--work-dir', work, timeout=400)
    assert proc.returncode == 0, sp.tail(proc)
    lines = [ln for ln in proc.output.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) == 2 and all('loss_prune:' in ln and 'prune_rate:' in ln for ln in lines)
    assert 'acc/top1' in proc.output
    rate, sd = frozen_rate(work / 'epoch_1.pth')
    assert abs(rate - 0.9) <= 0.01
    assert any(k.endswith('gate.logit') for k in sd) == (mode == 'semi')


def test_cfg_options_on_stock_config_with_dense_load_from(tmp_path, stock_pkl, run_tool, sp, one_thread):
    opts = {'model.type': 'mmsemiprune.SemiPruneRecognizerGCN', 'model.prune_cfg.target_rate': 0.9}
    cfg, stock = stock_cfg(), stock_cfg()
    cfg.merge_from_dict(opts)
    assert cfg.model.backbone == stock.model.backbone and cfg.model.cls_head == stock.model.cls_head
    assert cfg.model.prune_cfg == dict(target_rate=0.9)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'SemiPruneRecognizerGCN' and type(model.backbone).__name__ == 'STGCN'
    assert model.cls_head.num_classes == 60 and len(model.pruner.masks) == 22
    # a dense, stock RecognizerGCN checkpoint ("pretrained")
    torch.manual_seed(3)
    dense = MODELS.build(stock.model).state_dict()
    dense_path = tmp_path / 'dense_stgcn.pth'
    torch.save(dict(state_dict=dense, meta=dict()), dense_path)
    work = tmp_path / 'work'
    data = [f'{k}={stock_pkl}' for k in ('train_dataloader.dataset.dataset.ann_file',
                                         'val_dataloader.dataset.ann_file', 'test_dataloader.dataset.ann_file')]
    proc = run_tool(
        'train.py', STOCK, '--work-dir', work, '--load-from', dense_path, '--cfg-options',
        *[f'{k}={v}' for k, v in opts.items()], *data, 'train_dataloader.dataset.times=1',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1', 'default_hooks.checkpoint.save_best=None',
        'optim_wrapper.optimizer.lr=0.0', timeout=400)  # lr 0: the trained weights must equal the loaded ones
    assert proc.returncode == 0, sp.tail(proc)
    assert 'unexpected key' not in proc.output
    m = re.search(r'missing keys in source state_dict: (.*)', proc.output)
    assert m, 'the pruned model must report its mask / pruner entries as missing'
    missing = [k.strip() for k in m.group(1).split(',') if k.strip()]
    assert missing and [k for k in missing if not MASKY.search(k)] == []
    rate, sd = frozen_rate(work / 'epoch_1.pth')
    assert abs(rate - 0.9) <= 0.01
    for k, v in dense.items():
        if v.is_floating_point() and 'running_' not in k:
            assert torch.equal(sd[k], v), f'{k} was not loaded from the dense checkpoint'


CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if f'{os.sep}_base_{os.sep}' not in p)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path, one_thread):
    cfg = Config.fromfile(osp.join(REPO, path))
    for key in ('model', 'train_dataloader', 'val_evaluator', 'optim_wrapper', 'train_cfg', 'default_hooks'):
        assert cfg.get(key), f'{path} lacks {key}'
    model = MODELS.build(cfg.model)
    if 'SemiPrune' in cfg.model.type:
        assert model.pruner.masks and 0 < model.pruner.target_rate < 1
        hooks = [h.get('type', '') for h in cfg.get('custom_hooks', [])]
        assert any(h.endswith('SemiPruneHook') for h in hooks), f'{path}: no SemiPruneHook'
    info = cfg.get('dataset_info', {})  # our dataset bases describe the skeletons; stock ones are NTU
    M, V = info.get('num_person', 2), info.get('num_joints', 25)
    with torch.no_grad():
        feats, _ = model.eval().extract_feat(torch.randn(1, 1, M, 8, V, 3))
    assert feats.shape[:2] == (1, M) and feats.shape[-1] == V


def test_ctrgcn_ntu60_follows_upstream_project():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ctrgcn_semiprune_ntu60.py'))
    assert cfg.model.backbone.type == 'CTRGCN' and cfg.model.cls_head.num_classes == 60
    assert cfg.train_cfg.max_epochs == 16 and cfg.param_scheduler[0].T_max == 16
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0005, nesterov=True)
    assert cfg.train_dataloader.dataset.times == 5 and cfg.train_dataloader.batch_size == 16
    for mode in ('structured', 'unstructured'):
        c = Config.fromfile(osp.join(REPO, 'configs', f'ctrgcn_{mode}_ntu60.py'))
        assert c.model.prune_cfg.mode == mode and c.model.backbone == cfg.model.backbone
