"""Bad configuration: one ConfigError naming the field and the fix, raised while the model is built (before
any data is read or any step is taken); through tools/train.py one ``error:`` line, exit code 2."""
import os
import os.path as osp

import pytest
from conftest import build_model, run_tool
from mmengine.logging import MessageHub

from mmsemiprune.compat import ConfigError


@pytest.mark.parametrize('rate', [0, 1, 1.5, -0.1, 'x', None, True])
def test_target_rate_outside_0_1(rate):
    with pytest.raises(ConfigError) as ei:
        build_model(target_rate=rate)
    msg = str(ei.value)
    assert 'prune_cfg.target_rate' in msg and 'strictly between 0 and 1' in msg and repr(rate) in msg
    assert 'target_rate=0.9' in msg  # the fix, by example


def test_unknown_mode():
    with pytest.raises(ConfigError, match=r"unknown pruning mode 'sparse'; choose one of semi, structured, "
                       r"unstructured, ctf .*prune_cfg=dict\(mode='semi'\)"):
        build_model(mode='sparse')


def test_unknown_group_role_and_group_kind():
    with pytest.raises(ConfigError, match=r"unknown prune_cfg.groups role 'bogus'; roles are gcn, tcn"):
        build_model(groups=dict(bogus=['out']))
    with pytest.raises(ConfigError, match=r"prune_cfg.groups.tcn: unknown group kind 'chan'; choose one of .*out"):
        build_model(groups=dict(tcn=['chan']))
    with pytest.raises(ConfigError, match=r"prune_cfg.groups.tcn must be a list of group specs such as \['out'\]"):
        build_model(groups=dict(tcn='out'))


def test_unknown_prune_cfg_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown prune_cfg key\(s\) \['target'\]; valid keys: target_rate"):
        build_model(target=0.5)


def test_backbone_the_plugin_cannot_prune():
    bb = dict(type='RelTinyBackbone')  # registered in MMAction2's MODELS by rel_helpers
    with pytest.raises(ConfigError) as ei:
        build_model(backbone=bb)
    msg = str(ei.value)
    assert "cannot prune backbone 'RelTinyBackbone'" in msg and 'STGCN' in msg
    assert 'targets=[dict(pattern=' in msg  # the fix
    # ... and the fix works: explicit targets prune any backbone
    model = build_model(backbone=bb, targets=[dict(pattern=r'backbone\.conv', groups=['out'])])
    assert [k for k, *_ in model.pruner.items()] == ['backbone.conv.weight']


def test_targets_that_match_no_tensor():
    with pytest.raises(ConfigError, match=r"prune_cfg.targets pattern 'backbone\.nothing.*' \(param 'weight'\) "
                       r"matches no tensor; module names look like backbone.gcn.0.gcn.conv"):
        build_model(targets=[dict(pattern='backbone.nothing.*')])
    with pytest.raises(ConfigError, match=r"\(param 'scale'\) matches no tensor"):
        build_model(targets=[dict(pattern=r'backbone\.gcn\.0\.gcn\.conv', param='scale')])
    with pytest.raises(ConfigError, match=r"unknown prune_cfg.targets role 'heads'"):
        build_model(targets=dict(heads=True))
    with pytest.raises(ConfigError, match=r'selects no tensor of STGCN; enable at least one role'):
        build_model(targets=dict(gcn=False, tcn=False, residual=False))


def _progress(model, it, max_iters, max_epochs):
    hub = MessageHub.get_instance('rel_schedule_check')
    hub.update_info('iter', it)
    hub.update_info('max_iters', max_iters)
    hub.update_info('max_epochs', max_epochs)
    model.update_schedule()


@pytest.mark.parametrize('sched, field', [(dict(freeze_iters=10**6), 'freeze_iters=1000000'),
                                          (dict(warmup_iters=9), 'warmup_iters=9'),
                                          (dict(freeze_epochs=3), 'freeze_epochs=3')])
def test_schedule_longer_than_the_run(sched, field):
    model = build_model(schedule=sched)
    with pytest.raises(ConfigError, match=rf'prune_cfg.schedule.{field} is longer than the run '
                       r'\(max_(iters=8|epochs=2)\); lower it or train longer'):
        _progress(model, 0, 8, 2)  # the check runs at the first step, before its forward pass
    assert float(model.pruner.progress) == 0.0


def test_schedule_that_fits_is_resolved():
    model = build_model(schedule=dict(warmup_epochs=1, freeze_epochs=2))
    _progress(model, 0, 8, 4)
    assert (model.pruner.schedule.warmup, model.pruner.schedule.freeze) == (0.25, 0.5)


@pytest.mark.parametrize('bad', [dict(freeze_iters=-1), dict(freeze_epochs=1.5), dict(warmup=2.0),
                                 dict(warmup=0.9, freeze=0.5), dict(speed=1)])
def test_schedule_bad_values(bad):
    with pytest.raises(ConfigError, match=r'schedule'):
        build_model(schedule=bad)


@pytest.mark.slow
def test_train_tool_prints_one_error_line(write_config, tmp_path, run_tool_inproc):
    """Through tools/train.py: ``error: <message>``, exit code 2, no traceback; --debug shows it."""
    cfg = write_config('rel_cfg_rate')
    code, out, err = run_tool('train', cfg, '--work-dir', tmp_path / 'w', '--cfg-options',
                              'model.prune_cfg.target_rate=1.5')
    assert code == 2, err[-2000:]
    assert 'Traceback' not in err and 'Traceback' not in out
    lines = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert lines == ['error: prune_cfg.target_rate must be a fraction strictly between 0 and 1 (the share of '
                     'weights to remove), got 1.5; e.g. target_rate=0.9 keeps 10 % of the prunable weights']
    assert '--debug' in err
    # other config errors, in-process (same cli() path, no interpreter start-up)
    for i, (opt, text) in enumerate([
            ('model.prune_cfg.mode=sparse', "error: unknown pruning mode 'sparse'"),
            ('model.prune_cfg.groups.tcn=[chan]', "error: prune_cfg.groups.tcn: unknown group kind 'chan'"),
            ('model.prune_cfg.target_rate=x', "got 'x'")]):
        code, err = run_tool_inproc('train', write_config(f'rel_cfg_inproc{i}'), '--work-dir', tmp_path / f'w{i}',
                                    '--cfg-options', opt)
        assert code == 2 and text in err, (opt, err[-1500:])
    with pytest.raises(ConfigError):  # --debug: the exception (and its traceback) instead of the one line
        run_tool_inproc('train', write_config('rel_cfg_debug'), '--work-dir', tmp_path / 'wd', '--debug',
                        '--cfg-options', 'model.prune_cfg.mode=sparse')


@pytest.mark.slow
@pytest.mark.parametrize('opt, text', [
    ('model.prune_cfg.schedule.freeze_iters=1000000',
     'error: prune_cfg.schedule.freeze_iters=1000000 is longer than the run (max_iters=4)'),
    ('model.prune_cfg.schedule.freeze_epochs=5',
     'error: prune_cfg.schedule.freeze_epochs=5 is longer than the run (max_epochs=2)')])
def test_train_tool_schedule_longer_than_run_fails_before_first_step(write_config, tmp_path, run_tool_inproc,
                                                                     opt, text):
    cfg = write_config('rel_cfg_sched_' + opt.split('.')[-1].split('=')[0])
    work = tmp_path / 'w'
    code, err = run_tool_inproc('train', cfg, '--work-dir', work, '--cfg-options', opt)
    assert code == 2 and text in err, err[-2000:]
    assert 'lower it or train longer' in err
    assert not [f for f in (osp.join(work, n) for n in ('epoch_1.pth', 'last_checkpoint')) if osp.exists(f)]
    logs = [osp.join(work, d, f'{d}.log') for d in os.listdir(work) if osp.isdir(osp.join(work, d))]
    assert logs and all('Epoch(train)' not in open(f).read() for f in logs)  # no step was completed (nor logged)
