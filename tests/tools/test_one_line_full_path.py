"""The one-line path is the full path: MMAction2's *stock* ST-GCN config + the one model line.

- Every data problem (missing, empty, truncated, non-pickle files; no ``split`` / ``annotations``; a split
  that is not in the file; wrong joint count for the graph; NaN/inf coordinates) stops ``tools/train.py``,
  ``tools/test.py`` and ``tools/export.py`` with exit code 2 and one ``error:`` line naming the file and the
  config field, without a traceback, although the stock config builds MMAction2's ``PoseDataset``.
- ``tools/train.py`` adds ``SemiPruneHook`` (logged once), so the one line writes ``*_pruned.pth`` and
  ``prune_rate`` metrics; ``semiprune_hook=False`` opts out.
- ``tools/export.py WORK_DIR OUT`` exports that run; the run's own ``epoch_N.pth`` exports without
  ``--trust-checkpoint``.
"""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

import mmaction
from mmengine.config import Config
from tests.tools._tools import load_tool

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
STOCK = osp.join(osp.dirname(mmaction.__file__), '.mim', 'configs', 'skeleton', 'stgcn',
                 'stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py')
ONE_LINE = ['model.type=mmsemiprune.SemiPruneRecognizerGCN', 'model.prune_cfg.target_rate=0.9']
TRAIN_ANN = 'train_dataloader.dataset.dataset.ann_file'  # inside the stock RepeatDataset
VAL_ANN = 'val_dataloader.dataset.ann_file'
TEST_ANN = 'test_dataloader.dataset.ann_file'




@pytest.fixture(scope='module')
def good_pkl(tmp_path_factory):
    from mmsemiprune.datasets.demo import write_demo_dataset
    path = str(tmp_path_factory.mktemp('full_path') / 'good.pkl')
    write_demo_dataset(path, 4, 2, 0, progress=False)
    return path


def _edited(good, dst, fn):
    with open(good, 'rb') as f:
        d = pickle.load(f)
    d = fn(d) or d
    with open(dst, 'wb') as f:
        pickle.dump(d, f)


def _poison(value):
    def fn(d):
        d['annotations'][0]['keypoint'][0, 2, 4, 1] = value
    return fn


def _drop_joints(d):
    d['annotations'][0]['keypoint'] = d['annotations'][0]['keypoint'][:, :, :20]


# name -> (how to make the file, expected text of the error line)
CASES = {
    'missing': (None, 'file not found'),
    'empty': (lambda good, p: open(p, 'wb').close(), 'file is empty (0 bytes)'),
    'truncated': (lambda good, p: open(p, 'wb').write(open(good, 'rb').read()[:3000]),
                  'not a readable pickle (truncated, corrupted or not a pickle at all): UnpicklingError'),
    'not_pickle': (lambda good, p: open(p, 'w').write('frame_dir,label\nS001,0\n'), 'not a readable pickle'),
    'no_split': (lambda good, p: _edited(good, p, lambda d: dict(annotations=d['annotations'])),
                 "pickle has no 'split' key, so split 'xsub_train' cannot be selected"),
    'no_annotations': (lambda good, p: _edited(good, p, lambda d: dict(split=d['split'])),
                       "pickle has no 'annotations' key"),
    'wrong_joints': (lambda good, p: _edited(good, p, _drop_joints),
                     "keypoint has 20 joints but the model (model.backbone.graph_cfg.layout='nturgb+d') expects 25"),
    'nan': (lambda good, p: _edited(good, p, _poison(np.nan)),
            'keypoint has 1 NaN/inf values (first at person 0, frame 2, joint 4)'),
    'inf': (lambda good, p: _edited(good, p, _poison(-np.inf)),
            'keypoint has 1 NaN/inf values (first at person 0, frame 2, joint 4)'),
}


def _bad_file(case, good, tmp_path):
    make, _ = CASES[case]
    path = str(tmp_path / f'{case}.pkl')
    if make is not None:
        make(good, path)
    return path


def _single_error_line(output):
    assert 'Traceback' not in output, output[-3000:]
    lines = [ln for ln in output.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


@pytest.mark.parametrize('case', sorted(CASES))
def test_train_stock_config_bad_train_data(case, good_pkl, tmp_path, run_tool, sp):
    bad = _bad_file(case, good_pkl, tmp_path)
    proc = run_tool('train.py', STOCK, '--work-dir', tmp_path / 'w', '--cfg-options', *ONE_LINE,
                    f'{TRAIN_ANN}={bad}', f'{VAL_ANN}={good_pkl}', timeout=120)
    assert proc.returncode == 2, sp.tail(proc)
    line = _single_error_line(proc.output)
    assert line.startswith(f"error: Bad pose annotation file '{bad}'")
    assert CASES[case][1] in line and 'Fix: ' in line
    assert line.endswith(f'(config: {TRAIN_ANN})')
    assert not osp.exists(tmp_path / 'w')  # stopped before the Runner was built


def test_train_stock_config_unknown_split_and_bad_val_data(good_pkl, tmp_path, run_tool, sp):
    proc = run_tool('train.py', STOCK, '--work-dir', tmp_path / 'w', '--cfg-options', *ONE_LINE,
                    f'{TRAIN_ANN}={good_pkl}', f'{VAL_ANN}={good_pkl}', 'val_dataloader.dataset.split=xsub_nope')
    assert proc.returncode == 2, sp.tail(proc)
    line = _single_error_line(proc.output)
    assert f"'{good_pkl}': unknown split 'xsub_nope'; available splits: ['xsub_train', 'xsub_val']" in line
    assert 'Fix: set val_dataloader.dataset.split to one of them' in line
    assert line.endswith('(config: val_dataloader.dataset.split)')
    bad = str(tmp_path / 'nan_val.pkl')

    def poison_val(d):
        i = next(i for i, a in enumerate(d['annotations']) if a['frame_dir'] == d['split']['xsub_val'][0])
        d['annotations'][i]['keypoint'][0, 1, 3, 0] = np.nan
    _edited(good_pkl, bad, poison_val)
    proc = run_tool('train.py', STOCK, '--work-dir', tmp_path / 'w', '--cfg-options', *ONE_LINE,
                    f'{TRAIN_ANN}={good_pkl}', f'{VAL_ANN}={bad}', timeout=120)
    assert proc.returncode == 2, sp.tail(proc)
    line = _single_error_line(proc.output)
    assert 'keypoint has 1 NaN/inf values (first at person 0, frame 1, joint 3)' in line
    assert line.endswith(f'(config: {VAL_ANN})')


@pytest.mark.parametrize('case', ['truncated', 'wrong_joints', 'nan'])
def test_test_py_stock_config_bad_data(case, good_pkl, tmp_path, run_tool, sp):
    bad = _bad_file(case, good_pkl, tmp_path)
    if case != 'truncated':  # the first annotation is a training sample: put it into the test split
        _edited(bad, bad, lambda d: d['split']['xsub_val'].insert(0, d['annotations'][0]['frame_dir']))
    ckpt = tmp_path / 'any.pth'
    torch.save({}, str(ckpt))  # never read: the data is checked first
    proc = run_tool('test.py', STOCK, ckpt, '--work-dir', tmp_path / 'w', '--cfg-options', *ONE_LINE,
                    f'{TEST_ANN}={bad}')
    assert proc.returncode == 2, sp.tail(proc)
    line = _single_error_line(proc.output)
    assert line.startswith(f"error: Bad pose annotation file '{bad}'") and CASES[case][1] in line
    assert line.endswith(f'(config: {TEST_ANN})')


@pytest.mark.parametrize('case, inputs', [('truncated', 'auto'), ('nan', 'auto'), ('missing', 'data')])
def test_export_stock_config_bad_test_data(case, inputs, good_pkl, tmp_path, capsys):
    bad = _bad_file(case, good_pkl, tmp_path)
    if case == 'nan':
        _edited(bad, bad, lambda d: d['split']['xsub_val'].insert(0, d['annotations'][0]['frame_dir']))
    ckpt = tmp_path / 'any.pth'
    torch.save({}, str(ckpt))
    with pytest.raises(SystemExit) as e:
        load_tool('export').main([STOCK, str(ckpt), str(tmp_path / 'out'), '--inputs', inputs, '--cfg-options',
                              *ONE_LINE, f'{TEST_ANN}={bad}'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: Bad pose annotation file '{bad}'") and '\n' not in err
    assert CASES[case][1] in err and err.endswith(f'(config: {TEST_ANN})')
    assert not osp.exists(tmp_path / 'out')


# -- SemiPruneHook is added by tools/train.py ----------------------------------------------------------------
def test_add_semiprune_hook_rules():
    from _common import add_semiprune_hook  # noqa: I100  (tools/ is on sys.path via load_tool)
    from mmsemiprune.compat import ConfigError

    def cfg(**kw):
        c = Config.fromfile(STOCK)
        c.merge_from_dict({'model.type': 'mmsemiprune.SemiPruneRecognizerGCN', 'model.prune_cfg.target_rate': 0.9})
        c.merge_from_dict(kw)
        return c
    c = cfg()
    assert 'semiprune_hook=False' in add_semiprune_hook(c)
    assert c.custom_hooks == [dict(type='mmsemiprune.SemiPruneHook')]
    assert add_semiprune_hook(c) is None and len(c.custom_hooks) == 1  # never twice
    c = cfg(semiprune_hook=False)
    assert add_semiprune_hook(c) is None and not c.get('custom_hooks')
    c = cfg(semiprune_hook=dict(log_interval=1))
    add_semiprune_hook(c)
    assert c.custom_hooks == [dict(type='mmsemiprune.SemiPruneHook', log_interval=1)]
    c = Config.fromfile(STOCK)  # a dense stock model gets no hook
    assert add_semiprune_hook(c) is None and not c.get('custom_hooks')
    with pytest.raises(ConfigError, match='semiprune_hook must be True, False or a dict'):
        add_semiprune_hook(cfg(semiprune_hook='yes'))


load_tool('export')  # puts tools/ on sys.path for test_add_semiprune_hook_rules


@pytest.fixture(scope='module')
def one_line_run(good_pkl, tmp_path_factory, run_tool):
    """The stock config + the one line, trained for 2 iterations on 4 clips: no hook in the config."""
    work = tmp_path_factory.mktemp('one_line_run') / 'work'
    opts = [*ONE_LINE, f'{TRAIN_ANN}={good_pkl}', f'{VAL_ANN}={good_pkl}', f'{TEST_ANN}={good_pkl}',
            'train_dataloader.dataset.times=1', 'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1', 'default_hooks.checkpoint.save_best=None']
    proc = run_tool('train.py', STOCK, '--work-dir', work, '--cfg-options', *opts, timeout=400)
    assert proc.returncode == 0, proc.output[-3000:]
    return str(work), proc.output


def test_train_adds_the_hook_once(one_line_run):
    work, out = one_line_run
    assert out.count("added {'type': 'mmsemiprune.SemiPruneHook'} to custom_hooks") == 1
    name = osp.splitext(osp.basename(STOCK))[0]
    ck = torch.load(osp.join(work, f'{name}_pruned.pth'), weights_only=True)  # written by the hook
    assert abs(ck['meta']['mmsemiprune']['rate_params'] - 0.9) <= 0.01
    assert 'prune_rate: ' in out.split('Epoch(val)')[-1]  # the hook's validation metric
    assert 'pruning report' in out


def test_export_from_the_work_dir(one_line_run, tmp_path, capsys):
    work, _ = one_line_run
    name = osp.splitext(osp.basename(STOCK))[0]
    out = str(tmp_path / 'out')
    rc = load_tool('export').main([work, out, '--num-check', '2'])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert f'exporting {osp.join(work, name + "_pruned.pth")} (config {osp.join(work, name + ".py")})' in printed
    assert {'model.pth', 'config.py', 'report.json'} <= set(os.listdir(out))
    cfg = Config.fromfile(osp.join(out, 'config.py'))
    assert cfg.model.type == 'mmsemiprune.CompactRecognizerGCN'
    assert 'test data through the pipeline' in printed and 'OK' in printed


def test_export_the_runs_own_epoch_checkpoint_without_flags(one_line_run, tmp_path, capsys):
    work, _ = one_line_run
    epoch = osp.join(work, 'epoch_1.pth')
    rc = load_tool('export').main([epoch, str(tmp_path / 'a'), '--inputs', 'synthetic', '--num-check', '2'])
    assert rc == 0, capsys.readouterr()
    # the stock config file itself + the run's epoch_1.pth: its folder holds the dump of a run of that config
    rc = load_tool('export').main([STOCK, epoch, str(tmp_path / 'b'), '--inputs', 'synthetic', '--num-check', '2',
                               '--cfg-options', *ONE_LINE])
    assert rc == 0, capsys.readouterr()
    # the same file elsewhere still needs trust
    other = tmp_path / 'elsewhere' / 'epoch_1.pth'
    other.parent.mkdir()
    other.write_bytes(open(epoch, 'rb').read())
    with pytest.raises(SystemExit) as e:
        load_tool('export').main([STOCK, str(other), str(tmp_path / 'c'), '--inputs', 'synthetic',
                              '--cfg-options', *ONE_LINE])
    assert e.value.code == 2 and '--trust-checkpoint to tools/export.py' in capsys.readouterr().err


def test_export_work_dir_errors(tmp_path, capsys):
    def error_of(argv):
        with pytest.raises(SystemExit) as e:
            load_tool('export').main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith('error: ') and '\n' not in err
        return err
    empty = tmp_path / 'empty_run'
    empty.mkdir()
    assert 'holds no *_pruned.pth and no last_checkpoint' in error_of([str(empty), str(tmp_path / 'o')])
    assert 'does not exist' in error_of([str(tmp_path / 'nope'), str(tmp_path / 'o')])
    two = tmp_path / 'two_runs'
    two.mkdir()
    for n in ('a', 'b'):
        (two / f'{n}.py').write_text('')
        torch.save({}, str(two / f'{n}_pruned.pth'))
    assert 'holds several runs (a_pruned.pth, b_pruned.pth)' in error_of([str(two), str(tmp_path / 'o')])
