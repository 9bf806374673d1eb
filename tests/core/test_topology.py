import pytest
import torch

from mmsemiprune.core.topology import ChannelSet, Slot, alive, channel_any, make_consistent, zero_channels


def test_channel_any_dims_and_fold():
    t = torch.zeros(6, 4, 3)
    t[4, 1, 2] = 1.0  # row 4 = 2·C + 0: channel 0 of the fold view (3, C=2)
    assert channel_any(t, Slot('m', dim=0, fold=3), 2).tolist() == [True, False]
    assert channel_any(t, Slot('m', dim=0), 6).tolist() == [False] * 4 + [True, False]
    assert channel_any(t, Slot('m', dim=1), 4).tolist() == [False, True, False, False]
    assert channel_any(t, Slot('m', dim=1, fold=2), 2).tolist() == [False, True]
    with pytest.raises(ValueError) as e:
        channel_any(t, Slot('net.m', dim=0), 4)
    assert 'net.m.weight' in str(e.value) and '6' in str(e.value)


def test_zero_channels():
    t = torch.arange(1, 6 * 4 + 1, dtype=torch.float).view(6, 4)
    z = zero_channels(t, Slot('m', dim=0, fold=3), 2, torch.tensor([True, False]))
    assert z.shape == t.shape
    for r in range(6):
        assert (z[r] == 0).all() if r % 2 == 0 else torch.equal(z[r], t[r])
    z = zero_channels(t, Slot('m', dim=1), 4, torch.tensor([False, False, True, False]))
    assert (z[:, 2] == 0).all() and torch.equal(z[:, [0, 1, 3]], t[:, [0, 1, 3]])
    assert (t != 0).all()  # input untouched


def _chain():
    """a (4 rows) -> set s1 (4 ch) -> b (6x4) -> set s2 (6 ch) -> c (2x6)."""
    sets = [ChannelSet('s1', 4, producers=[Slot('a')], consumers=[Slot('b', dim=1)]),
            ChannelSet('s2', 6, producers=[Slot('b')], consumers=[Slot('c', dim=1)])]
    masks = {'a.weight': torch.ones(4, 3, dtype=torch.bool), 'b.weight': torch.ones(6, 4, dtype=torch.bool),
             'c.weight': torch.ones(2, 6, dtype=torch.bool)}
    return sets, masks


def test_alive_and_flags():
    sets, masks = _chain()
    masks['a.weight'][1] = False
    masks['b.weight'][:, 3] = False
    prod, cons = alive(masks, sets[0])
    assert prod.tolist() == [True, False, True, True] and cons.tolist() == [True, True, True, False]
    fixed = ChannelSet('s1', 4, producers=[Slot('a')], consumers=[Slot('b', dim=1)], fixed_consumer=True)
    assert alive(masks, fixed)[1].all()
    fixed = ChannelSet('s1', 4, producers=[Slot('a')], consumers=[Slot('b', dim=1)], fixed_producer=True)
    assert alive(masks, fixed)[0].all()
    unmasked = ChannelSet('s1', 4, producers=[Slot('a'), Slot('zz')], consumers=[Slot('b', dim=1)])
    assert alive(masks, unmasked)[0].all()  # an unmasked producer keeps every channel alive


def test_make_consistent_fixpoint():
    sets, masks = _chain()
    masks['a.weight'][1] = False  # s1 ch 1: no producer -> b column 1 zeroed
    masks['c.weight'][:, 5] = False  # s2 ch 5: no consumer -> b row 5 zeroed
    masks['b.weight'][2, :] = False  # s2 ch 2: no producer -> c column 2 zeroed
    masks['b.weight'][:, 3] = False  # s1 ch 3: no consumer -> a row 3 zeroed
    n = make_consistent(masks, sets)
    assert n == 4
    assert not masks['b.weight'][:, 1].any() and not masks['b.weight'][5].any()
    assert not masks['c.weight'][:, 2].any() and not masks['a.weight'][3].any()
    assert masks['a.weight'][[0, 2]].all() and masks['c.weight'][:, [0, 1, 3, 4]].all()
    for cs in sets:
        prod, cons = alive(masks, cs)
        assert torch.equal(prod, cons)


def test_make_consistent_cascades():
    sets, masks = _chain()
    masks['c.weight'][:, :] = False
    masks['c.weight'][:, 0] = True
    masks['b.weight'][0, 1:] = False  # the only live s2 channel reads only s1 channel 0
    n = make_consistent(masks, sets)
    assert n == 5 + 3
    assert masks['a.weight'].sum() == 3 and masks['a.weight'][0].all()
    assert masks['b.weight'].sum() == 1 and masks['b.weight'][0, 0]


def test_make_consistent_is_idempotent():
    sets, masks = _chain()
    masks['a.weight'][1] = False
    assert make_consistent(masks, sets) == 1
    before = {k: v.clone() for k, v in masks.items()}
    assert make_consistent(masks, sets) == 0
    assert all(torch.equal(before[k], masks[k]) for k in masks)


def test_make_consistent_rerun_does_not_change_masks():
    sets, masks = _chain()
    masks['a.weight'][1] = False
    masks['c.weight'][:, 4] = False
    make_consistent(masks, sets)
    before = {k: v.clone() for k, v in masks.items()}
    make_consistent(masks, sets)
    assert all(torch.equal(before[k], masks[k]) for k in masks)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_make_consistent_on_cuda():
    sets, masks = _chain()
    masks = {k: v.cuda() for k, v in masks.items()}
    masks['a.weight'][1] = False
    make_consistent(masks, sets)
    assert not masks['b.weight'][:, 1].any()


def _residual_net():
    """A residual stream R (4 ch) written by a (fold 3 rows), d and the shortcut e (its producers), read by b and c
    (consumers, c with fold 2 columns); b writes set s (5 ch) read by d; f writes a fixed-consumer set read by b."""
    sets = [ChannelSet('R', 4, producers=[Slot('a', fold=3), Slot('d'), Slot('e')],
                       consumers=[Slot('b', dim=1), Slot('c', dim=1, fold=2)]),
            ChannelSet('s', 5, producers=[Slot('b')], consumers=[Slot('d', dim=1)]),
            ChannelSet('x', 2, producers=[Slot('f')], consumers=[Slot('e', dim=1)], fixed_consumer=True)]
    shapes = {'a.weight': (12, 3, 2), 'b.weight': (5, 4), 'c.weight': (3, 8, 1, 1), 'd.weight': (4, 5, 3),
              'e.weight': (4, 2), 'f.weight': (2, 7), 'g.weight': (6, )}
    return sets, shapes


@pytest.mark.parametrize('force', [None, True])
def test_flat_consistency_gives_make_consistents_masks(force):
    """All channel sets at once over the flat masks (the hard-mask probes' path) give, on random masks with
    residual producers, folds along both dims, fixed sides and a tensor outside every set, the masks of the
    set-by-set reference, with this device's segment sums and with the GPU path's scans (forced)."""
    from mmsemiprune.core.fused import segment
    from mmsemiprune.core.topology import FlatConsistency
    with segment.force(force):
        _check_flat_consistency(FlatConsistency)


def _check_flat_consistency(FlatConsistency):
    sets, shapes = _residual_net()
    keys = list(shapes)
    fc = FlatConsistency(keys, [shapes[k] for k in keys], sets, 'cpu')
    assert fc.applicable
    g = torch.Generator().manual_seed(0)
    changed = 0
    for trial in range(200):
        p = [0.2, 0.5, 0.8][trial % 3]
        masks = {k: torch.rand(s, generator=g) >= p for k, s in shapes.items()}
        ref = dict(masks)
        make_consistent(ref, sets)
        out = fc(torch.cat([masks[k].reshape(-1) for k in keys]))
        got = dict(zip(keys, torch._C._nn.unflatten_dense_tensors(out, [masks[k] for k in keys])))
        assert all(torch.equal(got[k], ref[k]) for k in keys), trial
        changed += any(not torch.equal(masks[k], ref[k]) for k in keys)
    assert changed > 50  # the masks did cascade (80 of the 200)
    again = fc(out)
    assert torch.equal(again, out)  # a fixpoint


def test_flat_consistency_refuses_a_tensor_in_two_producer_slots():
    from mmsemiprune.core.topology import FlatConsistency
    sets = [ChannelSet('s1', 4, producers=[Slot('a')], consumers=[Slot('b', dim=1)]),
            ChannelSet('s2', 4, producers=[Slot('a')], consumers=[Slot('c', dim=1)])]
    fc = FlatConsistency(['a.weight', 'b.weight', 'c.weight'], [(4, 3), (2, 4), (2, 4)], sets, 'cpu')
    assert not fc.applicable
    with pytest.raises(ValueError, match='a.weight'):
        FlatConsistency(['a.weight'], [(5, 3)], sets[:1], 'cpu')


@pytest.mark.parametrize('force', [None, True])
def test_flat_alive_maps_are_alives(force):
    """The compute projection's alive maps of every set at once (two segment sums) are :func:`alive`'s, fixed and
    unmasked sides included, on both reduction paths."""
    from mmsemiprune.core.fused import segment
    with segment.force(force):
        _check_flat_alive()


def _check_flat_alive():
    from mmsemiprune.core.topology import FlatConsistency
    sets, shapes = _residual_net()
    keys = list(shapes)
    fc = FlatConsistency(keys, [shapes[k] for k in keys], sets, 'cpu')
    g = torch.Generator().manual_seed(1)
    for p in (0.3, 0.7, 0.95):
        masks = {k: torch.rand(s, generator=g) >= p for k, s in shapes.items()}
        got = fc.alive_all(torch.cat([masks[k].reshape(-1) for k in keys]))
        for cs, (prod, cons) in zip(sets, got):
            ref = alive(masks, cs)
            assert torch.equal(prod, ref[0]) and torch.equal(cons, ref[1]), cs.name


def _branch_net():
    """Set 'in' (3 ch) written by z, read by the branches p0 / p1 and the shortcut r; set 'cat' (6 ch), the
    concatenation of p0 (channels 0-1) and p1 (2-5) plus r (all), scaled per channel by the gate rows of gt, read
    by n; a tensor w outside every set."""
    sets = [ChannelSet('in', 3, producers=[Slot('z')], consumers=[Slot('p0', dim=1), Slot('p1', dim=1),
                                                                      Slot('r', dim=1)]),
            ChannelSet('cat', 6, producers=[Slot('p0', length=2), Slot('p1', offset=2, length=4), Slot('r'),
                                            Slot('gt', gate=True)], consumers=[Slot('n', dim=1)])]
    shapes = {'z.weight': (3, 5), 'p0.weight': (2, 3, 3), 'p1.weight': (4, 3), 'r.weight': (6, 3),
              'gt.weight': (6, 2), 'n.weight': (4, 6), 'w.weight': (7, )}
    return sets, shapes


def test_parts_and_gates():
    """A part's slices index its own channels only; a gate row neither keeps a channel alive nor is needed, and it
    dies with the channel."""
    sets, shapes = _branch_net()
    cat = sets[1]
    assert cat.parts() == [(0, 2), (2, 4)]
    masks = {k: torch.ones(s, dtype=torch.bool) for k, s in shapes.items()}
    assert channel_any(masks['p1.weight'], cat.producers[1], 6).tolist() == [False, False, True, True, True, True]
    masks['p1.weight'][1] = False  # channel 3: p1's second row
    masks['r.weight'][3] = False  # ...and the shortcut's row 3: only the gate row is left
    prod, cons = alive(masks, cat)
    assert prod.tolist() == [True, True, True, False, True, True] and cons.all()
    assert make_consistent(masks, sets) == 1
    assert not masks['gt.weight'][3].any() and not masks['n.weight'][:, 3].any() and masks['gt.weight'][2].all()
    z = zero_channels(torch.ones(4, 3), Slot('p1', offset=2, length=4), 6, torch.tensor([1, 0, 1, 0, 0, 1]).bool())
    assert z[:, 0].tolist() == [0, 1, 1, 0]  # rows hold channels 2..5: channels 2 and 5 zeroed
    with pytest.raises(ValueError, match='outside its channel set'):
        Slot('p1', offset=4, length=4).span(6)


@pytest.mark.parametrize('force', [None, True])
def test_flat_consistency_with_parts_and_gates(force):
    """The flat path gives the set-by-set masks and alive maps with branch parts and gate slots too."""
    from mmsemiprune.core.fused import segment
    from mmsemiprune.core.topology import FlatConsistency
    sets, shapes = _branch_net()
    keys = list(shapes)
    with segment.force(force):
        fc = FlatConsistency(keys, [shapes[k] for k in keys], sets, 'cpu')
        assert fc.applicable
        g = torch.Generator().manual_seed(2)
        changed = 0
        for trial in range(150):
            masks = {k: torch.rand(s, generator=g) >= [0.3, 0.6, 0.85][trial % 3] for k, s in shapes.items()}
            flat = torch.cat([masks[k].reshape(-1) for k in keys])
            for cs, (prod, cons) in zip(sets, fc.alive_all(flat)):
                ref = alive(masks, cs)
                assert torch.equal(prod, ref[0]) and torch.equal(cons, ref[1]), (trial, cs.name)
            ref = dict(masks)
            make_consistent(ref, sets)
            got = dict(zip(keys, torch._C._nn.unflatten_dense_tensors(fc(flat), [masks[k] for k in keys])))
            assert all(torch.equal(got[k], ref[k]) for k in keys), trial
            changed += any(not torch.equal(masks[k], ref[k]) for k in keys)
        assert changed > 40
