"""Scorers (``prune_cfg.scorer``): the named strategies score exactly as the flag pairs they replace
(``normalize`` / ``group_stat``), their reference definitions match what the masks compute, and a one-shot
freeze keeps the entries / groups they rank highest."""
import pytest
import torch
from torch import nn

from mmsemiprune.core import PruneSpec, SemiMask, SemiPruner
from mmsemiprune.core.config import PruneConfig
from mmsemiprune.core.scorers import SCORERS, Scorer, build_scorer, register_scorer, scorer_for_flags

# the flags of the old spelling for every scorer name
FLAGS = dict(normalized=(True, 'rms'), magnitude=(False, 'rms'), l1=(True, 'l1'), magnitude_l1=(False, 'l1'))


def test_table_and_flags():
    assert [n for n, c in SCORERS.items() if not c.random] == list(FLAGS)
    assert SCORERS['random'].random and not SCORERS['random'].normalize  # the random baseline, no flag pair
    for name, (normalize, stat) in FLAGS.items():
        s = build_scorer(name)
        assert (s.name, s.normalize, s.group_stat) == (name, normalize, stat)
        assert scorer_for_flags(normalize, stat) == name
    assert build_scorer(None).name == 'normalized'
    with pytest.raises(ValueError, match="unknown prune_cfg.scorer 'taylor'"):
        build_scorer('taylor')


@pytest.mark.parametrize('name', list(FLAGS))
def test_scores_equal_the_masks_scores_of_the_old_flags(name):
    torch.manual_seed(0)
    w = torch.randn(12, 6, 3, 1) * 0.3
    normalize, stat = FLAGS[name]
    mask = SemiMask(w.shape, ['out'], 'semi', normalize=normalize, group_stat=stat)
    s = build_scorer(name)
    assert torch.equal(s.entry_scores(w), mask.normalise(w).abs())
    assert torch.equal(s.group_scores(w, mask.gid0, mask.num_groups[0], mask.gsize0), mask.first_group_scores(w))


def _net():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 24, 1))
    with torch.no_grad():
        net[1].weight.mul_(4.0)  # another scale per tensor: raw and normalised magnitude rank differently
    return net


@pytest.mark.parametrize('name', list(FLAGS))
def test_scorer_key_gives_the_masks_of_the_old_flags(name):
    normalize, stat = FLAGS[name]
    masks = []
    for kw in (dict(scorer=name), dict(normalize=normalize, group_stat=stat)):
        net = _net()
        pr = SemiPruner(net, [PruneSpec('0'), PruneSpec('1')], 0.6, mode='structured', schedule='oneshot', **kw)
        pr.set_progress(0.0)
        assert pr.frozen and pr.scorer.name == name
        masks.append([m.mask.clone() for m in pr.masks])
    assert all(torch.equal(a, b) for a, b in zip(*masks))


@pytest.mark.parametrize('name', ['normalized', 'magnitude'])
def test_oneshot_unstructured_keeps_the_highest_entry_scores(name):
    net = _net()
    cfg = PruneConfig.from_dict(dict(target_rate=0.5, mode='unstructured', schedule='oneshot', scorer=name))
    pr = SemiPruner(net, [PruneSpec('0'), PruneSpec('1')], cfg)
    pr.set_progress(0.0)
    s = build_scorer(name)
    scores = torch.cat([s.entry_scores(w.detach()).reshape(-1) for _, _, w in pr.items()])
    kept = torch.cat([m.mask.reshape(-1) for m in pr.masks])
    assert abs(1 - kept.float().mean().item() - 0.5) < 0.01
    assert scores[kept].min() >= scores[~kept].max()  # one global threshold on the scorer's scores
    per_tensor = [m.mask.float().mean().item() for m in pr.masks]
    assert (per_tensor[0] != pytest.approx(per_tensor[1], abs=0.05)) == (name == 'magnitude')


@pytest.mark.parametrize('name', ['normalized', 'l1'])
def test_oneshot_structured_keeps_the_highest_group_scores(name):
    net = _net()
    pr = SemiPruner(net, [PruneSpec('0'), PruneSpec('1')], 0.5, mode='structured', schedule='oneshot', scorer=name)
    pr.set_progress(0.0)
    s = build_scorer(name)
    scores, kept = [], []
    for _, m, w in pr.items():
        g = s.group_scores(w.detach(), m.gid0, m.num_groups[0], m.gsize0)
        rows = m.mask.reshape(m.mask.shape[0], -1)
        assert bool((rows.all(1) | ~rows.any(1)).all())  # whole output channels kept or removed
        scores.append(g)
        kept.append(rows.all(1))
    scores, kept = torch.cat(scores), torch.cat(kept)
    assert scores[kept].min() >= scores[~kept].max()


def test_register_a_scorer():
    @register_scorer
    class RawL1Test(Scorer):
        name = 'test_raw_l1'
        normalize = False
        group_stat = 'l1'
    try:
        assert build_scorer('test_raw_l1').group_stat == 'l1'
        assert PruneConfig.from_dict(dict(target_rate=0.5, scorer='test_raw_l1')).scorer == 'test_raw_l1'
        with pytest.raises(ValueError, match='already registered'):
            register_scorer(RawL1Test)
    finally:
        SCORERS.pop('test_raw_l1')
