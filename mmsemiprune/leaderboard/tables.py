"""Aggregate run results over folds × seeds and write the leaderboard:

- ``leaderboard.csv`` / ``leaderboard.md``: one row per (dataset, backbone, method, target rate or width),
  mean ± sample std of validation and test top-1 over all (fold, seed) runs, with the prunable and
  whole-model pruning rates, stored non-zero parameters, exported MACs per clip and the domination columns;
- ``paired.csv`` (and a table per dataset in the Markdown): semi against every baseline at the same
  rate (and the one-shot semi mask against the random one), the mean paired difference of test top-1
  with its fold-clustered 95 % t-interval, p-value and Holm-adjusted p-value (family: the comparisons
  of one dataset in the table);
- ``verdicts.md`` / ``verdicts.csv`` (also a section of ``leaderboard.md``): per dataset, semi against the
  narrow dense models and the structured family at matched exported MACs, and against the closest
  unstructured row at matched non-zeros (is it within 1 point?);
- ``runs.csv``: every run separately;
- ``leaderboard.png`` (top-1 vs target rate) and, per dataset, ``pareto_<dataset>_macs.png`` (top-1 vs
  exported MACs) and ``pareto_<dataset>_nonzeros.png`` (top-1 vs stored non-zero parameters): one panel
  per baseline family, semi drawn in every panel, the narrow dense models as their own front.
"""
import csv
import math
import os
import os.path as osp
import statistics
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from .spec import METHOD_ORDER
from .stats import (clustered_paired_ci, dominators, holm, mean_ci, mean_std, optional_float, pareto_front,
                    t_test_p)

__all__ = ['aggregate', 'paired_differences', 'matched_verdicts', 'compare', 'write_csv', 'write_markdown',
           'write_runs_csv', 'write_paired_csv', 'write_verdicts', 'write_verdicts_csv', 'plot', 'plot_pareto',
           'pareto_panels', 'write_all', 'mean_std', 'read_runs_csv', 'row_label', 'base_method', 'family_of',
           'FAMILIES']

COLUMNS = ['dataset', 'backbone', 'method', 'target_rate', 'width', 'runs', 'folds', 'seeds', 'rate_params',
           'rate_whole', 'rate_flops', 'val_top1_mean', 'val_top1_std', 'top1_mean', 'top1_std', 'top1_ci95',
           'mean_class_mean', 'mean_class_std', 'params_dense', 'params_nonzero', 'params_compact',
           'params_stored_nnz', 'macs_dense_M', 'macs_exported_M', 'flops_dense_M', 'flops_kept_M',
           'flops_compact_M', 'structural_share', 'epochs', 'train_s_mean', 'dominated_by_macs',
           'dominated_by_nonzeros', 'report_code']

PAIRED_COLUMNS = ['dataset', 'backbone', 'target_rate', 'method', 'baseline', 'pairs', 'clusters', 'diff_mean',
                  'diff_sd', 'ci95_lo', 'ci95_hi', 'p', 'holm_p', 'verdict']

VERDICT_COLUMNS = ['dataset', 'backbone', 'question', 'method', 'cost', 'baseline', 'baseline_cost', 'threshold',
                   'pairs', 'clusters', 'diff_mean', 'ci95_lo', 'ci95_hi', 'p', 'holm_p', 'verdict']

RUN_COLUMNS = ['dataset', 'backbone', 'method', 'rate', 'width', 'fold', 'seed', 'val_top1', 'top1', 'top5',
               'mean_class', 'rate_params', 'rate_whole', 'rate_flops', 'structural_share', 'params_dense',
               'params_nonzero', 'params_compact', 'params_compact_nonzero', 'macs_dense', 'macs_exported',
               'flops_dense', 'flops_kept', 'flops_compact', 'export_max_abs_diff', 'max_epochs', 'train_s',
               'train_segments', 'eval_s', 'device', 'finished_at', 'report_code']

_NUMERIC_RUN = {c for c in RUN_COLUMNS if c not in ('dataset', 'backbone', 'method', 'fold', 'device', 'finished_at',
                                                   'report_code')}

# baseline families (a label ``method-variant`` belongs to its method's family); semi is compared with each
FAMILIES = OrderedDict([
    ('dense_small', ('dense_small', 'dense_small_ft')),
    ('structured', ('structured', 'l1_channel')),
    ('unstructured', ('unstructured', 'magnitude', 'gmp')),
    ('semi-structured', ('semi', 'semi_oneshot', 'random')),
])
_ORDER = list(METHOD_ORDER) + [m for fam in FAMILIES.values() for m in fam if m not in METHOD_ORDER]


def base_method(label: str) -> str:
    """The method of a row label: ``'semi-t48'`` → ``'semi'``."""
    return str(label).partition('-')[0]


def family_of(label: str) -> str:
    """The family of a method label (see :data:`FAMILIES`); ``'dense'``, or ``'other'`` for methods of
    no family (e.g. ``ctf``)."""
    m = base_method(label)
    if m == 'dense':
        return 'dense'
    return next((f for f, ms in FAMILIES.items() if m in ms), 'other')


def _is_semi(label: str) -> bool:
    return base_method(label) == 'semi'


# -- per-run fields -------------------------------------------------------------------------------------
def _pair(r) -> tuple:
    """The (fold, seed) a run belongs to: the pairing key of paired comparisons."""
    f = r.get('fold')
    return ('' if f is None or f == '' else str(f), int(optional_float(r.get('seed')) or 0))


def _cluster(pair: tuple):
    """The cluster of a pairing key: its test fold, None for a single split (each seed then stands alone)."""
    return pair[0] if pair[0] != '' else None


def _stored_nnz(r) -> Optional[float]:
    """Non-zero parameters stored by the exported model; for a result without that count
    (``params_compact_nonzero``), the non-zeros of the dense-shaped masked model (an upper bound)."""
    v = optional_float(r.get('params_compact_nonzero'))
    return v if v is not None else optional_float(r.get('params_nonzero'))


def _rate_whole(r) -> Optional[float]:
    v = optional_float(r.get('rate_whole'))
    if v is not None:
        return v
    nnz, tot = _stored_nnz(r), optional_float(r.get('params_dense'))
    return None if nnz is None or not tot else 1.0 - nnz / tot


def _rate(r) -> float:
    if family_of(r.get('method')) in ('dense', 'dense_small'):
        return 0.0
    v = optional_float(r.get('rate'))
    return v if v is not None else float(optional_float(r.get('target_rate')) or 0.0)


def _width(r) -> Optional[float]:
    """Base channels of a narrow dense model (``width``), None for the other methods."""
    return optional_float(r.get('width'))


def _mean(vals, scale=1.0) -> float:
    v = [x for x in (optional_float(x) for x in vals) if x is not None]
    return statistics.fmean(v) * scale if v else float('nan')


def _pct(vals) -> List[float]:
    """Fractions as percent, missing / NaN values left out."""
    return [100 * x for x in (optional_float(v) for v in vals) if x is not None]


def row_label(row) -> str:
    """``'dense'``, ``'<method> <rate>'`` (e.g. ``'semi 0.9'``) or ``'<method> w<width>'`` for a narrow dense
    model (e.g. ``'dense_small w10'``)."""
    if row['method'] == 'dense':
        return 'dense'
    w = row.get('width')
    if w is not None and not (isinstance(w, float) and math.isnan(w)):
        return f'{row["method"]} w{w:g}'
    return f'{row["method"]} {row["target_rate"]:g}'


def _method_sort_key(m: str):
    base, _, variant = m.partition('-')
    return (_ORDER.index(base) if base in _ORDER else 99, variant, m)


# -- aggregation ----------------------------------------------------------------------------------------
def _row(ds, bb, m, rate, width, rs) -> Dict:
    top1 = _pct(r.get('top1') for r in rs)
    t1m, t1s = mean_std(top1)
    vm, vs = mean_std(_pct(r.get('val_top1') for r in rs))
    mcm, mcs = mean_std(_pct(r.get('mean_class') for r in rs))
    codes = sorted({str(r.get('report_code')) for r in rs if r.get('report_code')})
    return dict(
        dataset=ds, backbone=bb, method=m, target_rate=rate, width=width, runs=len(rs),
        folds=len({_pair(r)[0] for r in rs}), seeds=len({_pair(r)[1] for r in rs}),
        rate_params=_mean(r.get('rate_params') for r in rs), rate_whole=_mean(_rate_whole(r) for r in rs),
        rate_flops=_mean(r.get('rate_flops') for r in rs), val_top1_mean=vm, val_top1_std=vs,
        top1_mean=t1m, top1_std=t1s, top1_ci95=mean_ci(top1)['half'], mean_class_mean=mcm, mean_class_std=mcs,
        params_dense=_mean(r.get('params_dense') for r in rs),
        params_nonzero=_mean(r.get('params_nonzero') for r in rs),
        params_compact=_mean(r.get('params_compact') for r in rs),
        params_stored_nnz=_mean(_stored_nnz(r) for r in rs),
        macs_dense_M=_mean((r.get('macs_dense') for r in rs), 1e-6),
        macs_exported_M=_mean((r.get('macs_exported') for r in rs), 1e-6),
        flops_dense_M=_mean((r.get('flops_dense') for r in rs), 1e-6),
        flops_kept_M=_mean((r.get('flops_kept') for r in rs), 1e-6),
        flops_compact_M=_mean((r.get('flops_compact') for r in rs), 1e-6),
        structural_share=_mean(r.get('structural_share') for r in rs),
        epochs=_mean(r.get('max_epochs') for r in rs),
        train_s_mean=_mean(r.get('train_s') for r in rs), report_code=' '.join(codes),
        _acc={_pair(r): 100 * float(r['top1']) for r in rs if optional_float(r.get('top1')) is not None})


def aggregate(results: List[Dict]) -> List[Dict]:
    """One row per (dataset, backbone, method, target rate, width): mean ± std over its (fold, seed) runs
    (accuracies in %), the domination columns, and ``_acc`` = {(fold, seed): test top-1 %} for pairing."""
    groups: Dict[tuple, List[Dict]] = OrderedDict()
    for r in results:
        groups.setdefault((r['dataset'], r.get('backbone', '') or '', r['method'], _rate(r), _width(r)),
                          []).append(r)
    rows = [_row(*key, rs) for key, rs in groups.items()]
    first = {}
    for r in results:  # datasets in the order they first appear (the sweep's order)
        first.setdefault(r['dataset'], len(first))
    rows.sort(key=lambda r: (first[r['dataset']], r['backbone'], r['target_rate'] > 0, r['target_rate'],
                             _method_sort_key(r['method']), -1 if r['width'] is None else r['width']))
    _add_domination(rows)
    return rows


def _add_domination(rows: List[Dict]) -> None:
    """``dominated_by_macs`` / ``dominated_by_nonzeros``: labels of the rows of other methods of the same
    dataset / backbone with top-1 ≥ (paired mean) and exported MACs ≤ / stored non-zeros ≤; 'none' if
    there is none, '' if the cost is unknown."""
    for key in OrderedDict(((r['dataset'], r['backbone']), 1) for r in rows):
        sub = [r for r in rows if (r['dataset'], r['backbone']) == key]
        items = [dict(id=i, method=r['method'], macs=r['macs_exported_M'], nnz=r['params_stored_nnz'], acc=r['_acc'])
                 for i, r in enumerate(sub)]
        for cost, col in (('macs', 'dominated_by_macs'), ('nnz', 'dominated_by_nonzeros')):
            dom = dominators(items, cost)
            for i, r in enumerate(sub):
                if math.isnan(items[i][cost]):
                    r[col] = ''
                else:
                    r[col] = ', '.join(row_label(sub[j]) for j in dom[i]) or 'none'


# -- paired comparisons ---------------------------------------------------------------------------------
def compare(r: Dict, b: Dict, ref: float = 0.0, level: float = 0.95) -> Dict:
    """Paired difference ``top1_r − top1_b`` (points) over the (fold, seed) runs both rows have, with its
    fold-clustered t-interval (:func:`~.stats.clustered_paired_ci`: seeds averaged within a test fold,
    then a t-interval over folds; a single split: the paired t-interval over seeds) and the two-sided
    p-value of the difference against ``ref``."""
    common = sorted(set(r['_acc']) & set(b['_acc']))
    ci = clustered_paired_ci([r['_acc'][k] for k in common], [b['_acc'][k] for k in common],
                             [_cluster(k) for k in common], level)
    return dict(pairs=ci['pairs'], clusters=ci['clusters'], diff_mean=ci['mean'], diff_sd=ci['sd'],
                ci95_lo=ci['lo'], ci95_hi=ci['hi'], p=t_test_p(ci, ref))


def _add_holm(items: List[Dict], alpha: float) -> None:
    """``holm_p`` over each dataset's items (one family per dataset) and ``resolved`` = holm_p < alpha."""
    for ds in OrderedDict((x['dataset'], 1) for x in items):
        fam = [x for x in items if x['dataset'] == ds]
        for x, hp in zip(fam, holm([x['p'] for x in fam])):
            x['holm_p'] = hp
            x['resolved'] = not math.isnan(hp) and hp < alpha


def _paired_verdict(x: Dict) -> str:
    if x['clusters'] < 2:
        return 'one cluster: no interval'
    if math.isnan(x['ci95_lo']) or x['ci95_lo'] <= 0 <= x['ci95_hi']:
        return 'unresolved after Holm (interval contains 0)'
    better = x['method'] if x['ci95_lo'] > 0 else x['baseline']
    if x['resolved']:
        return f'{better} better, resolved after Holm'
    return f'unresolved after Holm ({better} better before correction)'


def _same_rate_baseline(r: Dict, b: Dict) -> bool:
    """Which rows a paired table compares at one rate: semi (and its variants) against every other
    pruning method, and the one-shot semi mask (and its variants) against the random mask."""
    if b['method'] == r['method'] or family_of(b['method']) in ('dense', 'dense_small'):
        return False
    if (b['dataset'], b['backbone'], b['target_rate']) != (r['dataset'], r['backbone'], r['target_rate']):
        return False
    if _is_semi(r['method']):
        return not _is_semi(b['method'])
    return base_method(r['method']) == 'semi_oneshot' and base_method(b['method']) == 'random'


def paired_differences(rows: List[Dict], level: float = 0.95) -> List[Dict]:
    """For every semi row (``semi`` and its variants) and every other pruning method at the same dataset,
    backbone and rate (and for the one-shot semi mask against the random mask): the paired difference of
    test top-1 ``top1_semi − top1_baseline`` (points) of :func:`compare`, with ``holm_p``, the
    Holm–Bonferroni adjusted p-value over all comparisons of the same dataset, and a verdict: a method is
    better, resolved after Holm, when its interval excludes 0 and the adjusted p-value is below
    ``1 − level``."""
    out = []
    for r in rows:
        if not (_is_semi(r['method']) or base_method(r['method']) == 'semi_oneshot'):
            continue
        for b in rows:
            if not _same_rate_baseline(r, b) or not set(r['_acc']) & set(b['_acc']):
                continue
            out.append(dict(dataset=r['dataset'], backbone=r['backbone'], target_rate=r['target_rate'],
                            method=r['method'], baseline=b['method'], **compare(r, b, 0.0, level)))
    _add_holm(out, 1.0 - level)
    for x in out:
        x['verdict'] = _paired_verdict(x)
    return out


# -- verdicts at matched cost ----------------------------------------------------------------------------
QUESTIONS = OrderedDict([
    ('macs_vs_dense_small', ('macs_exported_M', 'MMACs', 'at matched exported MACs, does semi beat the narrow '
                             'dense model (the width with the closest MACs at or above semi\'s)?')),
    ('macs_vs_structured', ('macs_exported_M', 'MMACs', 'at matched exported MACs, does semi beat the structured '
                            'family (the structured row with the closest MACs)?')),
    ('nonzeros_vs_unstructured', ('params_stored_nnz', 'non-zeros', 'at matched stored non-zeros, is semi within 1 '
                                  'point of the best unstructured row (the one with the closest non-zeros)?')),
])


def _finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _match(r: Dict, cands: Sequence[Dict], key: str, at_or_above: bool) -> Optional[Dict]:
    """The candidate whose mean cost is the closest to ``r``'s (only those at or above it when asked)."""
    c0 = r[key]
    pool = [b for b in cands if _finite(b[key]) and (not at_or_above or b[key] >= c0 * (1 - 1e-9))]
    return min(pool, key=lambda b: (abs(b[key] - c0), b[key])) if pool else None


def _matched_pairs(sub: List[Dict]):
    """(question, semi row, matched row or None, family) of one dataset / backbone."""
    fams = {f: [b for b in sub if family_of(b['method']) == f] for f in FAMILIES}
    for r in (x for x in sub if _is_semi(x['method']) and _finite(x['macs_exported_M'])):
        for m in FAMILIES['dense_small']:
            cands = [b for b in fams['dense_small'] if base_method(b['method']) == m]
            if cands:
                yield 'macs_vs_dense_small', r, _match(r, cands, 'macs_exported_M', True), m
        if fams['structured']:
            yield 'macs_vs_structured', r, _match(r, fams['structured'], 'macs_exported_M', False), 'structured'
    for r in (x for x in sub if _is_semi(x['method']) and _finite(x['params_stored_nnz'])):
        if fams['unstructured']:
            yield 'nonzeros_vs_unstructured', r, _match(r, fams['unstructured'], 'params_stored_nnz', False), \
                'unstructured'


def _matched_verdict(x: Dict) -> str:
    if not x['pairs']:
        return x['verdict']
    if x['clusters'] < 2 or math.isnan(x['ci95_lo']):
        return 'one cluster: no interval'
    if x['question'] == 'nonzeros_vs_unstructured':
        if x['resolved'] and x['ci95_lo'] > -1:
            return 'within 1 point, resolved after Holm'
        if x['resolved'] and x['ci95_hi'] < -1:
            return 'more than 1 point below, resolved after Holm'
        if x['ci95_lo'] <= -1 <= x['ci95_hi']:
            return 'unresolved after Holm (interval spans −1)'
        return 'unresolved after Holm (' + ('within 1 point' if x['ci95_lo'] > -1 else 'more than 1 point below') \
            + ' before correction)'
    if x['resolved'] and x['ci95_lo'] > 0:
        return 'semi better, resolved after Holm'
    if x['resolved'] and x['ci95_hi'] < 0:
        return f'{x["baseline"]} better, resolved after Holm'
    if x['ci95_lo'] <= 0 <= x['ci95_hi']:
        return 'unresolved after Holm (interval spans 0)'
    better = 'semi' if x['ci95_lo'] > 0 else x['baseline']
    return f'unresolved after Holm ({better} better before correction)'


def matched_verdicts(rows: List[Dict], level: float = 0.95) -> List[Dict]:
    """Per dataset, every semi row (``semi`` and its variants) against:

    - each narrow dense method (``dense_small``, ``dense_small_ft``): the width whose mean exported MACs is
      the closest at or above semi's (threshold 0: does semi beat it?);
    - the structured family: the row with the closest mean exported MACs (threshold 0);
    - the unstructured family: the row with the closest mean stored non-zeros (threshold −1: semi is
      within 1 point when the lower bound of ``semi − baseline`` is above −1).

    The difference of test top-1 is paired and fold-clustered (:func:`compare`); its p-value is taken
    against the threshold and Holm-adjusted over all verdict comparisons of one dataset. A comparison is
    resolved when the adjusted p-value is below ``1 − level``; otherwise it is reported unresolved."""
    out = []
    for key in OrderedDict(((r['dataset'], r['backbone']), 1) for r in rows):
        sub = [r for r in rows if (r['dataset'], r['backbone']) == key]
        for q, r, b, fam in _matched_pairs(sub):
            ckey = QUESTIONS[q][0]
            thr = -1.0 if q == 'nonzeros_vs_unstructured' else 0.0
            x = dict(dataset=key[0], backbone=key[1], question=q, method=row_label(r), cost=r[ckey],
                     baseline='' if b is None else row_label(b), baseline_cost=float('nan') if b is None else b[ckey],
                     threshold=thr)
            if b is None or not set(r['_acc']) & set(b['_acc']):
                nan = float('nan')
                above = ' at or above semi\'s' if fam in FAMILIES['dense_small'] else ''
                x.update(pairs=0, clusters=0, diff_mean=nan, diff_sd=nan, ci95_lo=nan, ci95_hi=nan, p=nan,
                         verdict=(f'no {fam} row with a known cost{above}' if b is None else
                                  f'no common (fold, seed) run with {row_label(b)}'))
            else:
                x.update(compare(r, b, thr, level))
            out.append(x)
    _add_holm(out, 1.0 - level)
    for x in out:
        x['verdict'] = _matched_verdict(x)
    return out


# -- CSV ----------------------------------------------------------------------------------------------
def _csv_val(v):
    if isinstance(v, float):
        return '' if math.isnan(v) else f'{v:.6g}'
    return v


def _write_dicts(rows: List[Dict], cols: List[str], path: str) -> None:
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_val(r.get(k)) for k in cols})


def write_csv(rows: List[Dict], path: str):
    _write_dicts(rows, COLUMNS, path)


def write_paired_csv(paired: List[Dict], path: str):
    _write_dicts(paired, PAIRED_COLUMNS, path)


def write_verdicts_csv(verdicts: List[Dict], path: str):
    _write_dicts(verdicts, VERDICT_COLUMNS, path)


def write_runs_csv(results: List[Dict], path: str):
    """Every run separately."""
    rs = sorted(results, key=lambda r: (r['dataset'], str(r.get('fold')), _pair(r)[1], r['method'], _rate(r),
                                        _width(r) or 0.0))
    _write_dicts([dict(r, seed=_pair(r)[1], rate_whole=_rate_whole(r)) for r in rs], RUN_COLUMNS, path)


def read_runs_csv(path: str) -> List[Dict]:
    """Results from a ``runs.csv`` (numbers parsed; no ``seed`` column: seed 0)."""
    out = []
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            r = {}
            for k, v in row.items():
                if k in _NUMERIC_RUN or k in ('latency_ms', 'latency_ms_dense_shape', 'shrink_max_abs_diff'):
                    r[k] = optional_float(v)
                else:
                    r[k] = v
            r['fold'] = None if row.get('fold') in (None, '') else int(float(row['fold']))
            for k in ('rate', 'width', 'val_top1'):  # empty or absent: unknown, left out
                if r.get(k) is None:
                    r.pop(k, None)
            r['seed'] = int(optional_float(row.get('seed')) or 0)
            out.append(r)
    return out


# -- Markdown -------------------------------------------------------------------------------------------
def _pm(m, s, nd=1):
    if m is None or math.isnan(m):
        return '–'
    return f'{m:.{nd}f} ± {s:.{nd}f}'


def _num(v, fmt):
    return '–' if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _k(v):
    return '–' if v is None or math.isnan(v) else f'{v / 1e3:.1f}k'


def _short(labels: str, n: int = 4) -> str:
    """At most ``n`` labels of a comma-separated list, then '+k more' (the CSV has them all)."""
    if not labels or labels == 'none':
        return labels or '–'
    parts = labels.split(', ')
    return ', '.join(parts[:n]) + (f' +{len(parts) - n} more' if len(parts) > n else '')


def _rate_cell(r) -> str:
    if r['method'] == 'dense':
        return '–'
    return f'width {r["width"]:g}' if _finite(r.get('width')) else f'{r["target_rate"]:g}'


def markdown_table(rows: List[Dict]) -> str:
    head = ('| method | target rate / width | runs (folds × seeds) | val top-1 % | test top-1 % | test mean-class % '
            '| pruned: prunable / whole model | params stored non-zero | params dense → exported '
            '| MMACs per clip dense → exported | structural share '
            '| dominated by (MACs) | dominated by (non-zeros) |')
    lines = [head, '|' + '---|' * 13]
    for r in rows:
        unpruned = family_of(r['method']) in ('dense', 'dense_small')
        lines.append('| ' + ' | '.join([
            r['method'], _rate_cell(r), f'{r["runs"]} ({r["folds"]} × {r["seeds"]})',
            _pm(r['val_top1_mean'], r['val_top1_std']), _pm(r['top1_mean'], r['top1_std']),
            _pm(r['mean_class_mean'], r['mean_class_std']),
            '–' if unpruned else f'{_num(r["rate_params"], ".3f")} / {_num(r["rate_whole"], ".3f")}',
            _k(r['params_stored_nnz']), f'{_k(r["params_dense"])} → {_k(r["params_compact"])}',
            f'{_num(r["macs_dense_M"], ".2f")} → {_num(r["macs_exported_M"], ".2f")}',
            '–' if unpruned else _num(r['structural_share'], '.2f'),
            _short(r['dominated_by_macs']), _short(r['dominated_by_nonzeros'])]) + ' |')
    return '\n'.join(lines)


def _ci(x) -> str:
    return '–' if math.isnan(x['ci95_lo']) else f'[{x["ci95_lo"]:+.1f}, {x["ci95_hi"]:+.1f}]'


def _p(v) -> str:
    return '–' if not _finite(v) else (f'{v:.3f}' if v >= 0.001 else '< 0.001')


def paired_table(paired: List[Dict]) -> str:
    lines = ['| target rate | method | baseline | pairs | Δ top-1 (points), mean | clusters | 95 % CI (clustered t) '
             '| p | Holm p | verdict |', '|' + '---|' * 10]
    for x in paired:
        lines.append(f'| {x["target_rate"]:g} | {x["method"]} | {x["baseline"]} | {x["pairs"]} | '
                     f'{x["diff_mean"]:+.1f} | {x["clusters"]} | {_ci(x)} | {_p(x["p"])} | {_p(x["holm_p"])} | '
                     f'{x["verdict"]} |')
    return '\n'.join(lines)


def _interval_words(items: List[Dict]) -> str:
    """How the intervals of ``items`` were taken, for a caption."""
    if any(x['clusters'] < x['pairs'] for x in items):
        return '95 % t-interval clustered by test fold (seeds averaged within a fold, df = folds − 1)'
    return '95 % paired t-interval (no two pairs share a test fold: df = pairs − 1)'


def _verdict_summary(vs: List[Dict]) -> List[str]:
    """One line per question: how many comparisons went which way."""
    out = []
    for q, (_, _, text) in QUESTIONS.items():
        sub = [x for x in vs if x['question'] == q]
        text = text[0].upper() + text[1:]
        if not sub:
            fam = q.rpartition('_vs_')[2]
            out.append(f'- *{text}* No {fam} row in this dataset: not answered.')
            continue
        counts = OrderedDict()
        for x in sub:
            v = x['verdict'].split(',')[0]
            if not x.get('resolved') or not x['baseline']:
                v = 'unresolved or no match'
            elif v.endswith(' better') and not v.startswith('semi'):
                v = 'matched row better'
            counts[v] = counts.get(v, 0) + 1
        parts = ', '.join(f'{k}: {n}' for k, n in counts.items())
        out.append(f'- *{text}* {parts} (of {len(sub)} comparisons).')
    return out


def _cost(v, unit: str) -> str:
    if not _finite(v):
        return '–'
    return (_num(v, '.2f') if unit == 'MMACs' else _k(v)) + f' {unit}'


def verdict_section(vs: List[Dict], dataset: str) -> str:
    """Markdown verdicts of one dataset: a summary line per question and the table of comparisons."""
    sub = [x for x in vs if x['dataset'] == dataset]
    if not sub:
        return ''
    n = sum(_finite(x['p']) for x in sub)
    lines = [f'### Verdicts, {dataset}', '',
             f'Difference of test top-1 `semi − matched row` (points), paired over the (fold, seed) runs both '
             f'have, {_interval_words(sub)}; p-values against the threshold (0, or −1 for the non-zeros '
             f'question), Holm-adjusted over the {n} verdict comparisons of {dataset}.', '']
    lines += _verdict_summary(sub) + ['']
    lines += ['| question | semi row | its cost | matched row | its cost | pairs (clusters) | Δ top-1, mean '
              '| 95 % CI | p | Holm p | answer |', '|' + '---|' * 11]
    for x in sub:
        unit = QUESTIONS[x['question']][1]
        lines.append(f'| {x["question"]} | {x["method"]} | {_cost(x["cost"], unit)} | {x["baseline"] or "–"} | '
                     f'{_cost(x["baseline_cost"], unit)} | {x["pairs"]} ({x["clusters"]}) | '
                     f'{_num(x["diff_mean"], "+.1f")} | {_ci(x)} | {_p(x["p"])} | {_p(x["holm_p"])} | '
                     f'{x["verdict"]} |')
    return '\n'.join(lines)


NOTES = """Columns. *val top-1*: MMAction2 `AccMetric` on the validation split (carved from the training split,
disjoint from train and test; `–` where a run has no validation number); *test top-1*, *test mean-class*:
on the test split with the config's test pipeline, evaluated once per finished run; mean ± sample std over
all runs of the row, one run per (fold, seed). *target rate / width*: the pruning rate asked, or for a
narrow dense model (`dense_small`: full dense recipe; `dense_small_ft`: the epochs of a pruning run,
distilled from the dense model) its base channels. *pruned: prunable / whole model*: fraction of the
prunable conv weights removed by the final masks (the pruner's rate) / fraction of *all* parameters of
backbone + head removed in the exported model (BatchNorm, biases, `data_bn`, classifier counted:
`1 − stored non-zeros / dense params`). *params stored non-zero*: non-zero parameters of the exported
model (`mmsemiprune.export.exporter.compact_state_dict`: masks baked, dead channels removed); results
without this count show the non-zeros of the dense-shaped masked model (an upper bound).
*params dense → exported*: parameter count of the dense model → of the exported (channel-removed) model,
zeros included. *MMACs per clip*: multiply-accumulates of one test clip of one sample with all its
persons `(1, M, T, V, C)`, backbone + head (convolutions, the adjacency aggregation, classifier), counted
by `mmengine.analysis.FlopAnalyzer` on the dense-shaped model → on the exported model (the test pipeline
averages `num_clips` clips per sample: multiply by it for the cost of one test sample). *structural
share*: fraction of the pruned weights that lie in physically removable groups. *dominated by*: the rows
of other methods at least as accurate (mean test top-1 over the (fold, seed) runs both rows have) with no
more exported MACs / no more stored non-zeros; `none`: on the Pareto front of that plane (at most 4
listed here, all in `leaderboard.csv`). No latency column: CPU latency on a shared machine is measured in
`bench/`.

Paired differences: for semi against each baseline at the same rate (and for the one-shot semi mask
against the random mask), `d = top1_semi − top1_baseline` of the test split per (fold, seed) run both
have (same dense start, same data split and seed). Runs on the same test fold are not independent: the
`d` of one fold are averaged over its seeds, `D_j`, and the interval is the t-interval over the `k` folds,
`D̄ ± t_{0.975, k−1} · s_D / √k` (*clusters* = k). With a single split (no folds) each seed is its own
cluster: the paired interval over the `n` seeds, `d̄ ± t_{0.975, n−1} · s_d / √n` (Student t quantile
computed in `mmsemiprune.leaderboard.stats`). *p*: two-sided paired t-test of the same mean; *Holm p*:
Holm–Bonferroni step-down adjusted over the family of all comparisons of the dataset in the table.
*verdict*: a method is better, resolved after Holm, when its interval excludes 0 and Holm p < 0.05;
otherwise the comparison is unresolved after Holm."""


def write_markdown(rows: List[Dict], path: str, title: str = 'Leaderboard', preamble: str = '',
                   paired: Optional[List[Dict]] = None, plots: Optional[Dict[str, Dict[str, str]]] = None,
                   verdicts: Optional[List[Dict]] = None):
    parts = [f'# {title}', '']
    if preamble:
        parts += [preamble.strip(), '']
    paired = paired if paired is not None else paired_differences(rows)
    verdicts = verdicts if verdicts is not None else matched_verdicts(rows)
    for ds in OrderedDict((r['dataset'], 1) for r in rows):
        sub = [r for r in rows if r['dataset'] == ds]
        bbs = sorted({r['backbone'] for r in sub})
        parts += [f'## {ds} ({", ".join(bbs)})', '', markdown_table(sub), '']
        pd = [p for p in paired if p['dataset'] == ds]
        if pd:
            parts += [f'Paired differences of top-1, {ds} (test split; mean over (fold, seed) pairs, '
                      f'{_interval_words(pd)}; Holm family: the {sum(_finite(p["p"]) for p in pd)} '
                      f'comparisons of {ds} in this table):', '', paired_table(pd), '']
        vs = verdict_section(verdicts, ds)
        if vs:
            parts += [vs, '']
        for kind, p in sorted((plots or {}).get(ds, {}).items()):
            parts += [f'![{ds} {kind}]({osp.basename(p)})', '']
    parts += [NOTES, '']
    with open(path, 'w') as f:
        f.write('\n'.join(parts))


def write_verdicts(verdicts: List[Dict], path: str, title: str = 'Verdicts') -> None:
    """``verdicts.md``: the verdict sections of every dataset."""
    parts = [f'# {title}', '']
    for ds in OrderedDict((x['dataset'], 1) for x in verdicts):
        parts += [verdict_section(verdicts, ds), '']
    if not verdicts:
        parts += ['No semi row with a matched baseline row: no verdict.', '']
    with open(path, 'w') as f:
        f.write('\n'.join(parts))


# -- plots ----------------------------------------------------------------------------------------------
def _methods_in(rows) -> List[str]:
    return sorted({r['method'] for r in rows if r['method'] != 'dense'}, key=_method_sort_key)


def _colors(methods: List[str]) -> Dict[str, tuple]:
    """One distinct colour per method: the 10 of ``tab10``, then the 8 of ``Dark2``, then repeated."""
    import matplotlib
    pal = [matplotlib.colormaps['tab10'](i) for i in range(10)] + [matplotlib.colormaps['Dark2'](i) for i in range(8)]
    return {m: pal[i % len(pal)] for i, m in enumerate(methods)}


def plot(rows: List[Dict], path: str, title: str = 'Accuracy vs pruning rate'):
    """Test top-1 (mean ± std over runs) against the target rate, one panel per dataset (the narrow dense
    models have no rate: they are drawn on the Pareto planes)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    datasets = list(OrderedDict((r['dataset'], 1) for r in rows))
    if not datasets:
        raise ValueError('nothing to plot: no results')
    colors = _colors(_methods_in(rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.4 * len(datasets), 4.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        sub = [r for r in rows if r['dataset'] == ds]
        for d in (r for r in sub if r['method'] == 'dense'):
            ax.axhline(d['top1_mean'], color='k', ls='--', lw=1,
                       label=f'dense {d["top1_mean"]:.1f} % ({d["runs"]} runs)')
            if d['top1_std'] > 0:
                ax.axhspan(d['top1_mean'] - d['top1_std'], d['top1_mean'] + d['top1_std'], color='k', alpha=0.07)
        methods = [m for m in _methods_in(sub) if family_of(m) != 'dense_small']
        for i, m in enumerate(methods):
            pts = sorted((r for r in sub if r['method'] == m), key=lambda r: r['target_rate'])
            x = [r['target_rate'] for r in pts]
            ax.errorbar([v + (i - len(methods) / 2) * 0.003 for v in x], [r['top1_mean'] for r in pts],
                        yerr=[r['top1_std'] for r in pts], marker='o', ms=4, capsize=3, lw=1.5, color=colors[m],
                        label=f'{m} (runs: {"/".join(str(r["runs"]) for r in pts)})')
        ax.set_title(f'{ds}: test top-1 vs target pruning rate (mean ± std over runs)')
        ax.set_xlabel('target pruning rate (fraction of prunable weights removed)')
        ax.set_ylabel('test top-1 accuracy (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='best')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PARETO_AXES = {
    'macs': ('macs_exported_M', 'exported MMACs per clip (log)', 'test top-1 vs exported MACs'),
    'nonzeros': ('params_stored_nnz', 'stored non-zero parameters (log)', 'test top-1 vs stored non-zero parameters'),
}

_PANEL_TITLES = {'dense_small': 'narrow dense models', 'structured': 'structured family',
                 'unstructured': 'unstructured family', 'semi-structured': 'semi-structured baselines',
                 'other': 'other methods'}


def pareto_panels(rows: List[Dict], dataset: str, axis: str = 'macs', max_series: int = 8) -> List[tuple]:
    """The panels of a Pareto plot: ``[(title, [methods])]``, one panel per baseline family present
    (:data:`FAMILIES`, then methods of no family), each holding the family's methods and every semi method
    (``semi`` and its variants), so that semi reads against each family; a family with more than
    ``max_series − 1 − #semi`` methods spreads over several panels. Only semi rows: one panel."""
    key = PARETO_AXES[axis][0]
    methods = _methods_in([r for r in rows if r['dataset'] == dataset and _finite(r[key])])
    semi = [m for m in methods if _is_semi(m)]
    per = max(1, max_series - 1 - len(semi))
    panels = []
    for fam in list(FAMILIES) + ['other']:
        members = [m for m in methods if family_of(m) == fam and not _is_semi(m)]
        chunks = [members[i:i + per] for i in range(0, len(members), per)]
        for j, chunk in enumerate(chunks):
            title = _PANEL_TITLES[fam] + (f' ({j + 1}/{len(chunks)})' if len(chunks) > 1 else '')
            panels.append((title, semi + chunk))
    return panels or ([('semi', semi)] if semi else [])


def _draw_series(ax, pts: List[Dict], key: str, color, label: str, narrow: bool) -> None:
    """One method's points (mean, 95 % CI bar), its Pareto front as a step line, each point labelled with
    its rate (narrow dense models: with ``w<width>``, drawn dashed with square markers)."""
    ax.errorbar([r[key] for r in pts], [r['top1_mean'] for r in pts], yerr=[_half(r) for r in pts], color=color,
                marker='s' if narrow else 'o', ms=5, capsize=3, ls='none', label=label)
    front = pareto_front([(r[key], r['top1_mean']) for r in pts])
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], where='post', color=color, lw=1.6 if narrow else 1.3,
                ls='--' if narrow else '-', alpha=0.8)
    for r in pts:
        ax.annotate(f'w{r["width"]:g}' if narrow and _finite(r['width']) else f'{r["target_rate"]:g}',
                    (r[key], r['top1_mean']), textcoords='offset points', xytext=(4, 4), fontsize=7, color=color)


def plot_pareto(rows: List[Dict], dataset: str, axis: str, path: str, max_series: int = 8,
                colors: Optional[Dict[str, tuple]] = None) -> Optional[str]:
    """Test top-1 (mean, error bar = 95 % t-interval of the mean over runs) against a cost (log x) for one
    dataset, one panel per baseline family (:func:`pareto_panels`; semi in every panel, the dense model a
    black star in every panel): every method × rate a point labelled with its rate, each method's Pareto
    front a step line; the narrow dense models a dashed front over their widths. Returns ``path``, or
    None when no row has that cost."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FuncFormatter

    key, xlabel, what = PARETO_AXES[axis]
    sub = [r for r in rows if r['dataset'] == dataset and _finite(r[key])]
    if not sub:
        return None
    colors = colors or _colors(_methods_in(sub))
    panels = pareto_panels(sub, dataset, axis, max_series) or [('dense', [])]
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.6 * ncol, 5.0 * nrow), squeeze=False, sharey=True)
    fmt = FuncFormatter(lambda v, _: (f'{v / 1e3:g}k' if v >= 1e3 else f'{v:g}'))
    for ax, (ptitle, methods) in zip(axes.flat, panels):
        for d in (r for r in sub if r['method'] == 'dense'):
            ax.errorbar([d[key]], [d['top1_mean']], yerr=[_half(d)], color='k', marker='*', ms=12, capsize=3,
                        ls='none', label=f'dense ({d["runs"]} runs)', zorder=5)
            ax.axhline(d['top1_mean'], color='k', ls=':', lw=0.8)
        for m in methods:
            pts = sorted((r for r in sub if r['method'] == m), key=lambda r: r[key])
            _draw_series(ax, pts, key, colors.get(m, 'grey'), m, family_of(m) == 'dense_small')
        ax.set_xscale('log')
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(fmt)
        ax.tick_params(axis='x', which='minor', labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel('test top-1 (%), mean and 95 % CI over runs')
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=8, loc='lower right')
        ax.set_title(f'semi vs {ptitle}', fontsize=10)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f'{dataset}: {what} (step line: Pareto front of each method)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _half(r) -> float:
    h = r.get('top1_ci95')
    return 0.0 if h is None or math.isnan(h) else h


# -- everything ---------------------------------------------------------------------------------------
def write_all(results: List[Dict], out_dir: str, title: str = 'Leaderboard', preamble: str = '') -> Dict[str, str]:
    """Write every table and plot of ``results`` into ``out_dir``; returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    rows = aggregate(results)
    paired = paired_differences(rows)
    verdicts = matched_verdicts(rows)
    paths = dict(csv=osp.join(out_dir, 'leaderboard.csv'), md=osp.join(out_dir, 'leaderboard.md'),
                 runs=osp.join(out_dir, 'runs.csv'), paired=osp.join(out_dir, 'paired.csv'),
                 verdicts=osp.join(out_dir, 'verdicts.md'), verdicts_csv=osp.join(out_dir, 'verdicts.csv'))
    write_csv(rows, paths['csv'])
    write_runs_csv(results, paths['runs'])
    write_paired_csv(paired, paths['paired'])
    write_verdicts_csv(verdicts, paths['verdicts_csv'])
    write_verdicts(verdicts, paths['verdicts'], title=f'{title}: verdicts at matched cost')
    plots: Dict[str, Dict[str, str]] = {}
    if rows:
        paths['png'] = osp.join(out_dir, 'leaderboard.png')
        plot(rows, paths['png'], title=title)
        colors = _colors(_methods_in(rows))
        for ds in OrderedDict((r['dataset'], 1) for r in rows):
            for axis in PARETO_AXES:
                p = plot_pareto(rows, ds, axis, osp.join(out_dir, f'pareto_{ds}_{axis}.png'), colors=colors)
                if p:
                    plots.setdefault(ds, {})[axis] = p
                    paths[f'pareto_{ds}_{axis}'] = p
    write_markdown(rows, paths['md'], title=title, preamble=preamble, paired=paired, plots=plots,
                   verdicts=verdicts)
    return paths
