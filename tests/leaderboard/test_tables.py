"""Aggregation over folds x seeds, domination and paired-difference tables, and the CSV / Markdown / PNG
writers (accuracy vs rate, both Pareto planes), on a tiny synthetic results file."""
import csv
import math
import os.path as osp

import pytest

from mmsemiprune.leaderboard import aggregate, paired_differences, read_runs_csv, write_all
from mmsemiprune.leaderboard.stats import holm
from mmsemiprune.leaderboard.tables import (RUN_COLUMNS, family_of, matched_verdicts, pareto_panels, plot_pareto,
                                            row_label)

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
                    mean_class=0.69, rate_params=0.0))  # a result without a seed: seed 0
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


def test_whole_model_rate_without_stored_nonzeros():
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


# -- narrow dense models, new baselines, verdicts at matched cost ---------------------------------------
FOLD_EFFECT = {1: 0.0, 2: -0.05, 3: 0.03, 4: -0.02, 5: 0.01}
#   method, rate, width, top-1, MMACs, stored non-zeros
SBU_ROWS = [('dense', None, None, 0.92, 47, 130e3),
            ('dense_small', None, 4, 0.80, 5, 10e3), ('dense_small', None, 8, 0.88, 9, 20e3),
            ('dense_small', None, 10, 0.91, 12, 30e3), ('dense_small', None, 12, 0.92, 16, 40e3),
            ('dense_small_ft', None, 8, 0.87, 9, 20e3), ('dense_small_ft', None, 10, 0.90, 12, 30e3),
            ('semi', 0.9, None, 0.88, 10, 19e3), ('semi-t25', 0.9, None, 0.90, 20, 19.5e3),
            ('semi_oneshot', 0.9, None, 0.86, 10, 19e3), ('random', 0.9, None, 0.70, 10, 19e3),
            ('structured', 0.9, None, 0.80, 4, 13e3), ('l1_channel', 0.9, None, 0.83, 11, 15e3),
            ('unstructured', 0.9, None, 0.87, 45, 25e3), ('gmp', 0.9, None, 0.882, 45, 19.2e3),
            ('magnitude', 0.9, None, 0.86, 45, 30e3)]


def _run(ds, fold, seed, method, rate, width, top1, macs, nnz):
    r = dict(dataset=ds, backbone='stgcn', fold=fold, seed=seed, method=method, rate=rate, top1=top1,
             val_top1=top1 + 0.01, mean_class=top1, params_dense=130e3, params_compact_nonzero=nnz,
             macs_exported=macs * 1e6, macs_dense=47e6)
    if width is not None:
        r['width'] = width
    return r


def new_method_results():
    """SBU: 5 folds x 2 seeds of every method; FPHA: one split x 5 seeds of semi 0.9 and gmp 0.9 whose
    differences scatter around -0.2 points (an interval spanning -1)."""
    out = []
    for fold in FOLD_EFFECT:
        for seed in (0, 1):
            for i, (m, rate, width, acc, macs, nnz) in enumerate(SBU_ROWS):
                jitter = 0.002 * ((3 * i + 2 * fold + 7 * seed) % 5 - 2)  # at most 0.4 points
                out.append(_run('sbu', fold, seed, m, rate, width, acc + FOLD_EFFECT[fold] + 0.005 * seed + jitter,
                                macs, nnz))
    for seed, d in enumerate([0.02, -0.03, 0.01, -0.025, 0.015]):
        out.append(_run('fpha', None, seed, 'semi', 0.9, None, 0.6 + d, 10, 19e3))
        out.append(_run('fpha', None, seed, 'gmp', 0.9, None, 0.602, 45, 19.2e3))
    return out


def test_narrow_dense_rows_and_val_columns():
    rows = aggregate(new_method_results())
    ds = [r for r in rows if r['dataset'] == 'sbu' and r['method'] == 'dense_small']
    assert [r['width'] for r in ds] == [4, 8, 10, 12] and all(r['target_rate'] == 0 for r in ds)
    assert [row_label(r) for r in ds] == ['dense_small w4', 'dense_small w8', 'dense_small w10', 'dense_small w12']
    assert all(r['runs'] == 10 and (r['folds'], r['seeds']) == (5, 2) for r in ds)
    for r in rows:
        assert r['val_top1_mean'] == pytest.approx(r['top1_mean'] + 1.0)
    semi = next(r for r in rows if r['method'] == 'semi' and r['dataset'] == 'sbu')
    assert semi['width'] is None and row_label(semi) == 'semi 0.9'
    # the paired table: no narrow dense model (no rate), the new baselines at the rate, random vs semi_oneshot
    paired = paired_differences(rows)
    pairs = {(x['dataset'], x['method'], x['baseline']) for x in paired}
    assert ('sbu', 'semi', 'gmp') in pairs and ('sbu', 'semi', 'random') in pairs
    assert ('sbu', 'semi_oneshot', 'random') in pairs and ('sbu', 'semi_oneshot', 'gmp') not in pairs
    assert not any(family_of(x['baseline']) == 'dense_small' for x in paired)
    sbu = [x for x in paired if x['dataset'] == 'sbu']
    assert all(x['clusters'] == 5 and x['pairs'] == 10 for x in sbu)
    assert [x['holm_p'] for x in sbu] == pytest.approx(holm([x['p'] for x in sbu]))
    rnd = next(x for x in sbu if (x['method'], x['baseline']) == ('semi_oneshot', 'random'))
    assert rnd['diff_mean'] == pytest.approx(16.0, abs=0.5)
    assert rnd['verdict'] == 'semi_oneshot better, resolved after Holm'


def test_families():
    assert [family_of(m) for m in ('dense', 'dense_small_ft', 'l1_channel', 'gmp', 'random', 'semi-t25', 'ctf')] == \
        ['dense', 'dense_small', 'structured', 'unstructured', 'semi-structured', 'semi-structured', 'other']


def test_matched_verdicts():
    vs = matched_verdicts(aggregate(new_method_results()))
    by = {(x['dataset'], x['question'], x['method'], x['baseline'].split(' ')[0]): x for x in vs}
    # semi 0.9 (10 MMACs): the narrow widths with MACs at or above 10 are w10 (12) and w12 (16): w10
    d = by[('sbu', 'macs_vs_dense_small', 'semi 0.9', 'dense_small')]
    assert d['baseline'] == 'dense_small w10' and d['cost'] == pytest.approx(10) and d['baseline_cost'] == 12
    assert (d['pairs'], d['clusters']) == (10, 5) and d['diff_mean'] == pytest.approx(-3.0, abs=0.3)
    assert d['verdict'] == 'dense_small w10 better, resolved after Holm'
    ft = by[('sbu', 'macs_vs_dense_small', 'semi 0.9', 'dense_small_ft')]
    assert ft['baseline'] == 'dense_small_ft w10' and ft['verdict'] == 'dense_small_ft w10 better, resolved after Holm'
    # semi-t25 (20 MMACs) is above every width: no match, no interval, not in the Holm family
    no = by[('sbu', 'macs_vs_dense_small', 'semi-t25 0.9', '')]
    assert no['pairs'] == 0 and math.isnan(no['holm_p']) and 'at or above' in no['verdict']
    # structured family: the closest MACs to 10 is l1_channel 0.9 (11), not structured 0.9 (4)
    st = by[('sbu', 'macs_vs_structured', 'semi 0.9', 'l1_channel')]
    assert st['baseline_cost'] == 11 and st['diff_mean'] == pytest.approx(5.0, abs=0.3)
    assert st['verdict'] == 'semi better, resolved after Holm'
    # unstructured family at matched non-zeros: gmp 0.9 (19.2k) is the closest to semi's 19k; -0.2 points
    un = by[('sbu', 'nonzeros_vs_unstructured', 'semi 0.9', 'gmp')]
    assert un['threshold'] == -1 and un['ci95_lo'] > -1 and un['verdict'] == 'within 1 point, resolved after Holm'
    sbu = [x for x in vs if x['dataset'] == 'sbu']
    assert [x['holm_p'] for x in sbu] == pytest.approx(holm([x['p'] for x in sbu]), nan_ok=True)
    # FPHA, one split: 5 seeds are 5 clusters; d = [+1.8, -3.2, +0.8, -2.7, +1.3]: the interval spans -1
    f = by[('fpha', 'nonzeros_vs_unstructured', 'semi 0.9', 'gmp')]
    assert (f['pairs'], f['clusters']) == (5, 5) and f['diff_mean'] == pytest.approx(-0.4)
    assert f['ci95_lo'] < -1 < f['ci95_hi'] and f['verdict'] == 'unresolved after Holm (interval spans −1)'
    assert not any(x['dataset'] == 'fpha' and x['question'] != 'nonzeros_vs_unstructured' for x in vs)


def test_pareto_panels_per_family():
    rows = aggregate(new_method_results())
    panels = pareto_panels(rows, 'sbu', 'macs')
    assert [t for t, _ in panels] == ['narrow dense models', 'structured family', 'unstructured family',
                                      'semi-structured baselines']
    for _, ms in panels:
        assert ms[:2] == ['semi', 'semi-t25']  # semi and its variants in every panel
    assert panels[0][1][2:] == ['dense_small', 'dense_small_ft'] and panels[1][1][2:] == ['structured', 'l1_channel']
    assert set(panels[2][1][2:]) == {'unstructured', 'magnitude', 'gmp'}
    assert panels[3][1][2:] == ['semi_oneshot', 'random']
    # too many methods for one panel: the family spreads over two, each with semi
    small = pareto_panels(rows, 'sbu', 'nonzeros', max_series=4)  # dense, 2 semi, 1 baseline per panel
    assert [t for t, _ in small][:5] == ['narrow dense models (1/2)', 'narrow dense models (2/2)',
                                         'structured family (1/2)', 'structured family (2/2)',
                                         'unstructured family (1/3)']
    assert all(ms[:2] == ['semi', 'semi-t25'] and len(ms) <= 3 for _, ms in small)
    assert [t for t, _ in pareto_panels(rows, 'fpha', 'macs')] == ['unstructured family']


def test_write_all_new_methods(tmp_path):
    paths = write_all(new_method_results(), str(tmp_path), title='board')
    for k in ('pareto_sbu_macs', 'pareto_sbu_nonzeros', 'pareto_fpha_macs', 'pareto_fpha_nonzeros', 'png'):
        png = open(paths[k], 'rb').read()
        assert png[:8] == PNG and len(png) > 5000, k
    md = open(paths['md']).read()
    assert '| val top-1 % | test top-1 % |' in md and '| dense_small | width 10 | 10 (5 × 2) |' in md
    assert '### Verdicts, sbu' in md and 'Holm family: the ' in md
    ver = open(paths['verdicts']).read()
    assert '| macs_vs_dense_small | semi 0.9 | 10.00 MMACs | dense_small w10 | 12.00 MMACs | 10 (5) |' in ver
    assert 'No dense_small row in this dataset: not answered.' in ver  # fpha
    sbu_part, fpha_part = ver.split('### Verdicts, fpha')
    assert 'clustered by test fold' in sbu_part and 'no two pairs share a test fold' in fpha_part
    with open(paths['verdicts_csv']) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(matched_verdicts(aggregate(new_method_results())))
    with open(paths['paired']) as f:
        head = next(csv.reader(f))
    assert head[5:] == ['pairs', 'clusters', 'diff_mean', 'diff_sd', 'ci95_lo', 'ci95_hi', 'p', 'holm_p', 'verdict']
    # runs.csv keeps width and val top-1
    back = read_runs_csv(paths['runs'])
    by = _by(aggregate(back))
    again = {(r['dataset'], r['method'], r['width']): r for r in aggregate(back)}
    assert again[('sbu', 'dense_small', 10)]['val_top1_mean'] == pytest.approx(
        again[('sbu', 'dense_small', 10)]['top1_mean'] + 1.0)
    assert by[('sbu', 'gmp', 0.9)]['runs'] == 10


def test_runs_csv_without_val_and_width(tmp_path):
    # a runs.csv with neither val_top1 nor width columns still makes every table
    src = tmp_path / 'old.csv'
    cols = [c for c in RUN_COLUMNS if c not in ('val_top1', 'width')]
    with open(src, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction='ignore')
        w.writeheader()
        for r in fake_results():
            w.writerow({k: '' if r.get(k) is None else r.get(k) for k in cols})
    back = read_runs_csv(str(src))
    assert not any('width' in r or 'val_top1' in r for r in back)
    paths = write_all(back, str(tmp_path / 'out'))
    md = open(paths['md']).read()
    assert '| dense | – | 4 (2 × 2) | – | 86.0 ± 5.9 |' in md
    assert 'No dense_small row in this dataset: not answered.' in open(paths['verdicts']).read()


V2 = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'leaderboard', 'v2', 'runs.csv')


@pytest.mark.skipif(not osp.isfile(V2), reason='the published leaderboard/v2/runs.csv is absent')
def test_published_runs_csv_clusters_by_fold(tmp_path):
    paths = write_all(read_runs_csv(V2), str(tmp_path))
    with open(paths['paired']) as f:
        paired = list(csv.DictReader(f))
    sbu = [p for p in paired if p['dataset'] == 'sbu']
    assert sbu and all((p['pairs'], p['clusters']) == ('15', '5') for p in sbu)  # 5 folds x 3 seeds
    assert all(p['pairs'] == p['clusters'] for p in paired if p['dataset'] != 'sbu')  # one split: seeds


def test_matched_verdict_without_common_runs():
    # the narrow models ran on other seeds: matched by MACs, but nothing to pair
    res = [dict(r, seed=r['seed'] + 10) if r['method'] == 'dense_small' else r for r in new_method_results()]
    vs = matched_verdicts(aggregate(res))
    d = next(x for x in vs if x['method'] == 'semi 0.9' and x['baseline'] == 'dense_small w10')
    assert d['pairs'] == 0 and math.isnan(d['holm_p'])
    assert d['verdict'] == 'no common (fold, seed) run with dense_small w10'
