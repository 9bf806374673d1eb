"""The baselines that ask whether pruning is worth it: dense_small / dense_small_ft (widths), gmp, random."""
import os.path as osp

import pytest

from mmsemiprune.leaderboard import expand_sweep, prune_cfg_for
from mmsemiprune.leaderboard.spec import RunSpec

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SBU = osp.join(ROOT, 'configs/leaderboard/stgcn_sbu.py')
PRUNE = dict(mask_epochs=4, finetune_epochs=8, lr=0.02, schedule=dict(warmup=0.0833),
             distill=dict(weight=1.0, temperature=4.0))


def test_widths_expand_into_their_own_runs():
    g = dict(dataset='sbu', backbone='stgcn', config=SBU, folds=[1], methods=['dense', 'dense_small', 'gmp'],
             rates=[0.9], widths=[4, 8])
    runs = expand_sweep(dict(groups=[g]))
    names = [r.name for r in runs]
    assert names == ['dense', 'gmp_r0.9', 'dense_small_w4', 'dense_small_w8']
    assert len({r.key for r in runs}) == 4 and runs[2].width == 4 and runs[2].rate is None
    with pytest.raises(ValueError, match='widths'):
        expand_sweep(dict(groups=[dict(g, widths=[])]))
    with pytest.raises(ValueError, match='widths'):
        expand_sweep(dict(groups=[dict(g, widths=[0])]))
    # a group of width methods only needs no rates
    assert len(expand_sweep(dict(groups=[dict(g, methods=['dense_small'], rates=None)]))) == 2


def test_gmp_is_a_cubic_ramp_of_hard_magnitude_masks_over_the_mask_phase():
    c = prune_cfg_for('gmp', 0.9, PRUNE)
    assert c['mode'] == 'unstructured' and c['scorer'] == 'magnitude'
    assert c['schedule'] == dict(warmup=4 / 12, freeze=4 / 12, hard=0.0)


def test_random_is_semi_oneshot_on_random_scores():
    r, s = prune_cfg_for('random', 0.9, PRUNE), prune_cfg_for('semi_oneshot', 0.9, PRUNE)
    assert (r.pop('scorer'), s.pop('scorer')) == ('random', 'magnitude') and r == s and r['schedule'] == 'oneshot'


def test_no_prune_cfg_for_dense_methods():
    for m in ('dense', 'dense_small', 'dense_small_ft'):
        with pytest.raises(ValueError, match='no prune_cfg'):
            prune_cfg_for(m, 0.9)


def test_dense_small_configs():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    small = build_run_config(RunSpec('sbu', 'stgcn', 'dense_small', SBU, None, 2, prune=PRUNE, width=10))
    assert small.model.type == 'RecognizerGCN' and small.model.backbone.base_channels == 10
    assert small.model.cls_head.in_channels == 40 and small.train_cfg.max_epochs == 50  # the dense recipe
    assert small.train_dataloader.dataset.split == 'fold2_fit' and 'load_from' not in small or not small.load_from
    ft = build_run_config(RunSpec('sbu', 'stgcn', 'dense_small_ft', SBU, None, 2, prune=PRUNE, width=8),
                          dense_ckpt='/x/dense_weights.pth')
    assert ft.model.type == 'mmsemiprune.DistillRecognizerGCN' and ft.model.backbone.base_channels == 8
    assert ft.train_cfg.max_epochs == 12 and ft.param_scheduler[0].T_max == 12  # a learned run's budget
    assert ft.optim_wrapper.optimizer.lr == 0.1  # the dense recipe's optimizer, from scratch
    d = ft.model.distill
    assert d.checkpoint == '/x/dense_weights.pth' and d.weight == 1.0 and d.temperature == 4.0
    assert d.teacher.backbone.base_channels == 16 and d.teacher.cls_head.in_channels == 64
    assert not ft.get('load_from')
    with pytest.raises(ValueError, match='dense checkpoint'):
        build_run_config(RunSpec('sbu', 'stgcn', 'dense_small_ft', SBU, None, 2, prune=PRUNE, width=8))


def test_which_runs_wait_for_the_dense_run():
    from mmsemiprune.leaderboard.methods import needs_dense
    mk = lambda m, **kw: RunSpec('sbu', 'stgcn', m, SBU, 0.9, 1, prune=dict(PRUNE), **kw)  # noqa: E731
    assert not needs_dense(mk('dense')) and not needs_dense(mk('dense_small', width=8))
    assert needs_dense(mk('dense_small_ft', width=8)) and needs_dense(mk('gmp')) and needs_dense(mk('random'))


def test_cli_rates_filter_keeps_runs_without_a_rate(tmp_path, capsys):
    import yaml

    from mmsemiprune.leaderboard.cli import main
    g = dict(dataset='sbu', backbone='stgcn', config=SBU, folds=[1], methods=['dense', 'dense_small', 'gmp'],
             rates=[0.9, 0.98], widths=[4])
    spec = tmp_path / 's.yaml'
    spec.write_text(yaml.safe_dump(dict(groups=[g])))
    assert main(['--sweep', str(spec), '--runs-dir', str(tmp_path / 'r'), '--rates', '0.98', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '3 sweep runs' in out and 'gmp_r0.98' in out and 'gmp_r0.9\n' not in out and 'dense_small_w4' in out


def _lr_trace(cfg, epoch_length=5):
    """The lr at every iteration of a run, from the config's MMEngine schedulers on a one-parameter SGD."""
    import torch
    import mmengine.optim  # noqa: F401 (registers the schedulers)
    from mmengine.registry import PARAM_SCHEDULERS as REG
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    scheds = []
    for s in cfg.param_scheduler:
        s = dict(s)
        cls = REG.get(s.pop('type'))
        s.pop('convert_to_iter_based')
        scheds.append(cls.build_iter_from_epoch(opt, epoch_length=epoch_length, **s))
    out = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        out.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in scheds:
            s.step()
    return out


@pytest.mark.parametrize('mode', ['constant', 'cosine', 'rewind'])
def test_mask_phase_lr_schedules(mode):
    """prune.mask_lr: the mask phase (4 epochs) constant / annealed / constant, then the 8-epoch fine-tune from
    0.02 (constant, cosine) or rewound to the dense recipe's 0.1, annealed to 0; one-shot runs keep their cosine."""
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    prune = dict(PRUNE, mask_lr=mode)
    cfg = build_run_config(RunSpec('sbu', 'stgcn', 'semi', SBU, 0.9, 1, prune=prune), dense_ckpt='/x/d.pth')
    assert 'mask_lr' not in cfg.model.prune_cfg
    lr = _lr_trace(cfg)
    mask, ft = lr[:20], lr[20:]
    assert len(ft) == 40
    if mode == 'cosine':
        assert mask[0] == pytest.approx(0.02) and mask[-1] < 0.002 and all(a >= b for a, b in zip(mask, mask[1:]))
    else:
        assert mask == pytest.approx([0.02] * 20)
    top = 0.1 if mode == 'rewind' else 0.02
    assert ft[0] == pytest.approx(top) and ft[-1] < 0.01 * top and all(a >= b for a, b in zip(ft, ft[1:]))
    oneshot = build_run_config(RunSpec('sbu', 'stgcn', 'magnitude', SBU, 0.9, 1, prune=prune), dense_ckpt='/x/d.pth')
    one = _lr_trace(oneshot)
    assert len(one) == 40 and one == pytest.approx(_lr_trace(build_run_config(
        RunSpec('sbu', 'stgcn', 'magnitude', SBU, 0.9, 1, prune=PRUNE), dense_ckpt='/x/d.pth')))
    assert one == pytest.approx(lr[20:]) if mode != 'rewind' else one[0] == pytest.approx(0.02)


def test_unknown_mask_lr_is_one_clear_error():
    pytest.importorskip('mmaction')
    from mmsemiprune.leaderboard import build_run_config
    with pytest.raises(ValueError, match="unknown prune.mask_lr 'step'; choose one of constant, cosine, rewind"):
        build_run_config(RunSpec('sbu', 'stgcn', 'semi', SBU, 0.9, 1, prune=dict(PRUNE, mask_lr='step')),
                         dense_ckpt='/x/d.pth')
