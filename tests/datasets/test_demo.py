"""Synthetic NTU-25 demo dataset."""
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_tool

from mmsemiprune.datasets.demo import (DEMO_CLASSES, TRAIN_SUBJECTS,
                                       VAL_SUBJECTS, make_demo_dataset)


@pytest.fixture(scope='module')
def demo():
    return make_demo_dataset()  # default size, < 1 s


def _subject(name):
    return int(re.search(r'P(\d{3})', name).group(1))


def test_determinism():
    a = make_demo_dataset(16, 8, seed=3)
    b = make_demo_dataset(16, 8, seed=3)
    c = make_demo_dataset(16, 8, seed=4)
    assert a['split'] == b['split']
    for x, y in zip(a['annotations'], b['annotations']):
        assert x['frame_dir'] == y['frame_dir'] and x['label'] == y['label']
        np.testing.assert_array_equal(x['keypoint'], y['keypoint'])
    assert any(x['keypoint'].shape != z['keypoint'].shape
               or not np.array_equal(x['keypoint'], z['keypoint'])
               for x, z in zip(a['annotations'], c['annotations']))


def test_format_and_splits(demo):
    annos = demo['annotations']
    assert len(demo['split']['xsub_train']) == 240
    assert len(demo['split']['xsub_val']) == 96
    names = [a['frame_dir'] for a in annos]
    assert len(set(names)) == len(names)
    assert set(names) == set(demo['split']['xsub_train']) | set(
        demo['split']['xsub_val'])
    assert {_subject(n) for n in demo['split']['xsub_train']} == set(
        TRAIN_SUBJECTS)
    assert {_subject(n) for n in demo['split']['xsub_val']} == set(
        VAL_SUBJECTS)
    persons, lengths = set(), set()
    for a in annos:
        kp = a['keypoint']
        assert kp.dtype == np.float32 and kp.ndim == 4
        M, T, V, C = kp.shape
        assert M in (1, 2) and 40 <= T <= 100 and (V, C) == (25, 3)
        assert a['total_frames'] == T and 0 <= a['label'] < 8
        assert np.isfinite(kp).all()
        # PreNormalize3D needs joints 0, 1, 4, 8 non-zero and distinct
        key = kp[:, :, [0, 1, 4, 8]]
        assert np.all(np.abs(key).sum(-1) > 0.1)
        d = np.linalg.norm(key[:, :, :, None] - key[:, :, None], axis=-1)
        assert np.all(d + np.eye(4) > 0.05)
        # a person stands in front of the camera, feet below the head
        assert 2.0 < kp[..., 2].mean() < 4.0
        assert np.all(kp[:, :, 3, 1] > kp[:, :, 15, 1])
        persons.add(M)
        lengths.add(T)
    assert persons == {1, 2} and len(lengths) > 20
    counts = np.bincount([a['label'] for a in annos], minlength=8)
    assert len(DEMO_CLASSES) == 8 and counts.min() >= 40


def _feature(kp):
    k = kp[0] - kp[0, :, :1]  # main person, root-relative
    return np.concatenate([k.mean(0).ravel(), k.std(0).ravel()])


def test_class_separability(demo):
    """Class-mean motion features separate the classes on unseen subjects."""
    by = {a['frame_dir']: a for a in demo['annotations']}
    tr = [by[n] for n in demo['split']['xsub_train']]
    va = [by[n] for n in demo['split']['xsub_val']]
    xtr = np.stack([_feature(a['keypoint']) for a in tr])
    ytr = np.array([a['label'] for a in tr])
    xva = np.stack([_feature(a['keypoint']) for a in va])
    yva = np.array([a['label'] for a in va])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    cent = np.stack([xtr[ytr == c].mean(0) for c in range(8)])
    pred = ((xva[:, None] - cent[None])**2).sum(-1).argmin(1)
    assert (pred == yva).mean() > 0.8  # chance: 0.125
    # class means really differ from each other
    dist = np.linalg.norm(cent[:, None] - cent[None], axis=-1)
    assert dist[~np.eye(8, dtype=bool)].min() > 1.0


def test_class_semantics(demo):
    """Each class moves the body parts its name says."""
    def stat(label, fn):
        return np.mean([fn(a['keypoint'][0]) for a in demo['annotations']
                        if a['label'] == label])

    def peak_y(j):
        return lambda k: (k[:, j, 1] - k[:, 0, 1]).max()

    L = {n: i for i, n in enumerate(DEMO_CLASSES)}
    r_hand, l_hand, head, r_foot = 11, 7, 3, 19
    assert stat(L['wave_right_hand'], peak_y(r_hand)) > stat(
        L['wave_right_hand'], peak_y(l_hand)) + 0.5
    assert stat(L['wave_left_hand'], peak_y(l_hand)) > stat(
        L['wave_left_hand'], peak_y(r_hand)) + 0.5
    both = L['raise_both_arms']
    assert min(stat(both, peak_y(r_hand)), stat(both, peak_y(l_hand))) > 0.6
    root_range = lambda k: np.ptp(k[:, 0, 1])  # noqa: E731
    assert stat(L['squat'], root_range) > 3 * max(
        stat(c, root_range) for c in range(8) if c != L['squat'])
    assert stat(L['kick_right_leg'], peak_y(r_foot)) > stat(
        L['step_in_place'], peak_y(r_foot)) + 0.1
    head_drop = lambda k: np.ptp(k[:, head, 1] - k[:, 0, 1])  # noqa: E731
    assert stat(L['bow_forward'], head_drop) > 0.15


def test_prenormalize_pipeline(demo_pkl):
    """The demo config's pipeline (PreNormalize3D ...) runs on every
    sample."""
    from mmaction.registry import DATASETS
    from mmaction.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    pipeline = [
        dict(type='PreNormalize3D'),
        dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
        dict(type='UniformSampleFrames', clip_len=32),
        dict(type='PoseDecode'),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='PackActionInputs')
    ]
    for split in ('xsub_train', 'xsub_val'):
        ds = DATASETS.build(dict(type='CheckedPoseDataset', ann_file=demo_pkl,
                                 pipeline=pipeline, split=split,
                                 layout='nturgb+d'))
        for i in range(len(ds)):
            x = ds[i]['inputs']
            assert tuple(x.shape) == (1, 2, 32, 25, 3)
            assert np.isfinite(x.numpy()).all()
            assert x.abs().max() < 3.0  # centred on the spine


def test_cli(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'd' / 'demo.pkl'
    code, _, err = run_tool('tools/make_demo_data.py', [
        out, '--num-train', 16, '--num-val', 8, '--seed', 1
    ], monkeypatch, capsys)
    assert code == 0, err
    assert '[demo] 24/24' in err and 'wrote' in err
    with open(out, 'rb') as f:
        data = pickle.load(f)
    ref = make_demo_dataset(16, 8, seed=1)
    assert data['split'] == ref['split']
    np.testing.assert_array_equal(data['annotations'][5]['keypoint'],
                                  ref['annotations'][5]['keypoint'])
    r = subprocess.run([sys.executable, 'tools/make_demo_data.py', '--help'],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '--num-train' in r.stdout
    code, _, err = run_tool('tools/make_demo_data.py', [
        tmp_path / 'x.pickle'], monkeypatch, capsys)
    assert code == 2 and '.pkl' in err
