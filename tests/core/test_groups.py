import pytest
import torch

from mmsemiprune.core.cascade import SemiMask
from mmsemiprune.core.groups import Grouping, group_rms, parse_grouping


def _members(gid):
    """{group id: sorted list of flat entry indices}."""
    out = {}
    for i, g in enumerate(gid.reshape(-1).tolist()):
        out.setdefault(g, []).append(i)
    return out


def test_entry():
    gid = Grouping('entry').group_ids((2, 3))
    assert torch.equal(gid, torch.arange(6).view(2, 3))


def test_out_plain():
    gid = Grouping('out').group_ids((4, 2, 3))
    for i in range(4):
        assert (gid[i] == i).all()
    assert Grouping('out').num_groups((4, 2, 3)) == 4


def test_out_fold3_groups_rows_c_C_plus_c_2C_plus_c():
    C = 2
    shape = (3 * C, 2, 1, 1)  # ST-GCN spatial 1x1 conv writing K=3 rows per channel
    g = Grouping('out', fold=3)
    gid = g.group_ids(shape)
    assert g.num_groups(shape) == C
    rows = gid[:, 0, 0, 0].tolist()
    for c in range(C):
        assert rows[c] == rows[C + c] == rows[2 * C + c]
    assert rows[0] != rows[1]
    # every entry of a row shares the row's id
    assert (gid == gid[:, :1, :1, :1]).all()


def test_in_plain_and_fold():
    gid = Grouping('in').group_ids((2, 6, 3))
    for j in range(6):
        assert (gid[:, j] == j).all()
    gid = Grouping('in', fold=2).group_ids((2, 6, 3))
    assert Grouping('in', fold=2).num_groups((2, 6, 3)) == 3
    for j in range(3):
        assert (gid[:, j] == gid[:, 3 + j]).all()
        assert (gid[:, j] == gid[0, j, 0]).all()
    assert len(set(gid[0, :3, 0].tolist())) == 3


def test_tap():
    shape = (2, 3, 5, 1)
    gid = Grouping('tap').group_ids(shape)
    assert Grouping('tap').num_groups(shape) == 5
    for t in range(5):
        assert (gid[:, :, t] == t).all()


@pytest.mark.parametrize('shape', [(4, 5), (3, 4, 5)])
def test_row_col(shape):
    V0, V1 = shape[-2], shape[-1]
    row = Grouping('row').group_ids(shape)
    col = Grouping('col').group_ids(shape)
    assert Grouping('row').num_groups(shape) == V0
    assert Grouping('col').num_groups(shape) == V1
    for i in range(V0):
        assert (row[..., i, :] == i).all()
    for j in range(V1):
        assert (col[..., :, j] == j).all()


def test_block():
    shape = (4, 6, 3, 3)
    g = Grouping('block', block=(2, 2))
    gid = g.group_ids(shape)
    assert g.num_groups(shape) == 6
    for i in range(4):
        for j in range(6):
            assert (gid[i, j] == (i // 2) * 3 + j // 2).all()
    sizes = {k: len(v) for k, v in _members(gid).items()}
    assert set(sizes.values()) == {2 * 2 * 9}


def test_group_rms():
    x = torch.randn(6, 4)
    gid = Grouping('out', fold=3).group_ids(x.shape)
    s = group_rms(x, gid, 2)
    for g in range(2):
        vals = x[gid == g]
        assert s[g].item() == pytest.approx(vals.pow(2).mean().sqrt().item(), rel=1e-6)


# -- parsing ------------------------------------------------------------------------------------------
def test_parse_strings_and_dicts():
    assert parse_grouping('out') == Grouping('out')
    assert parse_grouping('out:fold=3') == Grouping('out', fold=3)
    assert parse_grouping('in:fold=2') == Grouping('in', fold=2)
    assert parse_grouping(dict(kind='out', fold=3)) == Grouping('out', fold=3)
    assert parse_grouping(dict(kind='block', block=[2, 2])) == Grouping('block', block=(2, 2))
    assert parse_grouping('block:block=2x4') == Grouping('block', block=(2, 4))
    g = Grouping('tap')
    assert parse_grouping(g) is g
    for g in [Grouping('out', fold=3), Grouping('block', block=(2, 4)), Grouping('row')]:
        assert parse_grouping(str(g)) == g


def test_parse_block_short_form():
    assert parse_grouping('block:2x2') == Grouping('block', block=(2, 2))


@pytest.mark.parametrize('spec, words', [
    ('bogus', ["'bogus'"]),
    ('out:foo=1', ["'foo=1'", 'out:foo=1']),
    (dict(kind='out', size=3), ['size']),
    (dict(kind='nope'), ["'nope'"]),
    (3.5, ['3.5']),
    ('out:fold=0', ['fold', '0']),
    (dict(kind='block', block=(0, 2)), ['block', '(0, 2)']),
    (dict(kind='block'), ['block']),
])
def test_parse_errors_name_the_value(spec, words):
    with pytest.raises(ValueError) as e:
        parse_grouping(spec)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize('spec, shape, words', [
    ('out:fold=5', (6, 2, 3, 3), ['fold=5', '(6, 2, 3, 3)']),
    ('in:fold=4', (2, 6, 1, 1), ['fold=4', '(2, 6, 1, 1)']),
    ('tap', (4, 2, 1, 1), ['tap', '(4, 2, 1, 1)']),
    ('tap', (4, 2), ['tap', '(4, 2)']),
    ('block:block=4x4', (6, 4), ['(4, 4)', '(6, 4)']),
    ('row', (5, ), ['row', '(5,)']),
])
def test_check_errors_name_the_shape(spec, shape, words):
    with pytest.raises(ValueError) as e:
        parse_grouping(spec).check(shape, 'net.conv.weight')
    for w in words + ['net.conv.weight']:
        assert w in str(e.value)
    # the same error surfaces when building a mask for that tensor
    with pytest.raises(ValueError) as e:
        SemiMask(shape, [spec], 'structured', name='net.conv.weight')
    for w in words:
        assert w in str(e.value)
