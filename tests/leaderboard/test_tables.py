"""Aggregation over folds x seeds, domination and paired-difference tables, and the CSV / Markdown / PNG
writers (accuracy vs rate, both Pareto planes), on a tiny synthetic results file."""
import csv
import math

import pytest

from mmsemiprune.leaderboard import aggregate, paired_differences, read_runs_csv, write_all
from mmsemiprune.leaderboard.tables import plot_pareto

PNG = b'\x89PNG\r\n\x1a\n'


def fake_results():
    """SBU: 2 folds x 2 seeds of dense, semi 0.5 / 0.9, structured 0.9, unstructured 0.9; FPHA: one dense."""
    out = []
    acc = {  # (fold, seed): (dense, semi 0.5, semi 0.9, structured 0.9, unstructured 0.9)
        (1, 0): (0.90, 0.88, 0.80, 0.70, 0.84), (2, 0): (0.80, 0.86, 0.76, 0.72, 0.82),
        (1, 1): (0.92, 0.90, 0.82, 0.71, 0.80), (2, 1): (0.82, 0.84, 0.78, 0.73, 0.86)}
    for (fold, seed), (d, s5, s9, st9, u9) in acc.items():
        base = dict(dataset='sbu', backbone='stgcn', fold=fold, seed=seed, top5=1.0, params_dense=1000,
                    max_epochs=3, macs_dense=2e7, flops_dense=1e7)
        out.append(dict(base, method='dense', rate=None, top1=d, mean_class=d - 0.05, rate_params=0.0,
                        params_nonzero=1000, params_compact=1000, params_compact_nonzero=1000, macs_exported=2e7))
        out.append(dict(base, method='semi', rate=0.5, top1=s5, mean_class=s5, rate_params=0.5, rate_flops=0.4,
                        structural_share=0.1, params_nonzero=560, params_compact=900, params_compact_nonzero=550,
                        macs_exported=1.6e7))
        out.append(dict(base, method='semi', rate=0.9, top1=s9, mean_class=s9, rate_params=0.9, rate_flops=0.8,
                        structural_share=0.6, params_nonzero=200, params_compact=500, params_compact_nonzero=190,
                        macs_exported=1.0e7))
        out.append(dict(base, method='structured', rate=0.9, top1=st9, mean_class=st9, rate_params=0.9,
                        structural_share=0.9, params_nonzero=200, params_compact=250, params_compact_nonzero=185,
                        macs_exported=0.4e7))
        out.append(dict(base, method='unstructured', rate=0.9, top1=u9, mean_class=u9, rate_params=0.9,
                        structural_share=0.0, params_nonzero=200, params_compact=1000, params_compact_nonzero=200,
                        macs_exported=2e7))
    out.append(dict(dataset='fpha', backbone='stgcn', fold=None, method='dense', rate=None, top1=0.7,
                    mean_class=0.69, rate_params=0.0))  # a result written before seeds existed: seed 0
    return out


def _by(rows):
    return {(r['dataset'], r['method'], r['target_rate']): r for r in rows}


def test_aggregate_over_folds_and_seeds():
    by = _by(aggregate(fake_results()))
    d = by[('sbu', 'dense', 0.0)]
    assert (d['runs'], d['folds'], d['seeds']) == (4, 2, 2)
    assert d['top1_mean'] == pytest.approx(86.0) and d['top1_std'] == pytest.approx(5.8878, 1e-4)
    # 95 % CI half width of the mean: t_{0.975,3} * s / sqrt(4) = 3.182446 * 5.8878 / 2
    assert d['top1_ci95'] == pytest.approx(3.182446 * 5.887841 / 2, rel=1e-5)
    s9 = by[('sbu', 'semi', 0.9)]
    assert s9['top1_mean'] == pytest.approx(79.0) and s9['rate_flops'] == pytest.approx(0.8)
    assert s9['rate_whole'] == pytest.approx(1 - 190 / 1000) and s9['params_stored_nnz'] == 190
    assert s9['macs_exported_M'] == pytest.approx(10.0)
    f = by[('fpha', 'dense', 0.0)]
    assert f['top1_std'] == 0.0 and f['seeds'] == 1 and math.isnan(f['top1_ci95'])
    rows = aggregate(fake_results())
    sbu = [(r['method'], r['target_rate']) for r in rows if r['dataset'] == 'sbu']
    assert sbu == [('dense', 0.0), ('semi', 0.5), ('semi', 0.9), ('structured', 0.9), ('unstructured', 0.9)]


def test_whole_model_rate_of_older_results():
    # no params_compact_nonzero: the dense-shaped non-zeros count (an upper bound)
    r = dict(dataset='x', backbone='b', fold=1, method='semi', rate=0.9, top1=0.5, mean_class=0.5,
             params_dense=1000, params_nonzero=300)
    row = aggregate([r])[0]
    assert row['rate_whole'] == pytest.approx(0.7) and row['params_stored_nnz'] == 300
    assert row['dominated_by_macs'] == ''  # no MACs: unknown, not 'none'


def test_domination_columns():
    by = _by(aggregate(fake_results()))
    # MACs: structured 0.9 (4 M) is the cheapest; semi 0.5 (16 M, 87 %) beats dense (20 M, 86 %)
    assert by[('sbu', 'dense', 0.0)]['dominated_by_macs'] == 'semi 0.5'
    assert by[('sbu', 'semi', 0.5)]['dominated_by_macs'] == 'none'
    assert by[('sbu', 'structured', 0.9)]['dominated_by_macs'] == 'none'
    # unstructured 0.9 (20 M, 83 %): dense has the same MACs and is more accurate, semi 0.5 is cheaper and more
    # accurate; semi 0.9 (10 M, 79 %) is not as accurate
    assert by[('sbu', 'unstructured', 0.9)]['dominated_by_macs'] == 'dense, semi 0.5'
    # non-zeros: unstructured 0.9 (200, 83 %) is dominated by semi 0.9? no: 79 % < 83 %; semi 0.9 (190, 79 %)
    # is dominated by nobody of another method with <= 190 non-zeros and >= 79 % (structured: 185, 71.5 %)
    assert by[('sbu', 'semi', 0.9)]['dominated_by_nonzeros'] == 'none'
    assert by[('sbu', 'unstructured', 0.9)]['dominated_by_nonzeros'] == 'none'
    assert by[('sbu', 'dense', 0.0)]['dominated_by_nonzeros'] == 'semi 0.5'


def _df3_two_sided_p(t):
    """Two-sided p of Student t with 3 df from its closed form F(t) = 1/2 + (t / (sqrt(3) (1 + t^2 / 3))
    + atan(t / sqrt(3))) / pi."""
    t = abs(t)
    f = 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi
    return 2 * (1 - f)


def test_paired_differences_clustered_by_fold():
    paired = paired_differences(aggregate(fake_results()))
    p = {(x['target_rate'], x['baseline']): x for x in paired}
    assert set(p) == {(0.9, 'structured'), (0.9, 'unstructured')}  # semi 0.5 has no baseline at 0.5
    st = p[(0.9, 'structured')]
    # d = semi - structured per (fold, seed): fold 1 (10, 11), fold 2 (4, 5) -> fold means 10.5, 4.5:
    # mean 7.5, s_D = sqrt(18) over k = 2 folds, half width t_{0.975, 1} * sqrt(18) / sqrt(2) = 12.7062 * 3
    assert (st['pairs'], st['clusters']) == (4, 2) and st['diff_mean'] == pytest.approx(7.5)
    assert st['diff_sd'] == pytest.approx(math.sqrt(18))
    assert st['ci95_lo'] == pytest.approx(7.5 - 3 * 12.7062, abs=1e-3)
    assert st['ci95_hi'] == pytest.approx(7.5 + 3 * 12.7062, abs=1e-3)
    # df 1 (Cauchy): t = 7.5 / 3 = 2.5, p = 1 - 2 atan(2.5) / pi
    assert st['p'] == pytest.approx(1 - 2 * math.atan(2.5) / math.pi, abs=1e-9)
    assert st['verdict'] == 'unresolved after Holm (interval contains 0)'
    un = p[(0.9, 'unstructured')]  # d = fold 1 (-4, 2), fold 2 (-6, -8): fold means -1, -7
    assert un['diff_mean'] == pytest.approx(-4.0) and un['ci95_lo'] < 0 < un['ci95_hi']
    assert un['holm_p'] == pytest.approx(max(un['p'], min(1, 2 * min(un['p'], st['p']))))


def _single_split(results):
    """The same numbers as one split with four seeds: (fold f, seed s) -> seed 2 (f - 1) + s, no fold."""
    return [dict(r, fold=None, seed=2 * (r['fold'] - 1) + r['seed']) if r['dataset'] == 'sbu' else r
            for r in results]


def test_paired_differences_single_split_over_seeds():
    paired = paired_differences(aggregate(_single_split(fake_results())))
    p = {(x['target_rate'], x['baseline']): x for x in paired}
    st = p[(0.9, 'structured')]
    # d = semi - structured per seed = [10, 4, 11, 5] points: mean 7.5, s_d = 3.5119, 4 seeds: 4 clusters
    assert (st['pairs'], st['clusters']) == (4, 4) and st['diff_mean'] == pytest.approx(7.5)
    half = 3.182446 * 3.511885 / 2
    assert st['ci95_lo'] == pytest.approx(7.5 - half, rel=1e-5) and st['ci95_hi'] == pytest.approx(7.5 + half, rel=1e-5)
    assert st['p'] == pytest.approx(_df3_two_sided_p(7.5 / (3.511885 / 2)), abs=1e-6)
    un = p[(0.9, 'unstructured')]  # d = [-4, -6, 2, -8]: the interval contains 0
    assert un['diff_mean'] == pytest.approx(-4.0) and un['ci95_lo'] < 0 < un['ci95_hi']
    # Holm over the two comparisons of sbu: the smaller p doubled (0.047 < 0.05), the larger kept
    assert st['p'] < un['p'] and st['holm_p'] == pytest.approx(2 * st['p']) and un['holm_p'] == pytest.approx(un['p'])
    assert st['verdict'] == 'semi better, resolved after Holm'
    assert un['verdict'] == 'unresolved after Holm (interval contains 0)'


def test_write_all_and_read_back(tmp_path):
    paths = write_all(fake_results(), str(tmp_path), title='test board')
    with open(paths['csv']) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {'top1_mean', 'top1_std', 'top1_ci95', 'rate_params', 'rate_whole', 'macs_exported_M',
                                'params_stored_nnz', 'dominated_by_macs', 'dominated_by_nonzeros', 'runs',
                                'seeds'} <= set(rows[0])
    assert not any('latency' in k for k in rows[0])
    md = open(paths['md']).read()
    assert '# test board' in md and '## sbu' in md and '## fpha' in md
    assert '86.0 ± 5.9' in md and '4 (2 × 2)' in md and '0.900 / 0.810' in md
    assert 'Paired differences of top-1, sbu' in md and '| 0.9 | semi | structured | 4 | +7.5 |' in md
    assert 't_{0.975, n−1}' in md and '![sbu macs](pareto_sbu_macs.png)' in md
    with open(paths['paired']) as f:
        assert len(list(csv.DictReader(f))) == 2
    for k in ('png', 'pareto_sbu_macs', 'pareto_sbu_nonzeros'):
        png = open(paths[k], 'rb').read()
        assert png[:8] == PNG and len(png) > 5000, k
    assert 'pareto_fpha_macs' not in paths and 'pareto_fpha_nonzeros' not in paths  # no counts: no plots
    # runs.csv round trip: same table
    back = read_runs_csv(paths['runs'])
    assert len(back) == 21 and {r['seed'] for r in back} == {0, 1}
    again = _by(aggregate(back))
    assert again[('sbu', 'semi', 0.9)]['top1_mean'] == pytest.approx(79.0)
    assert again[('sbu', 'dense', 0.0)]['dominated_by_macs'] == 'semi 0.5'


def test_pareto_plot_many_methods(tmp_path):
    res = []
    for i, m in enumerate(['semi', 'structured', 'unstructured', 'magnitude', 'l1_channel', 'ctf', 'semi-a',
                           'semi-b', 'semi-c']):
        for rate, macs in ((0.5, 15e6), (0.9, 5e6)):
            res.append(dict(dataset='d', backbone='b', fold=1, seed=0, method=m, rate=rate, top1=0.5 + 0.01 * i,
                            mean_class=0.5, macs_exported=macs * (1 + 0.05 * i), params_compact_nonzero=100))
    rows = aggregate(res)
    p = plot_pareto(rows, 'd', 'macs', str(tmp_path / 'p.png'), max_series=8)
    assert p and open(p, 'rb').read()[:8] == PNG
    assert plot_pareto(rows, 'nope', 'macs', str(tmp_path / 'q.png')) is None
