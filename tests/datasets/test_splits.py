"""Validation splits: disjoint from fit and test, class-stratified (or by group), deterministic."""
import os.path as osp
import pickle
from collections import Counter

import pytest

from mmsemiprune.datasets.splits import add_holdout_splits, group_holdout, stratified_holdout

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _names(per_class):
    names, labels = [], []
    for c, n in enumerate(per_class):
        names += [f'c{c}/s{i:03d}' for i in range(n)]
        labels += [c] * n
    return names, labels


def test_stratified_holdout_partitions_each_class():
    names, labels = _names([10, 20, 5, 1, 2])
    fit, val = stratified_holdout(names, labels, 0.2)
    assert set(fit) | set(val) == set(names) and not set(fit) & set(val)
    label = dict(zip(names, labels))
    per = Counter(label[n] for n in val)
    assert per == {0: 2, 1: 4, 2: 1, 4: 1}  # round(0.2 n_c), at least 1 of 2+, never a class's last one
    assert all(any(label[n] == c for n in fit) for c in range(5))
    assert fit == [n for n in names if n in set(fit)]  # order kept


def test_stratified_holdout_is_deterministic_and_order_free():
    names, labels = _names([30, 30, 30])
    a = stratified_holdout(names, labels)
    b = stratified_holdout(names[::-1], labels[::-1])
    assert set(a[1]) == set(b[1])
    c = stratified_holdout(names, labels, seed=1)
    assert set(c[1]) != set(a[1]) and len(c[1]) == len(a[1]) == 18


def test_holdout_rejects_bad_input():
    with pytest.raises(ValueError, match='fraction'):
        stratified_holdout(['a', 'b'], [0, 0], 1.0)
    with pytest.raises(ValueError, match='unique'):
        stratified_holdout(['a', 'a'], [0, 0])
    with pytest.raises(ValueError, match='labels'):
        stratified_holdout(['a', 'b'], [0])
    with pytest.raises(ValueError, match='no sequence'):
        group_holdout(['a', 'b'], [1, 3], [5])
    with pytest.raises(ValueError, match='leaves no sequence'):
        group_holdout(['a', 'b'], [1, 1], [1])


def test_group_holdout_keeps_groups_whole():
    names = [f's{s}_{i}' for s in (1, 3, 5, 7, 9) for i in range(4)]
    groups = [int(n[1]) for n in names]
    fit, val = group_holdout(names, groups, [9])
    assert val == [n for n in names if n.startswith('s9_')] and len(fit) == 16


def test_add_holdout_splits_names():
    split = {'fold1_train': ['a', 'b', 'c', 'd'], 'fold1_test': ['e'], 'train': ['x', 'y'], 'test': ['z']}
    label = dict(a=0, b=0, c=1, d=1, e=0, x=0, y=0, z=0)
    add_holdout_splits(split, label, 0.5)
    assert sorted(split) == ['fit', 'fold1_fit', 'fold1_test', 'fold1_train', 'fold1_val', 'test', 'train', 'val']
    assert sorted(split['fold1_fit'] + split['fold1_val']) == ['a', 'b', 'c', 'd'] and len(split['fold1_val']) == 2
    assert sorted(split['fit'] + split['val']) == ['x', 'y']


@pytest.mark.parametrize('name, train, test', [('sbu', 'fold{}_train', 'fold{}_test'), ('fpha', 'train', 'test'),
                                               ('msr3d', 'xsub_train', 'xsub_test')])
def test_converted_pickles_hold_disjoint_validation_splits(name, train, test):
    pkl = osp.join(ROOT, 'data', name, f'{name}.pkl')
    if not osp.isfile(pkl):
        pytest.skip(f'{pkl} not present: convert the real data with tools/data/convert_{name}.py (research use only)')
    with open(pkl, 'rb') as f:
        split = pickle.load(f)['split']
    for k in ([1, 2, 3, 4, 5] if name == 'sbu' else [None]):
        tr, te = split[train.format(k)], split[test.format(k)]
        fit, val = split[train.format(k).replace('train', 'fit')], split[train.format(k).replace('train', 'val')]
        assert sorted(fit + val) == sorted(tr) and not set(fit) & set(val) and not set(val) & set(te)
        assert 0.15 < len(val) / len(tr) < 0.25
