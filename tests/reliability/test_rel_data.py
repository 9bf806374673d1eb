"""Bad data: one AnnotationError naming the file, the sample and the fix, raised when the dataset is built
from the config (before training starts); through tools/train.py one ``error:`` line, exit code 2."""
import pickle

import numpy as np
import pytest
from conftest import run_tool
from mmaction.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmsemiprune.datasets.checked_dataset import AnnotationError


def _dataset(cfg_path, pkl):
    """Build the training dataset exactly as configured (CheckedPoseDataset, layout 'nturgb+d')."""
    ds = Config.fromfile(cfg_path).train_dataloader.dataset
    ds.ann_file = str(pkl)
    with DefaultScope.overwrite_default_scope('mmaction'):  # the pipeline's transforms (alone, or after any test)
        return DATASETS.build(ds)


def _edit(src, dst, fn):
    with open(src, 'rb') as f:
        d = pickle.load(f)
    fn(d)
    with open(dst, 'wb') as f:
        pickle.dump(d, f)
    return dst


def _first_train(d):
    name = d['split']['xsub_train'][0]
    return next(i for i, a in enumerate(d['annotations']) if a['frame_dir'] == name)


@pytest.fixture(scope='module')
def cfg(write_config):
    return write_config('rel_data')


def test_good_file_builds(cfg, tiny_pkl):
    assert len(_dataset(cfg, tiny_pkl)) == 16


def test_empty_truncated_and_malformed_files(cfg, tiny_pkl, tmp_path):
    empty = tmp_path / 'empty.pkl'
    empty.write_bytes(b'')
    with pytest.raises(AnnotationError, match=r"empty.pkl'.*file is empty \(0 bytes\).*Fix: .*make_demo_data.py"):
        _dataset(cfg, empty)
    trunc = tmp_path / 'trunc.pkl'
    trunc.write_bytes(open(tiny_pkl, 'rb').read()[:2000])
    with pytest.raises(AnnotationError, match=r"trunc.pkl'.*not a readable pickle \(truncated.*Fix: the file is "
                       'damaged'):
        _dataset(cfg, trunc)
    text = tmp_path / 'text.pkl'
    text.write_text('frame_dir,label\nS001,0\n')
    with pytest.raises(AnnotationError, match=r"text.pkl'.*not a readable pickle"):
        _dataset(cfg, text)
    for obj, problem in [(['a', 'b'], "split 'xsub_train' cannot be selected"),
                         (dict(split={}, items=[]), "pickle has no 'annotations' key"),
                         (42, 'pickle holds a int, not a dict')]:
        bad = tmp_path / 'malformed.pkl'
        with open(bad, 'wb') as f:
            pickle.dump(obj, f)
        with pytest.raises(AnnotationError, match=problem) as ei:
            _dataset(cfg, bad)
        assert str(bad) in str(ei.value) and 'Fix:' in str(ei.value)


def test_wrong_joint_count_for_the_graph_layout(cfg, tiny_pkl, tmp_path):
    def drop_joints(d):
        i = _first_train(d)
        d['annotations'][i]['keypoint'] = d['annotations'][i]['keypoint'][:, :, :20]
    bad = _edit(tiny_pkl, tmp_path / 'joints.pkl', drop_joints)
    with pytest.raises(AnnotationError) as ei:
        _dataset(cfg, bad)
    msg = str(ei.value)
    assert str(bad) in msg and "sample #" in msg and 'frame_dir=' in msg
    assert "keypoint has 20 joints but graph layout 'nturgb+d' expects 25" in msg
    assert 'use the graph layout that matches the data' in msg


@pytest.mark.parametrize('value, word', [(np.nan, 'NaN/inf'), (np.inf, 'NaN/inf'), (-np.inf, 'NaN/inf')])
def test_nan_inf_coordinates(cfg, tiny_pkl, tmp_path, value, word):
    def poison(d):
        d['annotations'][_first_train(d)]['keypoint'][0, 3, 7, 2] = value
    bad = _edit(tiny_pkl, tmp_path / 'nan.pkl', poison)
    with pytest.raises(AnnotationError) as ei:
        _dataset(cfg, bad)
    msg = str(ei.value)
    assert str(bad) in msg and 'frame_dir=' in msg
    assert f'keypoint has 1 {word} values (first at person 0, frame 3, joint 7)' in msg
    assert 'Fix: interpolate or drop the broken frames' in msg


@pytest.mark.slow
def test_train_tool_reports_bad_data_cleanly(write_config, tiny_pkl, tmp_path):
    def poison(d):
        d['annotations'][_first_train(d)]['keypoint'][0, 5, 2, 1] = np.nan
    bad = _edit(tiny_pkl, tmp_path / 'nan_coords.pkl', poison)
    cfg = write_config('rel_data_tool', pkl=str(bad))
    code, out, err = run_tool('train', cfg, '--work-dir', tmp_path / 'w')
    assert code == 2, err[-2000:]
    assert 'Traceback' not in err + out
    lines = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, err[-2000:]
    assert lines[0].startswith(f"error: Bad pose annotation file '{bad}' sample #")
    assert 'keypoint has 1 NaN/inf values (first at person 0, frame 5, joint 2). Fix: interpolate' in lines[0]
    assert 'Epoch(train)' not in out + err  # raised while building the dataloader, before the first step
