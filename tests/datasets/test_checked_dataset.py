"""CheckedPoseDataset / validate_pose_annotations: one clear error each."""
import copy
import pickle

import numpy as np
import pytest
from mmaction.registry import DATASETS

from mmsemiprune.datasets import (AnnotationError, CheckedPoseDataset,
                                  validate_pose_annotations)

PIPE = [dict(type='PoseDecode')]


@pytest.fixture(scope='module', autouse=True)
def _mmaction_scope():
    from mmaction.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _good(n=4, V=15, M=2):
    rng = np.random.default_rng(0)
    annos = []
    for i in range(n):
        T = 10 + i
        annos.append(dict(frame_dir=f's{i}', label=i % 2, total_frames=T,
                          keypoint=rng.normal(size=(M, T, V, 3)).astype(
                              np.float32)))
    return dict(split={'train': ['s0', 's1', 's2'], 'test': ['s3']},
                annotations=annos)


def _write(tmp_path, obj, name='ann.pkl'):
    p = tmp_path / name
    with open(p, 'wb') as f:
        pickle.dump(obj, f)
    return str(p)


def _err(path, **kw):
    with pytest.raises(AnnotationError) as e:
        validate_pose_annotations(path, **kw)
    msg = str(e.value)
    assert path in msg and 'Fix:' in msg  # names the file and the fix
    return e.value, msg


def test_good_file(tmp_path):
    p = _write(tmp_path, _good())
    assert len(validate_pose_annotations(p)) == 4
    sel = validate_pose_annotations(p, num_joints=15, split='train')
    assert [a['frame_dir'] for a in sel] == ['s0', 's1', 's2']
    assert len(validate_pose_annotations(p, layout='openni15',
                                         split='test')) == 1
    # a bare list of annotations works without split
    p2 = _write(tmp_path, _good()['annotations'], 'list.pkl')
    assert len(validate_pose_annotations(p2)) == 4


def test_missing_and_unreadable_files(tmp_path):
    _, msg = _err(str(tmp_path / 'nope.pkl'))
    assert 'not found' in msg and 'tools/' in msg
    (tmp_path / 'empty.pkl').write_bytes(b'')
    _, msg = _err(str(tmp_path / 'empty.pkl'))
    assert 'empty (0 bytes)' in msg
    full = pickle.dumps(_good())
    (tmp_path / 'trunc.pkl').write_bytes(full[:len(full) // 2])
    _, msg = _err(str(tmp_path / 'trunc.pkl'))
    assert 'not a readable pickle' in msg and 'truncated' in msg
    (tmp_path / 'text.pkl').write_text('frame_dir,label\nx,1\n')
    _, msg = _err(str(tmp_path / 'text.pkl'))
    assert 'not a readable pickle' in msg
    (tmp_path / 'ann.json').write_text('{}')
    _, msg = _err(str(tmp_path / 'ann.json'))
    assert '.pkl' in msg
    _, msg = _err(str(tmp_path))
    assert 'directory' in msg


def test_structure_errors(tmp_path):
    p = _write(tmp_path, dict(split={'train': []}), 'noanno.pkl')
    _, msg = _err(p)
    assert "no 'annotations'" in msg
    d = _good()
    del d['split']
    p = _write(tmp_path, d, 'nosplit.pkl')
    _, msg = _err(p, split='train')
    assert "no 'split'" in msg
    assert len(validate_pose_annotations(p)) == 4  # fine without split
    p = _write(tmp_path, [1, 2], 'ints.pkl')
    _, msg = _err(p)
    assert 'not a dict' in msg
    p = _write(tmp_path, 'hello', 'str.pkl')
    _, msg = _err(p)
    assert 'not a dict' in msg


def test_unknown_split_lists_available(tmp_path):
    p = _write(tmp_path, _good())
    _, msg = _err(p, split='fold1_train')
    assert "unknown split 'fold1_train'" in msg
    assert "['test', 'train']" in msg


def test_split_out_of_sync(tmp_path):
    d = _good()
    d['split']['train'].append('ghost')
    p = _write(tmp_path, d)
    _, msg = _err(p, split='train')
    assert 'ghost' in msg and 'no annotation' in msg
    assert len(validate_pose_annotations(p, split='train',
                                         strict_split=False)) == 3
    d['split']['empty'] = []
    p = _write(tmp_path, d)
    _, msg = _err(p, split='empty')
    assert 'empty' in msg


@pytest.mark.parametrize('case, expect', [
    ('ndim', 'ndim 3'),
    ('lastdim', 'last dim is 4'),
    ('joints', '25 joints but num_joints expects 15'),
    ('nan', 'NaN/inf'),
    ('inf', 'NaN/inf'),
    ('total_frames', 'total_frames=99'),
    ('no_total_frames', "no 'total_frames'"),
    ('no_label', "no 'label'"),
    ('neg_label', 'negative'),
    ('str_label', 'not an int'),
    ('no_keypoint', "no 'keypoint'"),
    ('list_keypoint', 'not a numpy array'),
    ('empty_kp', 'empty'),
    ('score_shape', 'keypoint_score'),
    ('not_dict', 'not a dict'),
    ('no_frame_dir', "no 'frame_dir'"),
])
def test_sample_errors(tmp_path, case, expect):
    d = _good()
    a = d['annotations'][1]  # frame_dir 's1', in split 'train'
    kp = a['keypoint']
    if case == 'ndim':
        a['keypoint'] = kp[0]
    elif case == 'lastdim':
        a['keypoint'] = np.concatenate([kp, kp[..., :1]], -1)
    elif case == 'joints':
        a['keypoint'] = np.zeros(kp.shape[:2] + (25, 3), np.float32)
    elif case == 'nan':
        kp[1, 3, 5, 0] = np.nan
    elif case == 'inf':
        kp[0, 0, 0, 2] = np.inf
    elif case == 'total_frames':
        a['total_frames'] = 99
    elif case == 'no_total_frames':
        del a['total_frames']
    elif case == 'no_label':
        del a['label']
    elif case == 'neg_label':
        a['label'] = -1
    elif case == 'str_label':
        a['label'] = 'kick'
    elif case == 'no_keypoint':
        del a['keypoint']
    elif case == 'list_keypoint':
        a['keypoint'] = kp.tolist()
    elif case == 'empty_kp':
        a['keypoint'] = kp[:, :0]
        a['total_frames'] = 0
    elif case == 'score_shape':
        a['keypoint_score'] = np.ones((2, 3))
    elif case == 'not_dict':
        d['annotations'][1] = ['s1', 0]
    elif case == 'no_frame_dir':
        del a['frame_dir']
    p = _write(tmp_path, d)
    kw = dict(num_joints=15) if case == 'joints' else {}
    err, msg = _err(p, split='train', **kw)
    assert expect in msg, msg
    assert '#1' in msg  # names the sample index
    if case not in ('not_dict', 'no_frame_dir'):
        assert "'s1'" in msg  # ... and its frame_dir
    if case == 'nan':
        assert 'person 1, frame 3, joint 5' in msg


def test_other_split_not_checked(tmp_path):
    d = _good()
    d['annotations'][3]['keypoint'][0, 0, 0, 0] = np.nan  # 's3' is in test
    p = _write(tmp_path, d)
    assert len(validate_pose_annotations(p, split='train')) == 3
    _err(p, split='test')


def test_layout_argument(tmp_path):
    p = _write(tmp_path, _good())
    _, msg = _err(p, layout='nturgb+d')
    assert "graph layout 'nturgb+d' expects 25" in msg
    with pytest.raises(ValueError, match='Available layouts'):
        validate_pose_annotations(p, layout='kinect99')
    with pytest.raises(ValueError, match='contradicts'):
        validate_pose_annotations(p, layout='openni15', num_joints=20)


def test_dataset_class(tmp_path):
    p = _write(tmp_path, _good())
    ds = DATASETS.build(dict(type='CheckedPoseDataset', ann_file=p,
                             pipeline=PIPE, split='train',
                             layout='openni15'))
    assert isinstance(ds, CheckedPoseDataset) and len(ds) == 3
    assert ds[0]['keypoint'].shape == (2, 10, 15, 3)
    with pytest.raises(AnnotationError, match='available splits'):
        CheckedPoseDataset(p, PIPE, split='xsub_train')
    with pytest.raises(AnnotationError, match='expects 25'):
        CheckedPoseDataset(p, PIPE, split='train', layout='nturgb+d')
    with pytest.raises(AnnotationError, match='not found'):
        CheckedPoseDataset(str(tmp_path / 'x.pkl'), PIPE)
    with pytest.raises(ValueError, match='Available layouts'):
        CheckedPoseDataset(p, PIPE, layout='bogus')
    d = copy.deepcopy(_good())
    d['annotations'][0]['keypoint'][0, 0, 0, 0] = np.inf
    p2 = _write(tmp_path, d, 'inf.pkl')
    with pytest.raises(AnnotationError, match="'s0'.*NaN/inf"):
        DATASETS.build(dict(type='CheckedPoseDataset', ann_file=p2,
                            pipeline=PIPE, split='train'))
    assert issubclass(AnnotationError, ValueError)
