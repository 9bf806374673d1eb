"""Statistics of the leaderboard: Student-t quantiles, paired t-intervals, domination, Pareto fronts."""
import math

import pytest

from mmsemiprune.leaderboard.stats import (clustered_paired_ci, dominators, holm, mean_ci, mean_std, paired_ci,
                                           pareto_front, t_cdf, t_quantile, t_test_p)

# two-sided 95 % (p = 0.975) and 99 % (p = 0.995) critical values from a printed t table
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 14: 2.1448, 29: 2.0452, 120: 1.9799}
T995 = {1: 63.6567, 4: 4.6041, 14: 2.9768}


@pytest.mark.parametrize('df', sorted(T975))
def test_t_quantile_table(df):
    assert t_quantile(0.975, df) == pytest.approx(T975[df], abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-T975[df], abs=1e-4)


@pytest.mark.parametrize('df', sorted(T995))
def test_t_quantile_table_99(df):
    assert t_quantile(0.995, df) == pytest.approx(T995[df], abs=1e-4)


def test_t_cdf_closed_forms():
    # df=1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi; df=2: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 10.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert t_quantile(0.9, 1) == pytest.approx(math.tan(math.pi * 0.4), rel=1e-9)
    # large df tends to the normal quantile 1.959964
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-4)


def test_t_cdf_matches_scipy_if_present():
    stats = pytest.importorskip('scipy.stats')
    for df in (1, 3, 7.5, 40):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


def test_paired_ci_hand_computed():
    # d = [1, 2, 2, 3, 3]: mean 2.2, s_d = sqrt(0.7) = 0.83666, n = 5, t_{0.975,4} = 2.776445
    # half width = 2.776445 * 0.83666 / sqrt(5) = 1.038851 -> [1.161149, 3.238851]
    ci = paired_ci([1, 2, 3, 4, 5], [0, 0, 1, 1, 2])
    assert ci['n'] == 5 and ci['mean'] == pytest.approx(2.2)
    assert ci['sd'] == pytest.approx(math.sqrt(0.7))
    assert ci['lo'] == pytest.approx(1.161149, abs=1e-6) and ci['hi'] == pytest.approx(3.238851, abs=1e-6)
    # the same interval for the differences directly; the order of the pairs does not matter
    assert mean_ci([3, 2, 1, 3, 2])['lo'] == pytest.approx(ci['lo'])
    # an interval containing 0
    ci2 = paired_ci([90.0, 85.0, 88.0], [89.0, 87.0, 86.0])
    assert ci2['mean'] == pytest.approx(1 / 3) and ci2['lo'] < 0 < ci2['hi']
    # one pair: no interval; unequal lengths: error
    one = paired_ci([1.0], [0.0])
    assert one['mean'] == 1.0 and math.isnan(one['lo'])
    with pytest.raises(ValueError, match='length'):
        paired_ci([1, 2], [1])


# 3 folds x 2 seeds: d = a - b = fold 1: (1, 3), fold 2: (4, 6), fold 3: (2, 0)
CL_A = [90, 85, 80, 88, 70, 75]
CL_B = [89, 82, 76, 82, 68, 75]
CL_FOLD = [1, 1, 2, 2, 3, 3]


def test_clustered_ci_hand_computed():
    # fold means D = (2, 5, 1): mean 8/3, s_D^2 = ((2/3)^2 + (7/3)^2 + (5/3)^2) / 2 = 13/3, k = 3 clusters
    # half width = t_{0.975, 2} * sqrt(13/3) / sqrt(3) = 4.3027 * sqrt(13) / 3 (t from a printed table)
    ci = clustered_paired_ci(CL_A, CL_B, CL_FOLD)
    half = T975[2] * math.sqrt(13) / 3
    assert (ci['pairs'], ci['clusters'], ci['n']) == (6, 3, 3)
    assert ci['mean'] == pytest.approx(8 / 3) and ci['sd'] == pytest.approx(math.sqrt(13 / 3))
    assert ci['lo'] == pytest.approx(8 / 3 - half, abs=1e-3) and ci['hi'] == pytest.approx(8 / 3 + half, abs=1e-3)
    assert ci['lo'] == pytest.approx(-2.50449, abs=1e-4) and ci['hi'] == pytest.approx(7.83782, abs=1e-4)
    # the six pairs taken as independent give a narrower interval that excludes 0: the clustering matters
    naive = paired_ci(CL_A, CL_B)
    assert naive['n'] == 6 and naive['mean'] == pytest.approx(8 / 3) and naive['lo'] > 0 > ci['lo']
    # the order of the pairs and the names of the clusters do not matter
    order = [5, 2, 0, 3, 1, 4]
    again = clustered_paired_ci([CL_A[i] for i in order], [CL_B[i] for i in order], ['f%d' % CL_FOLD[i] for i in order])
    assert again['lo'] == pytest.approx(ci['lo']) and again['hi'] == pytest.approx(ci['hi'])


def test_clustered_ci_unbalanced_and_single_split():
    # fold 3 lost its second seed: its cluster mean is its single difference 2 -> D = (2, 5, 2)
    ci = clustered_paired_ci(CL_A[:5], CL_B[:5], CL_FOLD[:5])
    assert (ci['pairs'], ci['clusters']) == (5, 3) and ci['mean'] == pytest.approx(3.0)
    assert ci['sd'] == pytest.approx(math.sqrt(3.0))  # ((1)^2 + 2^2 + 1^2) / 2 = 3
    # a single split (no fold): every pair is its own cluster, the plain paired t-interval over seeds
    plain = clustered_paired_ci(CL_A, CL_B, [None] * 6)
    ref = paired_ci(CL_A, CL_B)
    assert plain['clusters'] == 6
    assert plain['lo'] == pytest.approx(ref['lo']) and plain['hi'] == pytest.approx(ref['hi'])
    # one cluster: no interval
    one = clustered_paired_ci([1.0, 2.0], [0.0, 0.0], ['a', 'a'])
    assert one['clusters'] == 1 and one['mean'] == pytest.approx(1.5) and math.isnan(one['lo'])
    with pytest.raises(ValueError, match='length'):
        clustered_paired_ci([1, 2], [1, 2], [1])


def test_t_test_p_hand_computed():
    # the clustered example: t = (8/3) / (sqrt(13/3) / sqrt(3)) = 8 / sqrt(13), df 2, and the df-2 closed form
    # F(t) = 1/2 + t / (2 sqrt(2 + t^2)) gives p = 2 (1 - F(t)) = 1 - t / sqrt(2 + t^2)
    t = 8 / math.sqrt(13)
    p = t_test_p(clustered_paired_ci(CL_A, CL_B, CL_FOLD))
    assert p == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-10) and p == pytest.approx(0.156734, abs=1e-5)
    # against a reference value: the p-value of mean - (-1), t = (8/3 + 1) / (sqrt(13) / 3)
    t1 = (8 / 3 + 1) / (math.sqrt(13) / 3)
    assert t_test_p(clustered_paired_ci(CL_A, CL_B, CL_FOLD), ref=-1.0) == pytest.approx(
        1 - t1 / math.sqrt(2 + t1 * t1), abs=1e-10)
    # the p-value is below 0.05 exactly when the 95 % interval excludes the reference
    naive = paired_ci(CL_A, CL_B)
    assert t_test_p(naive) < 0.05 and naive['lo'] > 0
    assert math.isnan(t_test_p(mean_ci([1.0])))
    assert t_test_p(mean_ci([2.0, 2.0])) == 0.0 and t_test_p(mean_ci([0.0, 0.0])) == 1.0


def test_holm_textbook_example():
    # four tests, alpha 0.05: sorted 0.005 < 0.05/4 and 0.01 < 0.05/3 are rejected, 0.03 > 0.05/2 stops the
    # procedure; adjusted: 4 * 0.005 = 0.02, 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, max(0.06, 1 * 0.04) = 0.06
    adj = holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adj] == [True, False, False, True]
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    # NaN (no interval) stays NaN and is not counted in the family size
    adj = holm([float('nan'), 0.02, 0.04])
    assert math.isnan(adj[0]) and adj[1:] == pytest.approx([0.04, 0.04])
    assert holm([]) == []


def test_mean_std():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def _item(i, method, macs, acc):
    return dict(id=i, method=method, macs=macs, acc=acc)


def test_dominators_paired_and_other_methods_only():
    pairs = [('1', 0), ('2', 0), ('1', 1)]
    items = [
        _item('semi 0.9', 'semi', 10.0, dict(zip(pairs, [90, 80, 85]))),           # mean 85
        _item('structured 0.8', 'structured', 8.0, dict(zip(pairs, [91, 79, 85]))),  # 85: as accurate, cheaper
        _item('unstructured 0.9', 'unstructured', 20.0, dict(zip(pairs, [99, 99, 99]))),  # more costly
        _item('semi 0.95', 'semi', 5.0, dict(zip(pairs, [95, 95, 95]))),           # same method: never listed
        _item('l1 0.9', 'l1_channel', 10.0, dict(zip(pairs, [84, 80, 85]))),       # same cost, less accurate
        _item('mag 0.9', 'magnitude', 10.0, dict(zip(pairs, [85, 85, 85]))),        # same cost, same accuracy
    ]
    d = dominators(items, 'macs')
    assert set(d['semi 0.9']) == {'structured 0.8', 'mag 0.9'}  # ties count (non-strict), both ways
    assert d['mag 0.9'] == ['semi 0.9', 'structured 0.8', 'semi 0.95']
    assert d['structured 0.8'] == ['semi 0.95']
    assert d['unstructured 0.9'] == []
    assert set(d['l1 0.9']) == {'semi 0.9', 'structured 0.8', 'semi 0.95', 'mag 0.9'}
    assert d['semi 0.95'] == []


def test_dominators_pairing_decides():
    # B's plain mean (over all its runs) is higher, but on the runs both have it is lower
    a = _item('a', 'semi', 10.0, {('1', 0): 80.0, ('2', 0): 90.0})
    b = _item('b', 'magnitude', 10.0, {('1', 0): 79.0, ('3', 0): 100.0})
    d = dominators([a, b], 'macs')
    assert d['a'] == [] and d['b'] == ['a']
    # unknown cost: neither dominates nor is dominated
    c = _item('c', 'structured', float('nan'), {('1', 0): 100.0})
    d = dominators([a, b, c], 'macs')
    assert d['c'] == [] and 'c' not in d['a']


def test_pareto_front():
    pts = [(10, 80), (5, 70), (20, 79), (5, 75), (40, 90), (30, 90)]
    assert pareto_front(pts) == [(5, 75), (10, 80), (30, 90)]
    assert pareto_front([]) == []
    assert pareto_front([(1, float('nan')), (2, 3)]) == [(2, 3)]
