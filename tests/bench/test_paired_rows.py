"""bench/paired_rows.py: paired val / test differences between rows of published runs.csv files."""
import csv
import os.path as osp

import pytest

from tests.bench.scripts import load_script

pr = load_script('paired_rows')

FIELDS = ['dataset', 'backbone', 'method', 'rate', 'width', 'fold', 'seed', 'val_top1', 'top1']


def _write(path, rows):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, '') for k in FIELDS})
    return str(path)


def _sbu(tmp_path):
    """SBU-like: 3 folds x 2 seeds; semi-x beats semi by 2 points (val) / d_fold (test) on every run."""
    rows, d_fold = [], {1: 1.0, 2: 3.0, 3: 5.0}
    for fold in (1, 2, 3):
        for seed in (0, 1):
            base = 0.80 + 0.01 * fold + 0.002 * seed
            rows.append(dict(dataset='sbu', method='dense', fold=fold, seed=seed, val_top1=0.9, top1=0.9))
            rows.append(dict(dataset='sbu', method='dense_small', width=8, fold=fold, seed=seed, val_top1=0.5,
                             top1=0.5))
            for rate in (0.9, 0.98):
                rows.append(dict(dataset='sbu', method='semi', rate=rate, fold=fold, seed=seed,
                                 val_top1=base, top1=base))
            rows.append(dict(dataset='sbu', method='semi-x', rate=0.9, fold=fold, seed=seed,
                             val_top1=base + 0.02, top1=base + d_fold[fold] / 100))
    return _write(tmp_path / 'runs.csv', rows)


def test_pairs_by_fold_and_seed_and_clusters_by_fold(tmp_path):
    rows = pr.read_runs([_sbu(tmp_path)])
    ci = pr.pair(rows, 'sbu', 'semi-x', 'semi', 'top1')
    # 6 pairs at rate 0.9 only (semi-x has no 0.98), 3 fold clusters, mean of the fold means 1, 3, 5
    assert (ci['pairs'], ci['clusters']) == (6, 3)
    assert ci['mean'] == pytest.approx(3.0)
    assert ci['sd'] == pytest.approx(2.0)  # sd of 1, 3, 5
    assert ci['lo'] < 0 < ci['hi']  # t(0.975, 2) = 4.30: 3 ± 4.97
    val = pr.pair(rows, 'sbu', 'semi-x', 'semi', 'val_top1')
    assert val['mean'] == pytest.approx(2.0) and val['sd'] == pytest.approx(0.0, abs=1e-9) and val['p'] == 0.0
    # a dense row (no rate) pairs with each rate of the other row; a narrow dense row is named by its width
    d = pr.pair(rows, 'sbu', 'semi', 'dense', 'top1')
    assert d['pairs'] == 12 and d['clusters'] == 3
    w = pr.pair(rows, 'sbu', 'dense', 'dense_small_w8', 'top1')
    assert w['pairs'] == 6 and w['mean'] == pytest.approx(40.0)


def test_datasets_pool_with_a_cluster_per_fold_and_per_split_pair(tmp_path):
    rows = pr.read_runs([_sbu(tmp_path)])
    rows += [dict(r, dataset='fpha', fold='') for r in rows if r['fold'] == '1']  # one split, 2 seeds
    ci = pr.pair(rows, 'sbu,fpha', 'semi-x', 'semi', 'top1')
    assert (ci['pairs'], ci['clusters']) == (8, 5)  # 3 SBU folds + 2 FPHA seeds
    assert ci['mean'] == pytest.approx((1 + 3 + 5 + 1 + 1) / 5)


def test_rate_suffix_and_the_table(tmp_path):
    rows = pr.read_runs([_sbu(tmp_path)])
    assert pr.pair(rows, 'sbu', 'semi@0.98', 'dense', 'top1')['pairs'] == 6
    out = pr.table(rows, 'sbu', ['semi-x:semi', 'semi@0.9:dense'])
    lines = out.splitlines()
    assert lines[2].startswith('| semi-x − semi | 6 (3) | +2.0 [+2.0, +2.0] * | +3.0 [')
    assert not lines[2].endswith('* |')  # the test interval contains 0: no mark
    assert 'Holm over the 2 differences' in out


def test_reproduces_the_published_scoring_interval():
    """The v3 scoring diagnosis' semi − semi-raw on val: −1.3 [−4.5, +1.8] (leaderboard/v3_scoring/README.md)."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    files = [osp.join(root, 'leaderboard', d, 'runs.csv') for d in ('v3_scoring', 'v3')]
    if not all(osp.exists(f) for f in files):
        pytest.skip('published v3 tables are not in this checkout')
    ci = pr.pair(pr.read_runs(files), 'sbu', 'semi', 'semi-raw', 'val_top1')
    assert (round(ci['mean'], 1), round(ci['lo'], 1), round(ci['hi'], 1)) == (-1.3, -4.5, 1.8)


def test_unknown_label_is_one_clear_error(tmp_path, capsys):
    assert pr.main([_sbu(tmp_path), '--dataset', 'sbu', '--pairs', 'semi-y:semi']) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sbu: rows 'semi-y' and 'semi' share no (fold, seed)") and 'semi-x' in err
    assert pr.main([_sbu(tmp_path), '--dataset', 'sbu', '--pairs', 'semi-x']) == 2
    assert 'A:B labels' in capsys.readouterr().err
