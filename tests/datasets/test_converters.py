"""Converters: fixture files in the exact upstream formats + real data."""
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import (REPO, SBU_FIXTURE_SETS, built_real, run_tool,
                      sbu_frame_values)

from mmsemiprune.datasets.converters import (SBU_FOLDS, ConversionError,
                                             NTUParseError, build_fpha,
                                             build_msr3d, build_ntu, build_sbu,
                                             convert_sbu, read_ntu_skeleton,
                                             read_sbu_file)


def _by_name(data):
    return {a['frame_dir']: a for a in data['annotations']}


def _check_format(data, V, max_m):
    assert set(data) == {'split', 'annotations'}
    for a in data['annotations']:
        kp = a['keypoint']
        assert kp.dtype == np.float32 and kp.ndim == 4
        assert 1 <= kp.shape[0] <= max_m and kp.shape[2:] == (V, 3)
        assert a['total_frames'] == kp.shape[1]
        assert isinstance(a['label'], int) and a['label'] >= 0
        assert np.isfinite(kp).all()
    names = {a['frame_dir'] for a in data['annotations']}
    for split in data['split'].values():
        assert set(split) <= names


# ----------------------------------------------------------------- SBU ----
def test_sbu_fixture(sbu_dir):
    data, report = build_sbu(sbu_dir, progress=False)
    _check_format(data, 15, 2)
    annos = _by_name(data)
    assert len(annos) == 6 * 3
    a = annos['s01s02/03/001']
    assert a['label'] == 2 and a['keypoint'].shape == (2, 12, 15, 3)
    # centred: midpoint of the two torsos (joint 2) at t=0 is the origin
    np.testing.assert_allclose(a['keypoint'][:, 0, 2].mean(0), 0, atol=1e-5)
    assert {annos[n]['label'] for n in annos} == {0, 2, 7}
    # folds: each set in exactly its fold's test split
    for k, sets in SBU_FOLDS.items():
        test, train = data['split'][f'fold{k}_test'], data['split'][
            f'fold{k}_train']
        assert not set(test) & set(train)
        assert len(test) + len(train) == 18
        assert {n.split('/')[0] for n in test} == set(sets) & set(
            SBU_FIXTURE_SETS)
    assert len(data['split']['fold5_test']) == 6
    # skipped: bad column count with file:line, and the empty file
    reasons = dict(report.skipped)
    bad = osp.join(sbu_dir, 's01s02', '02', '001', 'skeleton_pos.txt')
    assert 'unparsable' in reasons[bad] and f'{bad}:3' in reasons[bad]
    empty = osp.join(sbu_dir, 's02s03', '02', '001', 'skeleton_pos.txt')
    assert reasons[empty].startswith('empty')
    assert 'SKIPPED' in report.summary()


def test_sbu_denormalisation(tmp_path):
    vals = sbu_frame_values(np.random.default_rng(0), 0)
    vals[1:4] = [0.5, 0.5, 7.8125]  # person A, head
    p = tmp_path / 'skeleton_pos.txt'
    p.write_text(','.join(map(str, vals)) + '\n')
    kp, reason = read_sbu_file(str(p))
    assert reason == '' and kp.shape == (2, 1, 15, 3)
    np.testing.assert_allclose(kp[0, 0, 0], [0.0, 0.0, 10.0], atol=1e-5)
    x, y, z = vals[4:7]  # person A, neck
    np.testing.assert_allclose(
        kp[0, 0, 1], [(1280 - 2560 * x) / 1000, (960 - 1920 * y) / 1000,
                      z * 10000 / 7.8125 / 1000], rtol=1e-5)


def test_sbu_no_files(tmp_path):
    with pytest.raises(ConversionError, match='skeleton_pos.txt'):
        build_sbu(str(tmp_path), progress=False)
    with pytest.raises(ConversionError, match='does not exist'):
        build_sbu(str(tmp_path / 'nope'), progress=False)


def test_sbu_cli(sbu_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'sub' / 'sbu.pkl'
    code, _, err = run_tool('tools/data/convert_sbu.py', [sbu_dir, out],
                            monkeypatch, capsys)
    assert code == 0, err
    assert 'converted 18 sequences' in err and 'SKIPPED' in err
    assert '[sbu] ' in err  # progress counter
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert len(data['annotations']) == 18
    code, _, err = run_tool('tools/data/convert_sbu.py',
                            [tmp_path / 'missing', out], monkeypatch, capsys)
    assert code == 1 and 'does not exist' in err


def test_other_clis(fpha_dir, msr_dir, ntu_dir, tmp_path, monkeypatch,
                    capsys):
    ign = tmp_path / 'ignored.txt'
    ign.write_text('S001C001P001R001A001\n')
    for tool, args, expect in (
            ('convert_fpha', [fpha_dir, tmp_path / 'f.pkl'], 'split test: 2'),
            ('convert_msr3d', [msr_dir, tmp_path / 'm.pkl', '--subset',
                               'AS1'], 'converted 9 sequences'),
            ('convert_ntu', [ntu_dir, tmp_path / 'n.pkl', '--ignored', ign,
                             '--quiet'], 'ignored x1')):
        code, _, err = run_tool(f'tools/data/{tool}.py', args, monkeypatch,
                                capsys)
        assert code == 0 and expect in err, (tool, err)
    assert '[ntu] 1/' not in err  # --quiet: no progress counter


@pytest.mark.parametrize('tool', ['convert_sbu', 'convert_fpha',
                                  'convert_msr3d', 'convert_ntu'])
def test_cli_help(tool):
    r = subprocess.run([sys.executable, f'tools/data/{tool}.py', '--help'],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert 'input' in r.stdout and 'output' in r.stdout
    assert 'PoseDataset' in r.stdout


def test_write_requires_pkl(sbu_dir, tmp_path):
    with pytest.raises(ConversionError, match='.pkl'):
        convert_sbu(sbu_dir, str(tmp_path / 'out.pickle'), progress=False)


# ---------------------------------------------------------------- FPHA ----
def test_fpha_fixture(fpha_dir):
    data, report = build_fpha(fpha_dir, progress=False)
    _check_format(data, 21, 1)
    assert len(data['split']['train']) == 4
    assert data['split']['test'] == ['Subject_2/close_juice_bottle/1',
                                     'Subject_2/pour_milk/1']
    a = _by_name(data)['Subject_1/pour_milk/1']
    assert a['label'] == 2 and a['keypoint'].shape == (1, 9, 21, 3)
    np.testing.assert_allclose(a['keypoint'][0, 0, 0], 0, atol=1e-6)
    # mm -> m: joint spacing is 2 mm * index in the fixture
    d = a['keypoint'][0, 0, 20] - a['keypoint'][0, 0, 0]
    np.testing.assert_allclose(d, [0.12, 0.12, 0.12], atol=0.003)
    reasons = dict(report.skipped)
    missing = [r for p, r in reasons.items() if 'pour_milk/9' in p]
    assert missing and missing[0].startswith('missing')
    empty = [r for p, r in reasons.items() if 'pour_milk/2' in p]
    assert empty and empty[0].startswith('empty')


def test_fpha_bad_split_file(fpha_dir, tmp_path):
    with pytest.raises(ConversionError, match='split file'):
        build_fpha(fpha_dir, split_file=str(tmp_path / 'none.txt'),
                   progress=False)
    bad = tmp_path / 'split.txt'
    bad.write_text('Training 1\nSubject_1/pour_milk/1 x\n'
                   'Subject_1/open_juice_bottle/1 0\nTest 1\n'
                   'Subject_2/pour_milk/1 2\n')
    data, report = build_fpha(fpha_dir, split_file=str(bad), progress=False)
    assert any(p.endswith('split.txt:2') and 'not an int' in r
               for p, r in report.skipped)
    assert data['split']['train'] == ['Subject_1/open_juice_bottle/1']


# --------------------------------------------------------------- MSR3D ----
def test_msr_fixture(msr_dir):
    data, report = build_msr3d(msr_dir, progress=False)
    _check_format(data, 20, 1)
    annos = _by_name(data)
    assert len(annos) == 13  # 12 + a13_s02_e02; all-zero file skipped
    a = annos['a13_s02_e02']
    assert a['label'] == 12 and a['keypoint'].shape == (1, 6, 20, 3)
    np.testing.assert_allclose(a['keypoint'][0, 0, 6], 0, atol=1e-6)
    assert report.dropped_frames == 2
    assert set(data['split']['xsub_train']) == {
        n for n in annos if int(n[5:7]) % 2 == 1}
    assert set(data['split']['xsub_test']) == {
        n for n in annos if int(n[5:7]) % 2 == 0}
    reasons = {osp.basename(p): r for p, r in report.skipped}
    assert reasons['a13_s03_e02_skeleton3D.txt'].startswith('all-zero')
    assert reasons['a02_s04_e02_skeleton3D.txt'].startswith('unused')


def test_msr_subset_and_all_files(msr_dir):
    data, _ = build_msr3d(msr_dir, subset='AS1', progress=False)
    # AS1 = a02, a03, a05, a06, a10, a13, a18, a20 -> a02: 0, a13: 5
    labels = {n[:3]: a['label'] for n, a in _by_name(data).items()}
    assert labels == {'a02': 0, 'a13': 5}
    data, report = build_msr3d(msr_dir, all_files=True, progress=False)
    assert 'a02_s04_e02' in _by_name(data)


def test_msr_truncated(tmp_path):
    p = tmp_path / 'a01_s01_e01_skeleton3D.txt'
    p.write_text('0.1 0.2 2.0 1.0\n' * 30)  # 30 lines: not a multiple of 20
    (tmp_path / 'a01_s02_e01_skeleton3D.txt').write_text(
        '0.1 0.2 2.0 1.0\n' * 19 + '0.1 0.2 oops 1.0\n')
    (tmp_path / 'a01_s03_e01_skeleton3D.txt').write_text(
        '0.1 0.2 2.0 1.0\n' * 20)
    data, report = build_msr3d(str(tmp_path), all_files=True, progress=False)
    reasons = {osp.basename(p): r for p, r in report.skipped}
    assert 'multiple of 20' in reasons['a01_s01_e01_skeleton3D.txt']
    assert 'a01_s02_e01_skeleton3D.txt:20' in reasons[
        'a01_s02_e01_skeleton3D.txt']
    assert len(data['annotations']) == 1
    with pytest.raises(ConversionError, match='--all-files'):
        build_msr3d(str(tmp_path), progress=False)  # no list file


# ----------------------------------------------------------------- NTU ----
def test_ntu_fixture(ntu_dir):
    data, report = build_ntu(ntu_dir, progress=False)
    _check_format(data, 25, 2)
    annos = _by_name(data)
    assert sorted(annos) == ['S001C001P001R001A001', 'S001C002P003R001A002',
                             'S001C003P001R002A050', 'S002C001P003R001A003']
    assert annos['S001C003P001R002A050']['label'] == 49
    assert annos['S001C001P001R001A001']['keypoint'].shape == (1, 10, 25, 3)
    # 3 bodies -> the two moving ones, most active first, the still one out
    kp = annos['S001C003P001R002A050']['keypoint']
    assert kp.shape == (2, 9, 25, 3)
    assert np.all(kp[1, :2] == 0) and np.any(kp[1, 2:] != 0)  # body 3
    assert data['split']['xsub_train'] == ['S001C001P001R001A001',
                                           'S001C003P001R002A050']
    assert set(data['split']['xsub_val']) == {'S001C002P003R001A002',
                                              'S002C001P003R001A003'}
    assert set(data['split']['xview_train']) == {'S001C002P003R001A002',
                                                 'S001C003P001R002A050'}
    reasons = {osp.basename(p): r for p, r in report.skipped}
    assert 'S001C001P001R001A004.skeleton:11' in reasons[
        'S001C001P001R001A004.skeleton']
    assert reasons['S001C001P001R001A061.skeleton'].startswith('out of range')
    assert reasons['S001C001P001R001A005.skeleton'].startswith('no skeleton')


def test_ntu_parser_errors(tmp_path):
    p = tmp_path / 'S001C001P001R001A001.skeleton'
    p.write_text('2\n1\n1 0 1 2 1 2 0 0.1 -0.2 2\n25\n' +
                 '0 0 3 1 1 1 1 0 0 0 1 2\n' * 25)  # frame 2 missing
    with pytest.raises(NTUParseError, match='ends early'):
        read_ntu_skeleton(str(p))
    p.write_text('')
    with pytest.raises(NTUParseError, match='empty'):
        read_ntu_skeleton(str(p))
    with pytest.raises(ConversionError, match='no sequence'):
        build_ntu(str(tmp_path), progress=False)


def test_ntu_ignored(ntu_dir):
    data, report = build_ntu(ntu_dir, ignored=['S001C001P001R001A001'],
                             benchmarks=['xsub'], progress=False)
    assert 'S001C001P001R001A001' not in _by_name(data)
    assert set(data['split']) == {'xsub_train', 'xsub_val'}
    assert any(r.startswith('ignored') for _, r in report.skipped)


# ----------------------------------------------------------- real data ----
def test_real_sbu():
    data, report = built_real('sbu')
    _check_format(data, 15, 2)
    assert len(data['annotations']) == 282 and not report.skipped
    sizes = [len(data['split'][f'fold{k}_test']) for k in range(1, 6)]
    assert sizes == [55, 52, 56, 54, 65]
    for k in range(1, 6):
        assert len(data['split'][f'fold{k}_train']) == 282 - sizes[k - 1]
    assert sum(a['total_frames'] for a in data['annotations']) == 6822
    counts = np.bincount([a['label'] for a in data['annotations']])
    assert counts.tolist() == [42, 43, 40, 41, 18, 21, 39, 38]
    # metres, centred: everything within a few metres of the origin
    assert max(np.abs(a['keypoint']).max() for a in data['annotations']) < 5


def test_real_fpha():
    data, report = built_real('fpha')
    _check_format(data, 21, 1)
    assert len(data['split']['train']) == 600
    assert len(data['split']['test']) == 575
    assert len(data['annotations']) == 1175
    assert {a['label'] for a in data['annotations']} == set(range(45))
    empties = sorted(p for p, r in report.skipped if r.startswith('empty'))
    assert len(empties) == 3 and len(report.skipped) == 3
    assert sum(a['total_frames'] for a in data['annotations']) == 105459


def test_real_msr3d():
    data, report = built_real('msr3d')
    _check_format(data, 20, 1)
    assert len(data['annotations']) == 557
    assert len(data['split']['xsub_train']) + len(
        data['split']['xsub_test']) == 557
    assert {a['label'] for a in data['annotations']} == set(range(20))
    for a in data['annotations']:  # no all-zero frame survives
        assert np.all(np.any(a['keypoint'][0] != 0, axis=(1, 2)))
    dropped = [w for w in report.warnings if 'all-zero' in w]
    assert len(dropped) == 13  # the 13 listed files with zero frames
    assert all(r.startswith('unused') for _, r in report.skipped)
    assert len(report.skipped) == 10
