"""Fixtures for tests/datasets: tiny raw files in the exact upstream formats.

Real data is read (never copied) from ``$MMSEMIPRUNE_DATA_ROOT`` (default
``<repo>/../shared/data``); tests that need it skip when it is absent.
"""
import os
import os.path as osp
import sys
import warnings

import numpy as np
import pytest

warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DATA_ROOT = os.environ.get('MMSEMIPRUNE_DATA_ROOT',
                           osp.join(REPO, '..', 'shared', 'data'))


def run_tool(rel_path, args, monkeypatch, capsys):
    """Run a CLI script in-process (``__main__``), return (code, out, err).

    In-process keeps the heavy torch/mmaction imports shared with the test
    session (a subprocess would re-import them for every call)."""
    import runpy
    path = osp.join(REPO, rel_path)
    monkeypatch.setattr(sys, 'argv', [path] + [str(a) for a in args])
    monkeypatch.syspath_prepend(osp.dirname(path))
    capsys.readouterr()
    code = 0
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None
                                                       else 1)
    out, err = capsys.readouterr()
    return code, out, err


def real_data(name: str) -> str:
    """Path of a real dataset folder, or skip the test with a message."""
    path = osp.abspath(osp.join(DATA_ROOT, name))
    if not osp.isdir(path):
        pytest.skip(f'real dataset {name!r} not found at {path} (set '
                    'MMSEMIPRUNE_DATA_ROOT to the folder holding sbu/, fpha/, '
                    'msr3d/ to run this test)')
    return path


_REAL_CACHE = {}


def built_real(name: str):
    """``(data, report)`` of converting a real dataset, once per session
    (skips when the folder is absent)."""
    if name not in _REAL_CACHE:
        from mmsemiprune.datasets.converters import (build_fpha, build_msr3d,
                                                     build_sbu)
        build = dict(sbu=build_sbu, fpha=build_fpha, msr3d=build_msr3d)[name]
        _REAL_CACHE[name] = build(real_data(name), progress=False)
    return _REAL_CACHE[name]


# ----------------------------------------------------------------- SBU ----
def sbu_frame_values(rng, t):
    """91 values of one SBU line: frame number + 2x15x(x, y, z) normalised."""
    base = np.array([[0.3 + 0.01 * j, 0.2 + 0.05 * j, 1.8] for j in range(15)])
    p2 = base + [0.4, 0.0, 0.1]
    vals = np.concatenate([base.ravel(), p2.ravel()])
    vals = vals + rng.normal(0, 0.002, vals.shape)
    return [100 + t] + vals.tolist()


def write_sbu_file(path, n_frames, rng, bad_line=None, empty=False):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        if empty:
            return
        for t in range(n_frames):
            vals = sbu_frame_values(rng, t)
            if bad_line == t + 1:
                vals = vals[:50]
            f.write(','.join(f'{v:g}' if i else str(v)
                             for i, v in enumerate(vals)) + '\n')


#: one set per fold (+ a second set in fold 5)
SBU_FIXTURE_SETS = ['s01s02', 's02s03', 's01s03', 's02s01', 's04s02',
                    's06s03']


@pytest.fixture(scope='session')
def sbu_dir(tmp_path_factory):
    """SBU tree: 6 sets x classes 01, 03, 08 x 1 sequence, plus one broken
    file (wrong column count on line 3) and one empty file."""
    root = str(tmp_path_factory.mktemp('sbu'))
    rng = np.random.default_rng(0)
    for k, s in enumerate(SBU_FIXTURE_SETS):
        for cls in ('01', '03', '08'):
            write_sbu_file(osp.join(root, s, cls, '001', 'skeleton_pos.txt'),
                           12 + k, rng)
    write_sbu_file(osp.join(root, 's01s02', '02', '001', 'skeleton_pos.txt'),
                   10, rng, bad_line=3)
    write_sbu_file(osp.join(root, 's02s03', '02', '001', 'skeleton_pos.txt'),
                   0, rng, empty=True)
    return root


# ---------------------------------------------------------------- FPHA ----
def write_fpha_file(path, n_frames, rng, empty=False):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        if empty:
            return
        for t in range(n_frames):
            xyz = (np.arange(63).reshape(21, 3) * 2.0 + [100, 50, 400]
                   + rng.normal(0, 0.5, (21, 3)))
            f.write(f'{t:04d} ' + ' '.join(f'{v:.6f}' for v in xyz.ravel())
                    + '\n')


@pytest.fixture(scope='session')
def fpha_dir(tmp_path_factory):
    """FPHA tree: 2 subjects x 3 actions, split file with Training 4 / Test
    3 blocks (one listed file missing), one empty file not in the split."""
    root = str(tmp_path_factory.mktemp('fpha'))
    pose = osp.join(root, 'Hand_pose_annotation_v1')
    rng = np.random.default_rng(1)
    actions = ['open_juice_bottle', 'close_juice_bottle', 'pour_milk']
    for subj in (1, 2):
        for a in actions:
            write_fpha_file(osp.join(pose, f'Subject_{subj}', a, '1',
                                     'skeleton.txt'), 8 + subj, rng)
    write_fpha_file(osp.join(pose, 'Subject_2', 'pour_milk', '2',
                             'skeleton.txt'), 0, rng, empty=True)
    lines = ['Training 4',
             'Subject_1/open_juice_bottle/1 0',
             'Subject_1/close_juice_bottle/1 1',
             'Subject_1/pour_milk/1 2',
             'Subject_2/open_juice_bottle/1 0',
             'Test 3',
             'Subject_2/close_juice_bottle/1 1',
             'Subject_2/pour_milk/1 2',
             'Subject_2/pour_milk/9 2']  # listed but missing
    with open(osp.join(root, 'data_split_action_recognition.txt'), 'w') as f:
        f.write('\n'.join(lines))  # upstream: no trailing newline
    return root


# --------------------------------------------------------------- MSR3D ----
def write_msr_file(path, n_frames, rng, zero_frames=(), all_zero=False):
    with open(path, 'w') as f:
        for t in range(n_frames):
            for j in range(20):
                if all_zero or t in zero_frames:
                    f.write('0.000000 0.000000 0.000000 0.000000\n')
                else:
                    x, y, z = 0.05 * j - 0.5, 0.1 * j - 1.0, 2.7
                    x, y, z = np.array([x, y, z]) + rng.normal(0, 0.003, 3)
                    f.write(f'{x:.6f} {y:.6f} {z:.6f} 1.000000\n')


@pytest.fixture(scope='session')
def msr_dir(tmp_path_factory):
    """MSR folder: actions 1, 2, 13 x subjects 1-4 x e01 (+ a13_s02_e02 with
    two all-zero frames, a13_s03_e02 all zeros, a02_s04_e02 not listed)."""
    root = str(tmp_path_factory.mktemp('msr3d'))
    rng = np.random.default_rng(2)
    names = []
    for a in (1, 2, 13):
        for s in (1, 2, 3, 4):
            n = f'a{a:02d}_s{s:02d}_e01'
            write_msr_file(osp.join(root, n + '_skeleton3D.txt'), 6 + s, rng)
            names.append(n)
    write_msr_file(osp.join(root, 'a13_s02_e02_skeleton3D.txt'), 8, rng,
                   zero_frames=(0, 5))
    write_msr_file(osp.join(root, 'a13_s03_e02_skeleton3D.txt'), 5, rng,
                   all_zero=True)
    write_msr_file(osp.join(root, 'a02_s04_e02_skeleton3D.txt'), 5, rng)
    names += ['a13_s02_e02', 'a13_s03_e02']
    with open(osp.join(root, 'files_used_in_cvpr12_paper.txt'), 'w') as f:
        f.write('\n'.join(names))
    return root


# ----------------------------------------------------------------- NTU ----
def ntu_text(n_frames, bodies, rng, n_joints=25):
    """Upstream .skeleton text. ``bodies``: list of (body_id, first, last,
    motion) - the body is present in frames first..last."""
    out = [str(n_frames)]
    for t in range(n_frames):
        present = [b for b in bodies if b[1] <= t <= b[2]]
        out.append(str(len(present)))
        for bid, _, _, motion in present:
            out.append(f'{bid} 0 1 2 1 2 0 0.1 -0.2 2')
            out.append(str(n_joints))
            for j in range(n_joints):
                x = 0.02 * j + motion * np.sin(0.3 * t + j)
                y = 0.05 * j - 0.6
                z = 3.0 + rng.normal(0, 0.002)
                out.append(f'{x:.7f} {y:.7f} {z:.7f} 250.1 200.2 900.3 '
                           '500.4 0.1 0.2 0.3 0.9 2')
    return '\n'.join(out) + '\n'


@pytest.fixture(scope='session')
def ntu_dir(tmp_path_factory):
    """NTU folder: 4 valid files (subjects 1, 3; one with 3 bodies), one
    malformed (joint line with 11 values), one NTU-120 action, one with no
    bodies."""
    root = str(tmp_path_factory.mktemp('ntu'))
    rng = np.random.default_rng(3)

    def w(name, text):
        with open(osp.join(root, name + '.skeleton'), 'w') as f:
            f.write(text)

    w('S001C001P001R001A001', ntu_text(10, [('72057594037931101', 0, 9,
                                              0.1)], rng))
    w('S001C002P003R001A002', ntu_text(12, [('111', 0, 11, 0.1)], rng))
    # 3 bodies: a still one (noise) and two moving ones -> keep 2 moving
    w('S001C003P001R002A050', ntu_text(9, [('1', 0, 8, 0.0),
                                            ('2', 0, 8, 0.2),
                                            ('3', 2, 8, 0.1)], rng))
    w('S002C001P003R001A003', ntu_text(7, [('5', 0, 6, 0.1)], rng))
    bad = ntu_text(5, [('9', 0, 4, 0.1)], rng).splitlines()
    bad[10] = ' '.join(bad[10].split()[:11])  # line 11: 11 values
    w('S001C001P001R001A004', '\n'.join(bad) + '\n')
    w('S001C001P001R001A061', ntu_text(4, [('7', 0, 3, 0.1)], rng))
    w('S001C001P001R001A005', '3\n0\n0\n0\n')
    return root


# ---------------------------------------------------------------- demo ----
@pytest.fixture(scope='session')
def demo_pkl(tmp_path_factory):
    """Small demo pickle (48 train / 24 val)."""
    from mmsemiprune.datasets.demo import write_demo_dataset
    path = str(tmp_path_factory.mktemp('demo') / 'demo_ntu25.pkl')
    write_demo_dataset(path, num_train=48, num_val=24, seed=0)
    return path


@pytest.fixture(scope='session')
def converted_pkls(tmp_path_factory, sbu_dir, fpha_dir, msr_dir):
    """Fixture raw trees converted to pickles: {'sbu': path, ...}."""
    from mmsemiprune.datasets.converters import (convert_fpha, convert_msr3d,
                                                 convert_sbu)
    out = tmp_path_factory.mktemp('converted')
    paths = {k: str(out / f'{k}.pkl') for k in ('sbu', 'fpha', 'msr3d')}
    convert_sbu(sbu_dir, paths['sbu'], progress=False)
    convert_fpha(fpha_dir, paths['fpha'], progress=False)
    convert_msr3d(msr_dir, paths['msr3d'], progress=False)
    return paths
