"""Aggregation over folds and the CSV / Markdown / PNG writers, on fake results."""
import csv
import math

import pytest

from mmsemiprune.leaderboard import aggregate, mean_std, write_all


def fake_results():
    out = []
    for fold, (d, s5, s9, u9) in enumerate([(0.9, 0.88, 0.80, 0.84), (0.8, 0.86, 0.76, 0.82)], 1):
        base = dict(dataset='sbu', backbone='stgcn', fold=fold, top5=1.0, params_dense=1000, params_compact=900,
                    params_nonzero=500, flops_dense=2e7, flops_kept=1e7, flops_compact=1.5e7, latency_ms=2.0,
                    latency_ms_dense_shape=2.5, max_epochs=3)
        out.append(dict(base, method='dense', rate=None, top1=d, mean_class=d - 0.05, rate_params=0.0))
        out.append(dict(base, method='semi', rate=0.5, top1=s5, mean_class=s5, rate_params=0.5, rate_flops=0.4,
                        structural_share=0.1))
        out.append(dict(base, method='semi', rate=0.9, top1=s9, mean_class=s9, rate_params=0.9, rate_flops=0.8,
                        structural_share=0.6))
        out.append(dict(base, method='unstructured', rate=0.9, top1=u9, mean_class=u9, rate_params=0.9,
                        structural_share=0.0))
    out.append(dict(dataset='fpha', backbone='stgcn', fold=None, method='dense', rate=None, top1=0.7,
                    mean_class=0.69, rate_params=0.0))
    return out


def test_mean_std():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_aggregate_mean_std_over_folds():
    rows = aggregate(fake_results())
    by = {(r['dataset'], r['method'], r['target_rate']): r for r in rows}
    d = by[('sbu', 'dense', 0.0)]
    assert d['folds'] == 2 and d['top1_mean'] == pytest.approx(85.0) and d['top1_std'] == pytest.approx(7.0711, 1e-3)
    s9 = by[('sbu', 'semi', 0.9)]
    assert s9['top1_mean'] == pytest.approx(78.0) and s9['rate_flops'] == pytest.approx(0.8)
    assert s9['speedup'] == pytest.approx(1.25)
    assert by[('fpha', 'dense', 0.0)]['top1_std'] == 0.0
    # order: dataset, dense first, then by rate and method
    sbu = [(r['method'], r['target_rate']) for r in rows if r['dataset'] == 'sbu']
    assert sbu == [('dense', 0.0), ('semi', 0.5), ('semi', 0.9), ('unstructured', 0.9)]


def test_write_all(tmp_path):
    paths = write_all(fake_results(), str(tmp_path), title='test board')
    with open(paths['csv']) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and {'top1_mean', 'top1_std', 'mean_class_mean', 'rate_params', 'flops_compact_M',
                                'latency_ms', 'speedup', 'structural_share', 'params_compact'} <= set(rows[0])
    md = open(paths['md']).read()
    assert '# test board' in md and '## sbu' in md and '## fpha' in md
    assert '85.0 ± 7.1' in md and '78.0 ± 2.8' in md
    with open(paths['runs']) as f:
        assert len(list(csv.DictReader(f))) == 9
    png = open(paths['png'], 'rb').read()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000
