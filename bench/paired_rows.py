"""Paired differences between rows of published leaderboard runs, on the validation and the test split.

For each pair ``A:B`` of row labels (``method``, ``method-variant`` or ``dense_small_w10`` as in the run folders,
``@rate`` optional), the
runs of one dataset that both rows have at the same (fold, seed) are paired; the difference of top-1 (points) gets
the fold-clustered 95 % t-interval of :func:`mmsemiprune.leaderboard.stats.clustered_paired_ci` (on SBU the
seeds of a fold are averaged first; on a single split the pairs are the seeds), and Holm's correction over the
pairs given, per split. A row label without ``@rate`` takes every rate; two rows are paired at equal rate
unless one of them has none (dense rows). ``--dataset a,b`` pools datasets: each SBU fold and each single-split
pair is then a cluster of its own. Prints a markdown table:

    python bench/paired_rows.py leaderboard/v3_alloc/runs.csv --dataset sbu \\
        --pairs semi-uniform:semi semi-floor50:semi semi-rerun:semi
"""
import argparse
import csv
import math
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from mmsemiprune.leaderboard.stats import clustered_paired_ci, holm, t_test_p


def _label(row: Dict[str, str]) -> str:
    """``method[-variant]``, and ``_w<width>`` for the narrow dense rows (``dense_small_w10``, as their run folders)."""
    v = row.get('variant') or ''
    m = row['method']
    m = m if not v or m.endswith(f'-{v}') else f'{m}-{v}'
    return f'{m}_w{row["width"]}' if row.get('width') else m


def _rate(row: Dict[str, str]) -> Optional[float]:
    r = row.get('rate') or ''
    return float(r) if r not in ('', 'nan') else None


def read_runs(paths: Sequence[str]) -> List[Dict[str, str]]:
    rows = []
    for p in paths:
        with open(p, newline='') as f:
            rows += list(csv.DictReader(f))
    return rows


def _parse(spec: str) -> Tuple[str, Optional[float]]:
    if '@' in spec:
        name, rate = spec.split('@', 1)
        return name, float(rate)
    return spec, None


def _select(rows, datasets, spec) -> Dict[Tuple, Dict[str, str]]:
    name, rate = _parse(spec)
    out = {}
    for r in rows:
        if r['dataset'] not in datasets or _label(r) != name:
            continue
        if rate is not None and _rate(r) is not None and abs(_rate(r) - rate) > 1e-9:
            continue
        fold = (r['dataset'], r['fold']) if r.get('fold') else None  # a test fold is a cluster; a split is not
        out[(r['dataset'], fold, r.get('seed') or '0', _rate(r))] = r
    return out


def pair(rows, dataset: str, a: str, b: str, column: str) -> Dict[str, float]:
    """Interval dict of ``a − b`` (points) on ``column`` (``val_top1`` or ``top1``), paired by (fold, seed, rate)."""
    datasets = dataset.split(',')
    ra, rb = _select(rows, datasets, a), _select(rows, datasets, b)
    xs, ys, clusters = [], [], []
    for (ds, fold, seed, rate), row in sorted(ra.items(), key=lambda kv: str(kv[0])):
        other = rb.get((ds, fold, seed, rate))
        if other is None:  # a row without a rate (dense) pairs with every rate
            other = next((o for (d, f, s, r), o in rb.items()
                          if d == ds and f == fold and s == seed and (r is None or rate is None)), None)
        if other is None or not row.get(column) or not other.get(column):
            continue
        xs.append(100.0 * float(row[column]))
        ys.append(100.0 * float(other[column]))
        clusters.append(fold)
    if not xs:
        raise ValueError(f'{dataset}: rows {a!r} and {b!r} share no (fold, seed): check the labels '
                         f'(known: {", ".join(sorted({_label(r) for r in rows if r["dataset"] in datasets}))})')
    ci = clustered_paired_ci(xs, ys, clusters)
    ci['p'] = t_test_p(ci)
    return ci


def _fmt(ci, p_holm) -> str:
    if math.isnan(ci['lo']):
        return f'{ci["mean"]:+.1f} (one cluster)'
    mark = ' *' if p_holm < 0.05 else ''
    return f'{ci["mean"]:+.1f} [{ci["lo"]:+.1f}, {ci["hi"]:+.1f}]{mark}'


def table(rows, dataset: str, pairs: Sequence[str]) -> str:
    specs = [p.split(':', 1) for p in pairs]
    if any(len(s) != 2 for s in specs):
        raise ValueError(f'--pairs takes A:B labels, e.g. semi-uniform:semi; got {list(pairs)}')
    cols = {c: [pair(rows, dataset, a, b, c) for a, b in specs] for c in ('val_top1', 'top1')}
    adj = {c: holm([ci['p'] for ci in cis]) for c, cis in cols.items()}
    lines = ['| difference | pairs (clusters) | val | test |', '|---|---|---|---|']
    for i, (a, b) in enumerate(specs):
        v, t = cols['val_top1'][i], cols['top1'][i]
        lines.append(f'| {a} − {b} | {t["pairs"]} ({t["clusters"]}) | {_fmt(v, adj["val_top1"][i])} | '
                     f'{_fmt(t, adj["top1"][i])} |')
    lines.append('')
    lines.append(f'Top-1 points, mean [95 % fold-clustered t-interval]; * : p < 0.05 after Holm over the '
                 f'{len(specs)} differences of this table, per split.')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('runs_csv', nargs='+', help='runs.csv file(s) of published sweeps')
    p.add_argument('--dataset', required=True)
    p.add_argument('--pairs', nargs='+', required=True, help='A:B row labels, e.g. semi-uniform:semi')
    args = p.parse_args(argv)
    try:
        print(table(read_runs(args.runs_csv), args.dataset, args.pairs))
    except (ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
