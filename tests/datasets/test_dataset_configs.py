"""Dataset base configs: parse with mmengine, build the dataloaders on
fixture/demo pickles and run the pipelines end to end (no model)."""
import os.path as osp

import pytest
from conftest import REPO
from mmengine.config import Config
from mmengine.runner import Runner

from mmsemiprune.datasets import set_fold

CFG_DIR = osp.join(REPO, 'configs', '_base_', 'datasets')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# config -> (fixture pickle key, V, M, clip_len, test clips)
CONFIGS = {
    'demo_ntu25': ('demo', 25, 2, 32, 1),
    'sbu': ('sbu', 15, 2, 32, 10),
    'sbu_fold1': ('sbu', 15, 2, 32, 10),
    'sbu_fold3': ('sbu', 15, 2, 32, 10),
    'sbu_fold5': ('sbu', 15, 2, 32, 10),
    'fpha': ('fpha', 21, 1, 32, 10),
    'msr3d': ('msr3d', 20, 1, 32, 10),
    'ntu60_xsub_3d': ('demo', 25, 2, 100, 10),
}


@pytest.fixture(scope='module', autouse=True)
def _mmaction_scope():
    from mmaction.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _inner(ds):
    while 'dataset' in ds:  # RepeatDataset wrapper
        ds = ds['dataset']
    return ds


def _load(name):
    return Config.fromfile(osp.join(CFG_DIR, name + '.py'))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_static(name):
    cfg = _load(name)
    text = open(osp.join(CFG_DIR, name + '.py')).read()
    assert 'mmaction::' not in text
    assert 'model' not in cfg
    assert cfg.custom_imports.imports == ['mmsemiprune.datasets']
    assert cfg.val_evaluator == [dict(type='AccMetric')]
    assert cfg.test_evaluator == cfg.val_evaluator
    key, V, M, clip_len, _ = CONFIGS[name]
    info = cfg.dataset_info
    assert (info.num_joints, info.num_person, info.clip_len) == (V, M,
                                                                 clip_len)
    for loader in LOADERS:
        dl = cfg[loader]
        assert dl.persistent_workers == (dl.num_workers > 0)  # note F4
        ds = _inner(dl.dataset)
        assert ds.type == 'CheckedPoseDataset'
        assert ds.layout == info.layout
        types = [t['type'] for t in ds.pipeline]
        assert types[-4:] == ['UniformSampleFrames', 'PoseDecode',
                              'FormatGCNInput', 'PackActionInputs']
        assert ds.pipeline[-2]['num_person'] == M
        assert ('PreNormalize3D' in types) == (info.layout == 'nturgb+d')


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_pipelines_end_to_end(name, demo_pkl, converted_pkls):
    key, V, M, clip_len, test_clips = CONFIGS[name]
    pkl = demo_pkl if key == 'demo' else converted_pkls[key]
    cfg = _load(name)
    for loader in LOADERS:
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 2
        _inner(cfg[loader].dataset).ann_file = pkl
    for loader in LOADERS:
        dl = Runner.build_dataloader(cfg[loader], seed=0)
        assert len(dl.dataset) > 0
        batch = next(iter(dl))
        clips = 1 if loader != 'test_dataloader' else test_clips
        assert len(batch['inputs']) == min(2, len(dl.dataset))  # the fixtures' validation splits can be 1 clip
        for x, sample in zip(batch['inputs'], batch['data_samples']):
            assert tuple(x.shape) == (clips, M, clip_len, V, 3)
            assert x.isfinite().all()
            assert 0 <= int(sample.gt_labels.item) < cfg.dataset_info[
                'num_classes']


def test_sbu_folds(converted_pkls):
    for k in range(1, 6):
        cfg = _load(f'sbu_fold{k}')
        assert cfg.fold == k and cfg.dataset_info.fold == k
        assert cfg.train_dataloader.dataset.split == f'fold{k}_fit'
        assert cfg.val_dataloader.dataset.split == f'fold{k}_val'
        assert cfg.test_dataloader.dataset.split == f'fold{k}_test'
    # --cfg-options style override of the three splits
    cfg = _load('sbu')
    cfg.merge_from_dict({'train_dataloader.dataset.split': 'fold4_train',
                         'val_dataloader.dataset.split': 'fold4_test',
                         'test_dataloader.dataset.split': 'fold4_test'})
    assert cfg.val_dataloader.dataset.split == 'fold4_test'
    # Python helper
    cfg = _load('sbu')
    changed = set_fold(cfg, 2)
    assert len(changed) == 3 and cfg.fold == 2
    assert cfg.train_dataloader.dataset.split == 'fold2_fit'
    assert cfg.val_dataloader.dataset.split == 'fold2_val'
    assert cfg.test_dataloader.dataset.split == 'fold2_test'
    # fit, val and test of one fold are disjoint and cover the fixture sets
    from mmaction.registry import DATASETS
    names = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds_cfg = cfg[loader].dataset.copy()
        ds_cfg.ann_file = converted_pkls['sbu']
        ds = DATASETS.build(ds_cfg)
        names[loader] = {ds.get_data_info(i)['frame_dir']
                         for i in range(len(ds))}
    assert names['train_dataloader'].isdisjoint(names['test_dataloader'])
    assert names['val_dataloader'].isdisjoint(names['test_dataloader'] | names['train_dataloader'])
    assert names['val_dataloader'] and {n.split('/')[0] for n in names['val_dataloader']} != {'s02s03'}
    assert {n.split('/')[0] for n in names['test_dataloader']} == {'s02s03'}
    with pytest.raises(ValueError, match='positive int'):
        set_fold(cfg, 0)
    with pytest.raises(ValueError, match='no folds'):
        set_fold(_load('fpha'), 2)


def test_ntu_repeat_wrapper_and_set_fold_nested():
    cfg = _load('ntu60_xsub_3d')
    assert cfg.train_dataloader.dataset.type == 'RepeatDataset'
    assert cfg.train_dataloader.dataset.dataset.split == 'xsub_train'
    cfg.train_dataloader.dataset.dataset.split = 'fold1_train'
    set_fold(cfg, 4)
    assert cfg.train_dataloader.dataset.dataset.split == 'fold4_train'
