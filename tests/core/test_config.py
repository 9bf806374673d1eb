"""PruneConfig: the one source of prune_cfg keys, groups, defaults, validation, deprecated spellings and
schedule units; the key table of docs/prune_cfg.md and the class docstring are checked against it."""
import os
import os.path as osp
import re
import warnings
from dataclasses import fields

import pytest

from mmsemiprune.core.config import GROUPS, Ablation, PruneConfig, PruneConfigDeprecationWarning
from mmsemiprune.core.schedule import PruneSchedule

README = osp.join(osp.dirname(__file__), '..', '..', 'docs', 'prune_cfg.md')


def _readme_keys():
    rows = [ln for ln in open(README, encoding='utf-8').read().splitlines() if re.match(r'^\| `\w+` \|', ln)]
    return {re.match(r'^\| `(\w+)` \|', ln).group(1): ln for ln in rows}


def test_key_table_in_the_docs_matches_the_dataclass():
    table = _readme_keys()
    assert set(table) == set(PruneConfig.keys()), f'docs/prune_cfg.md vs PruneConfig: {set(table) ^ set(PruneConfig.keys())}'
    assert PruneConfig.markdown_table() in open(README, encoding='utf-8').read(), \
        'docs/prune_cfg.md is stale: paste PruneConfig.markdown_table()'


def test_defaults():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9))
    assert cfg.mode == 'semi' and cfg.budget_weight == 5.0 and cfg.gate_price_by == 'both'
    assert cfg.ablation.hard_phase and cfg.ablation.mask_bias and cfg.target_macs is None
    assert cfg.scorer == 'normalized' and not cfg.oneshot and cfg.ablation.changed() == {}
    assert cfg.allocation == 'per_mac' and cfg.channel_floor == 0.0
    assert isinstance(cfg.build_schedule(), PruneSchedule) and cfg.build_schedule().freeze == 0.8


def test_every_key_has_a_group_and_is_named_in_the_docstring():
    """The class docstring lists the keys by group (basic / advanced / performance / ablation)."""
    doc = PruneConfig.__doc__
    heads = [doc.index(h) for h in ('Basic keys', 'Advanced keys', 'Performance knobs', 'Ablation switches')]
    assert heads == sorted(heads)
    sections = dict(zip(GROUPS, [doc[a:b] for a, b in zip(heads, heads[1:] + [len(doc)])]))
    for f in fields(PruneConfig):
        assert f.metadata['group'] in GROUPS and f.metadata['doc']
        assert re.search(rf'\b{f.name}\b', sections[f.metadata['group']]), f'{f.name} not under its group heading'
    for name in Ablation.keys():
        assert re.search(rf'\b{name}\b', sections['ablation']), name
    assert set(PruneConfig.keys('basic')) == {'target_rate', 'mode', 'target_macs', 'schedule', 'distill'}
    assert set(PruneConfig.keys('performance')) == {'update_every', 'cuda_graphs'}


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
    (dict(target_rate=0.9, ablation=dict(hard_phase='yes')), r'prune_cfg\.ablation\.hard_phase must be True or False'),
    (dict(target_rate=0.9, ablation=dict(gate_init='x')), "ablation.gate_init must be a number or 'score'"),
    (dict(target_rate=0.9, ablation=dict(projection_search='newton')), 'unknown prune_cfg.ablation.projection_search'),
    (dict(target_rate=0.9, ablation=dict(gate_group=1)), 'ablation.gate_group must be True or False'),
    (dict(target_rate=0.9, ablation=[1]), 'prune_cfg.ablation must be a dict'),
    (dict(target_rate=0.9, scorer='taylor'), "unknown prune_cfg.scorer 'taylor'; choose one of normalized, magnitude"),
    (dict(target_rate=0.9, schedule='gradual'), "unknown prune_cfg.schedule 'gradual'"),
    (dict(target_rate=0.9, target_macs=0.4, allocation='lamp'), "unknown prune_cfg.allocation 'lamp'; choose one of"),
    (dict(target_rate=0.9, target_macs=0.4, channel_floor=1.0), r'prune_cfg.channel_floor must be in \[0.0, 1.0\)'),
    (dict(target_rate=0.9, channel_floor=0.2), 'channel_floor bounds the channels the compute target removes'),
    (dict(target_rate=0.9, schedule=[0.3]), 'prune_cfg.schedule must be a dict'),
    (dict(target_rate=0.9, normalize='no'), 'prune_cfg.normalize must be True or False'),
    (dict(target_rate=0.9, group_stat='max'), 'unknown prune_cfg.group_stat'),
    (dict(target_rate=0.9, normalize=False, scorer='l1'), 'contradicts prune_cfg.scorer'),
    (dict(target_rate=0.9, hard_phase=False, ablation=dict(hard_phase=True)), 'keep only prune_cfg.ablation.hard_phase'),
])
def test_validation_names_the_field(bad, msg):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', PruneConfigDeprecationWarning)
        with pytest.raises(ValueError, match=msg):
            PruneConfig.from_dict(bad)


@pytest.mark.parametrize('bad,close', [
    (dict(target_rate=0.9, target_rat=0.5), "'target_rat': did you mean target_rate?"),
    (dict(target_rate=0.9, scorers='l1'), "'scorers': did you mean scorer?"),
    (dict(target_rate=0.9, gate_group=False), "'gate_group': did you mean prune_cfg.ablation.gate_group?"),
    (dict(target_rate=0.9, ablation=dict(hard_phases=False)), "'hard_phases': did you mean hard_phase?"),
])
def test_unknown_key_names_the_close_match(bad, close):
    with pytest.raises(ValueError) as e:
        PruneConfig.from_dict(bad)
    assert 'unknown prune_cfg' in str(e.value) and close in str(e.value)


# old spelling -> (current spelling, the text the warning must name)
DEPRECATED = [
    (dict(hard_phase=False), dict(ablation=dict(hard_phase=False)), 'use prune_cfg.ablation.hard_phase'),
    (dict(mask_bias=False), dict(ablation=dict(mask_bias=False)), 'use prune_cfg.ablation.mask_bias'),
    (dict(gate_relative=False), dict(ablation=dict(gate_relative=False)), 'use prune_cfg.ablation.gate_relative'),
    (dict(target_macs=0.5, soft_projection=False), dict(target_macs=0.5, ablation=dict(soft_projection=False)),
     'use prune_cfg.ablation.soft_projection'),
    (dict(projection_search='bisect'), dict(ablation=dict(projection_search='bisect')),
     'use prune_cfg.ablation.projection_search'),
    (dict(gate_init='score'), dict(ablation=dict(gate_init='score')), 'use prune_cfg.ablation.gate_init'),
    (dict(normalize=False), dict(scorer='magnitude'), "prune_cfg.normalize is deprecated; use prune_cfg.scorer='magnitude'"),
    (dict(group_stat='l1'), dict(scorer='l1'), "prune_cfg.group_stat is deprecated; use prune_cfg.scorer='l1'"),
    (dict(normalize=False, group_stat='l1'), dict(scorer='magnitude_l1'), "scorer='magnitude_l1'"),
    (dict(oneshot=True), dict(schedule='oneshot'), "use prune_cfg.schedule='oneshot'"),
    (dict(oneshot=False), dict(), 'drop oneshot=False'),
    (dict(prune_head=False), dict(), 'prune_cfg.prune_head is deprecated and has no effect'),
    # the leaderboard's baselines in the flag spelling of mmsemiprune/leaderboard/methods.py
    (dict(mode='unstructured', oneshot=True, normalize=False),
     dict(mode='unstructured', schedule='oneshot', scorer='magnitude'), "scorer='magnitude'"),
    (dict(mode='structured', oneshot=True, group_stat='l1'),
     dict(mode='structured', schedule='oneshot', scorer='l1'), "scorer='l1'"),
    (dict(mode='semi', oneshot=True, normalize=False, gate_init='score'),
     dict(mode='semi', schedule='oneshot', scorer='magnitude', ablation=dict(gate_init='score')), 'ablation.gate_init'),
]


@pytest.mark.parametrize('old,new,text', DEPRECATED)
def test_deprecated_keys_warn_once_and_map_to_the_same_config(old, new, text):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        cfg_old = PruneConfig.from_dict(dict(target_rate=0.9, **old))
    dep = [w for w in rec if issubclass(w.category, PruneConfigDeprecationWarning)]
    assert len(dep) == 1 and text in str(dep[0].message), [str(w.message) for w in rec]
    assert issubclass(PruneConfigDeprecationWarning, FutureWarning)  # shown by default, unlike DeprecationWarning
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the current spelling warns nothing
        cfg_new = PruneConfig.from_dict(dict(target_rate=0.9, **new))
    assert cfg_old == cfg_new


def test_one_warning_names_every_deprecated_key():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        PruneConfig.from_dict(dict(target_rate=0.9, hard_phase=False, normalize=False, oneshot=True))
    assert len(rec) == 1
    msg = str(rec[0].message)
    for text in ('prune_cfg.ablation.hard_phase', "scorer='magnitude'", "schedule='oneshot'", 'one release'):
        assert text in msg


def test_schedule_units_resolved_once_against_the_run():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9, schedule=dict(warmup_epochs=2, freeze_iters=60, hard_iters=50)))
    sched = cfg.build_schedule()
    cfg.resolve_schedule(sched, max_iters=100, max_epochs=10)
    assert (sched.warmup, sched.freeze, sched.hard) == (0.2, 0.6, 0.5)
    with pytest.raises(ValueError, match='longer than the run'):
        cfg.resolve_schedule(cfg.build_schedule(), max_iters=40, max_epochs=10)
    with pytest.raises(ValueError, match='needs an epoch-based run'):
        cfg.resolve_schedule(cfg.build_schedule(), max_iters=100, max_epochs=None)


def test_oneshot_freezes_at_the_first_step():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9, schedule='oneshot'))
    assert cfg.oneshot and cfg.build_schedule().frozen(0.0)
    with pytest.warns(PruneConfigDeprecationWarning):
        assert PruneConfig.from_dict(dict(target_rate=0.9, oneshot=True)).build_schedule().frozen(0.0)


def test_from_dict_returns_a_config_unchanged():
    cfg = PruneConfig.from_dict(dict(target_rate=0.9, mode='structured'))
    assert PruneConfig.from_dict(cfg) is cfg


def test_deprecation_shown_once_per_process_under_the_default_filters():
    """The tools validate prune_cfg before the model does: the same warning is printed once."""
    import subprocess
    import sys
    code = ('from mmsemiprune.core.config import PruneConfig\n'
            'for _ in range(3):\n'
            '    PruneConfig.from_dict(dict(target_rate=0.9, oneshot=True, normalize=False))\n')
    repo = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}  # Python's default filters
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=repo,
                       env=dict(env, PYTHONPATH=repo), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count('PruneConfigDeprecationWarning') == 1, r.stderr
