"""scorer='random': a one-shot mask drawn at random under the magnitude mask's rules; the weights are untouched."""
import torch


def _oneshot(toy, random_scores, seed=0, **kw):
    net, pr = toy.make_pruner('semi', 'params', 0.8, gate_init='score',
                              scorer='random' if random_scores else 'magnitude', schedule='oneshot', **kw)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    torch.manual_seed(seed)
    pr.set_progress(0.0)
    masks = {k: m.current(w) for k, m, w in pr.items()}
    return net, pr, before, masks


def test_random_mask_meets_the_rate_and_keeps_the_weights(toy):
    net, pr, before, masks = _oneshot(toy, True)
    assert pr.frozen and abs(pr.report()['rate_params'] - 0.8) < 0.01
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k in after and '_psi' not in k)
    share = [m.gate.hard().float().mean().item() for m in pr.masks]
    assert all(0.2 < s < 0.8 for s in share), share  # the gate rule of semi_oneshot: about half structured


def test_random_mask_is_not_the_magnitude_mask_and_follows_the_seed(toy):
    _, _, _, rand0 = _oneshot(toy, True, seed=0)
    _, _, _, rand0b = _oneshot(toy, True, seed=0)
    _, _, _, rand1 = _oneshot(toy, True, seed=1)
    _, _, _, mag = _oneshot(toy, False)
    assert all(torch.equal(rand0[k], rand0b[k]) for k in rand0)
    agree = lambda a, b: sum(int((a[k] == b[k]).sum()) for k in a) / sum(a[k].numel() for k in a)  # noqa: E731
    # at rate 0.8, two independent masks agree on about 0.8² + 0.2² = 0.68 of the entries; a copy on all
    assert agree(rand0, mag) < 0.85 and agree(rand0, rand1) < 0.85


def test_random_scorer_needs_oneshot_and_the_old_key_maps_to_it():
    import warnings

    import pytest

    from mmsemiprune.core.config import PruneConfig
    with pytest.raises(ValueError, match="needs schedule='oneshot'"):
        PruneConfig.from_dict(dict(target_rate=0.9, scorer='random'))
    assert PruneConfig.from_dict(dict(target_rate=0.9, schedule='oneshot', scorer='random')).scorer == 'random'
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        old = PruneConfig.from_dict(dict(target_rate=0.9, oneshot=True, random_scores=True))
    assert old.scorer == 'random' and old.oneshot and any("scorer='random'" in str(x.message) for x in w)
