"""PruneConfig: the one source of prune_cfg keys, defaults, validation and schedule units; the README's
key table is checked against it."""
import os.path as osp
import re

import pytest

from mmsemiprune.core.config import PruneConfig
from mmsemiprune.core.schedule import PruneSchedule

README = osp.join(osp.dirname(__file__), '..', '..', 'README.md')


def _readme_keys():
    rows = [ln for ln in open(README, encoding='utf-8').read().splitlines() if re.match(r'^\| `\w+` \|', ln)]
    return {re.match(r'^\| `(\w+)` \|', ln).group(1): ln for ln in rows}


def test_readme_key_table_matches_the_dataclass():
    table = _readme_keys()
    assert set(table) == set(PruneConfig.keys()), f'README table vs PruneConfig: {set(table) ^ set(PruneConfig.keys())}'
    assert PruneConfig.markdown_table() in open(README, encoding='utf-8').read(), \
        'README key table is stale: paste PruneConfig.markdown_table()'


def test_defaults_and_pruner_kwargs():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9))
    kw = cfg.pruner_kwargs()
    assert kw['mode'] == 'semi' and kw['budget_weight'] == 5.0 and kw['gate_price_by'] == 'both'
    assert kw['hard_phase'] and kw['mask_bias'] and kw['target_macs'] is None
    assert isinstance(kw['schedule'], PruneSchedule) and kw['schedule'].freeze == 0.8


@pytest.mark.parametrize('bad,msg', [
    (dict(), 'needs prune_cfg with a target_rate'),
    (dict(target_rate=1.0), 'target_rate must be a fraction'),
    (dict(target_rate=0.9, bogus=1), r"unknown prune_cfg key\(s\) \['bogus'\]"),
    (dict(target_rate=0.9, mode='sparse'), 'unknown pruning mode'),
    (dict(target_rate=0.9, cost='time'), 'unknown prune_cfg.cost'),
    (dict(target_rate=0.9, layer_floor=0.5), 'layer_floor=0.5 keeps more than the whole budget'),
    (dict(target_rate=0.9, gate_price=-1), 'prune_cfg.gate_price must be in'),
    (dict(target_rate=0.9, gate_init='x'), "gate_init must be a number or 'score'"),
    (dict(target_rate=0.9, hard_phase='yes'), 'hard_phase must be True or False'),
    (dict(target_rate=0.9, target_macs=1.5), 'target_macs must be a fraction'),
    (dict(target_rate=0.9, distill=dict(weight=-1)), 'distill.weight'),
    (dict(target_rate=0.9, groups=dict(tcn='out')), 'prune_cfg.groups.tcn must be a list'),
    (dict(target_rate=0.9, schedule=dict(warmup=0.9, freeze=0.5)), 'must not exceed'),
    (dict(target_rate=0.9, schedule=dict(warm=0.1)), 'bad prune_cfg.schedule'),
    (dict(target_rate=0.9, schedule=dict(warmup_iters=-1)), 'non-negative integer'),
    (dict(target_rate=0.9, oneshot=True, schedule=dict(warmup=0.1)), 'drop prune_cfg.schedule'),
    (dict(target_rate=0.9, prune_head=True), 'never pruned'),
    (dict(target_rate=0.9, projection_search='newton'), 'projection_search'),
])
def test_validation_names_the_field(bad, msg):
    with pytest.raises(ValueError, match=msg):
        PruneConfig.from_dict(bad)


def test_schedule_units_resolved_once_against_the_run():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9, schedule=dict(warmup_epochs=2, freeze_iters=60, hard_iters=50)))
    sched = cfg.pruner_kwargs()['schedule']
    cfg.resolve_schedule(sched, max_iters=100, max_epochs=10)
    assert (sched.warmup, sched.freeze, sched.hard) == (0.2, 0.6, 0.5)
    with pytest.raises(ValueError, match='longer than the run'):
        cfg.resolve_schedule(cfg.pruner_kwargs()['schedule'], max_iters=40, max_epochs=10)
    with pytest.raises(ValueError, match='needs an epoch-based run'):
        cfg.resolve_schedule(cfg.pruner_kwargs()['schedule'], max_iters=100, max_epochs=None)


def test_oneshot_freezes_at_the_first_step():
    sched = PruneConfig.from_dict(dict(target_rate=0.9, oneshot=True)).pruner_kwargs()['schedule']
    assert sched.frozen(0.0)
