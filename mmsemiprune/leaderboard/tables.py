"""Aggregate run results over folds × seeds and write the leaderboard:

- ``leaderboard.csv`` / ``leaderboard.md``: one row per (dataset, backbone, method, target rate), mean ±
  sample std over all (fold, seed) runs, with the prunable and whole-model pruning rates, stored
  non-zero parameters, exported MACs per clip and the domination columns;
- ``paired.csv`` (and a table per dataset in the Markdown): semi against every baseline at the same
  rate, the mean of the per-(fold, seed) differences of top-1 with a 95 % t-interval;
- ``runs.csv``: every run separately;
- ``leaderboard.png`` (top-1 vs target rate) and, per dataset, ``pareto_<dataset>_macs.png`` (top-1 vs
  exported MACs) and ``pareto_<dataset>_nonzeros.png`` (top-1 vs stored non-zero parameters).
"""
import csv
import math
import os
import os.path as osp
import statistics
from collections import OrderedDict
from typing import Dict, List, Optional

from .spec import METHOD_ORDER
from .stats import dominators, mean_ci, mean_std, optional_float, paired_ci, pareto_front

__all__ = ['aggregate', 'paired_differences', 'write_csv', 'write_markdown', 'write_runs_csv', 'write_paired_csv',
           'plot', 'plot_pareto', 'write_all', 'mean_std', 'read_runs_csv', 'row_label']

COLUMNS = ['dataset', 'backbone', 'method', 'target_rate', 'runs', 'folds', 'seeds', 'rate_params', 'rate_whole',
           'rate_flops', 'top1_mean', 'top1_std', 'top1_ci95', 'mean_class_mean', 'mean_class_std', 'params_dense',
           'params_nonzero', 'params_compact', 'params_stored_nnz', 'macs_dense_M', 'macs_exported_M',
           'flops_dense_M', 'flops_kept_M', 'flops_compact_M', 'structural_share', 'epochs', 'train_s_mean',
           'dominated_by_macs', 'dominated_by_nonzeros', 'report_code']

PAIRED_COLUMNS = ['dataset', 'backbone', 'target_rate', 'method', 'baseline', 'pairs', 'diff_mean', 'diff_sd',
                  'ci95_lo', 'ci95_hi', 'verdict']

RUN_COLUMNS = ['dataset', 'backbone', 'method', 'rate', 'fold', 'seed', 'top1', 'top5', 'mean_class', 'rate_params',
               'rate_whole', 'rate_flops', 'structural_share', 'params_dense', 'params_nonzero', 'params_compact',
               'params_compact_nonzero', 'macs_dense', 'macs_exported', 'flops_dense', 'flops_kept', 'flops_compact',
               'export_max_abs_diff', 'max_epochs', 'train_s', 'train_segments', 'eval_s', 'device', 'finished_at',
               'report_code']

_NUMERIC_RUN = {c for c in RUN_COLUMNS if c not in ('dataset', 'backbone', 'method', 'fold', 'device', 'finished_at',
                                                   'report_code')}


# -- per-run fields -------------------------------------------------------------------------------------
def _pair(r) -> tuple:
    """The (fold, seed) a run belongs to: the pairing key of paired comparisons."""
    f = r.get('fold')
    return ('' if f is None or f == '' else str(f), int(optional_float(r.get('seed')) or 0))


def _stored_nnz(r) -> Optional[float]:
    """Non-zero parameters stored by the exported model; for results written before it was counted, the
    non-zeros of the dense-shaped masked model (an upper bound)."""
    v = optional_float(r.get('params_compact_nonzero'))
    return v if v is not None else optional_float(r.get('params_nonzero'))


def _rate_whole(r) -> Optional[float]:
    v = optional_float(r.get('rate_whole'))
    if v is not None:
        return v
    nnz, tot = _stored_nnz(r), optional_float(r.get('params_dense'))
    return None if nnz is None or not tot else 1.0 - nnz / tot


def _rate(r) -> float:
    if r.get('method') == 'dense':
        return 0.0
    v = optional_float(r.get('rate'))
    return v if v is not None else float(optional_float(r.get('target_rate')) or 0.0)


def _mean(vals, scale=1.0) -> float:
    v = [x for x in (optional_float(x) for x in vals) if x is not None]
    return statistics.fmean(v) * scale if v else float('nan')


def row_label(row) -> str:
    """``'dense'`` or ``'<method> <rate>'``, e.g. ``'semi 0.9'``."""
    return 'dense' if row['method'] == 'dense' else f'{row["method"]} {row["target_rate"]:g}'


def _method_sort_key(m: str):
    base, _, variant = m.partition('-')
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else 99, variant, m)


# -- aggregation ----------------------------------------------------------------------------------------
def aggregate(results: List[Dict]) -> List[Dict]:
    """One row per (dataset, backbone, method, target rate): mean ± std over its (fold, seed) runs
    (accuracies in %), the domination columns, and ``_acc`` = {(fold, seed): top-1 %} for pairing."""
    groups: Dict[tuple, List[Dict]] = OrderedDict()
    for r in results:
        groups.setdefault((r['dataset'], r.get('backbone', '') or '', r['method'], _rate(r)), []).append(r)
    rows = []
    for (ds, bb, m, rate), rs in groups.items():
        top1 = [100 * float(r['top1']) for r in rs]
        t1m, t1s = mean_std(top1)
        mcm, mcs = mean_std([100 * float(r['mean_class']) for r in rs
                             if optional_float(r.get('mean_class')) is not None])
        codes = sorted({str(r.get('report_code')) for r in rs if r.get('report_code')})
        rows.append(dict(
            dataset=ds, backbone=bb, method=m, target_rate=rate, runs=len(rs),
            folds=len({_pair(r)[0] for r in rs}), seeds=len({_pair(r)[1] for r in rs}),
            rate_params=_mean(r.get('rate_params') for r in rs), rate_whole=_mean(_rate_whole(r) for r in rs),
            rate_flops=_mean(r.get('rate_flops') for r in rs),
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
            _acc={_pair(r): 100 * float(r['top1']) for r in rs}))
    first = {}
    for r in results:  # datasets in the order they first appear (the sweep's order)
        first.setdefault(r['dataset'], len(first))
    rows.sort(key=lambda r: (first[r['dataset']], r['backbone'], r['target_rate'] > 0, r['target_rate'],
                             _method_sort_key(r['method'])))
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


def paired_differences(rows: List[Dict], level: float = 0.95) -> List[Dict]:
    """For every semi row (``semi`` and its variants) and every other pruning method at the same dataset,
    backbone and rate: mean over the common (fold, seed) runs of ``top1_semi − top1_baseline`` (points)
    with its t-interval (:func:`~.stats.paired_ci`)."""
    out = []
    for r in rows:
        if r['method'].partition('-')[0] != 'semi':
            continue
        for b in rows:
            if (b['dataset'], b['backbone'], b['target_rate']) != (r['dataset'], r['backbone'], r['target_rate']) \
                    or b['method'] == 'dense' or b['method'].partition('-')[0] == 'semi':
                continue
            common = sorted(set(r['_acc']) & set(b['_acc']))
            if not common:
                continue
            ci = paired_ci([r['_acc'][k] for k in common], [b['_acc'][k] for k in common], level)
            if ci['n'] < 2:
                verdict = 'one pair: no interval'
            elif ci['lo'] > 0:
                verdict = f'{r["method"]} better'
            elif ci['hi'] < 0:
                verdict = f'{b["method"]} better'
            else:
                verdict = 'no detectable difference'
            out.append(dict(dataset=r['dataset'], backbone=r['backbone'], target_rate=r['target_rate'],
                            method=r['method'], baseline=b['method'], pairs=ci['n'], diff_mean=ci['mean'],
                            diff_sd=ci['sd'], ci95_lo=ci['lo'], ci95_hi=ci['hi'], verdict=verdict))
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


def write_runs_csv(results: List[Dict], path: str):
    """Every run separately."""
    rs = sorted(results, key=lambda r: (r['dataset'], str(r.get('fold')), _pair(r)[1], r['method'], _rate(r)))
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
            r['seed'] = int(optional_float(row.get('seed')) or 0)
            if r.get('rate') is None:
                r.pop('rate', None)
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


def markdown_table(rows: List[Dict]) -> str:
    head = ('| method | target rate | runs (folds × seeds) | top-1 % | mean-class % | pruned: prunable / whole model '
            '| params stored non-zero | params dense → exported | MMACs per clip dense → exported '
            '| structural share '
            '| dominated by (MACs) | dominated by (non-zeros) |')
    lines = [head, '|' + '---|' * 12]
    for r in rows:
        dense = r['method'] == 'dense'
        lines.append('| ' + ' | '.join([
            r['method'], '–' if dense else f'{r["target_rate"]:g}', f'{r["runs"]} ({r["folds"]} × {r["seeds"]})',
            _pm(r['top1_mean'], r['top1_std']), _pm(r['mean_class_mean'], r['mean_class_std']),
            '–' if dense else f'{_num(r["rate_params"], ".3f")} / {_num(r["rate_whole"], ".3f")}',
            _k(r['params_stored_nnz']), f'{_k(r["params_dense"])} → {_k(r["params_compact"])}',
            f'{_num(r["macs_dense_M"], ".2f")} → {_num(r["macs_exported_M"], ".2f")}',
            '–' if dense else _num(r['structural_share'], '.2f'),
            _short(r['dominated_by_macs']), _short(r['dominated_by_nonzeros'])]) + ' |')
    return '\n'.join(lines)


def paired_table(paired: List[Dict]) -> str:
    lines = ['| target rate | semi | baseline | pairs | Δ top-1 (points), mean | 95 % CI (t) | verdict |',
             '|' + '---|' * 7]
    for p in paired:
        ci = '–' if math.isnan(p['ci95_lo']) else f'[{p["ci95_lo"]:+.1f}, {p["ci95_hi"]:+.1f}]'
        lines.append(f'| {p["target_rate"]:g} | {p["method"]} | {p["baseline"]} | {p["pairs"]} | '
                     f'{p["diff_mean"]:+.1f} | {ci} | {p["verdict"]} |')
    return '\n'.join(lines)


NOTES = """Columns. *top-1*, *mean-class*: MMAction2 `AccMetric` on the test split with the config's test
pipeline; mean ± sample std over all runs of the row, one run per (fold, seed). *pruned: prunable /
whole model*: fraction of the prunable conv weights removed by the final masks (the pruner's rate) /
fraction of *all* parameters of backbone + head removed in the exported model (BatchNorm, biases,
`data_bn`, classifier counted: `1 − stored non-zeros / dense params`). *params stored non-zero*:
non-zero parameters of the exported model (`mmsemiprune.export.exporter.compact_state_dict`: masks baked,
dead channels removed); results evaluated before this count existed show the non-zeros of the
dense-shaped masked model (an upper bound). *params dense → exported*: parameter count of the dense
model → of the exported (channel-removed) model, zeros included. *MMACs per clip*: multiply-accumulates
of one test clip of one sample with all its persons `(1, M, T, V, C)`, backbone + head (convolutions,
the adjacency aggregation, classifier), counted by `mmengine.analysis.FlopAnalyzer` on the dense-shaped
model → on the exported model (the test pipeline averages `num_clips` clips per sample: multiply by it for
the cost of one test sample). *structural share*: fraction of the pruned weights that lie in physically
removable groups. *dominated by*: the rows of other methods at least as accurate (mean top-1 over the
(fold, seed) runs both rows have) with no more exported MACs / no more stored non-zeros; `none`: on the
Pareto front of that plane (at most 4 listed here, all in `leaderboard.csv`). No latency column: CPU
latency on a shared machine is measured in `bench/`.

Paired differences: for semi against each baseline at the same rate, `d = top1_semi − top1_baseline` per
(fold, seed) run both have (same dense start, same data split and seed), mean `d̄` and the 95 %
t-interval `d̄ ± t_{0.975, n−1} · s_d / √n` (Student t quantile computed in
`mmsemiprune.leaderboard.stats`). *verdict*: a method is better when the interval excludes 0."""


def write_markdown(rows: List[Dict], path: str, title: str = 'Leaderboard', preamble: str = '',
                   paired: Optional[List[Dict]] = None, plots: Optional[Dict[str, Dict[str, str]]] = None):
    parts = [f'# {title}', '']
    if preamble:
        parts += [preamble.strip(), '']
    paired = paired if paired is not None else paired_differences(rows)
    for ds in OrderedDict((r['dataset'], 1) for r in rows):
        sub = [r for r in rows if r['dataset'] == ds]
        bbs = sorted({r['backbone'] for r in sub})
        parts += [f'## {ds} ({", ".join(bbs)})', '', markdown_table(sub), '']
        pd = [p for p in paired if p['dataset'] == ds]
        if pd:
            parts += [f'Paired differences of top-1, {ds} (mean over (fold, seed) pairs, 95 % t-interval):', '',
                      paired_table(pd), '']
        for kind, p in sorted((plots or {}).get(ds, {}).items()):
            parts += [f'![{ds} {kind}]({osp.basename(p)})', '']
    parts += [NOTES, '']
    with open(path, 'w') as f:
        f.write('\n'.join(parts))


# -- plots ----------------------------------------------------------------------------------------------
def _methods_in(rows) -> List[str]:
    return sorted({r['method'] for r in rows if r['method'] != 'dense'}, key=_method_sort_key)


def _colors(methods: List[str]) -> Dict[str, tuple]:
    import matplotlib
    cmap = matplotlib.colormaps['tab10']
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot(rows: List[Dict], path: str, title: str = 'Accuracy vs pruning rate'):
    """Top-1 (mean ± std over runs) against the target rate, one panel per dataset."""
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
        methods = _methods_in(sub)
        for i, m in enumerate(methods):
            pts = sorted((r for r in sub if r['method'] == m), key=lambda r: r['target_rate'])
            x = [r['target_rate'] for r in pts]
            ax.errorbar([v + (i - len(methods) / 2) * 0.003 for v in x], [r['top1_mean'] for r in pts],
                        yerr=[r['top1_std'] for r in pts], marker='o', ms=4, capsize=3, lw=1.5, color=colors[m],
                        label=f'{m} (runs: {"/".join(str(r["runs"]) for r in pts)})')
        ax.set_title(f'{ds}: top-1 vs target pruning rate (mean ± std over runs)')
        ax.set_xlabel('target pruning rate (fraction of prunable weights removed)')
        ax.set_ylabel('top-1 accuracy (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='best')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PARETO_AXES = {
    'macs': ('macs_exported_M', 'exported MMACs per clip (log)', 'top-1 vs exported MACs'),
    'nonzeros': ('params_stored_nnz', 'stored non-zero parameters (log)', 'top-1 vs stored non-zero parameters'),
}


def plot_pareto(rows: List[Dict], dataset: str, axis: str, path: str, max_series: int = 8,
                colors: Optional[Dict[str, tuple]] = None) -> Optional[str]:
    """Top-1 (mean, error bar = 95 % t-interval of the mean over runs) against a cost (log x) for one
    dataset: every method × rate a point labelled with its rate, the dense model a black star, each
    method's Pareto front a step line. At most ``max_series`` series (dense included) per panel: more
    methods go to further panels. Returns ``path``, or None when no row has that cost."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FuncFormatter

    key, xlabel, what = PARETO_AXES[axis]
    sub = [r for r in rows if r['dataset'] == dataset and not math.isnan(r[key])]
    if not sub:
        return None
    methods = _methods_in(sub)
    colors = colors or _colors(methods)
    per = max(1, max_series - 1)
    chunks = [methods[i:i + per] for i in range(0, len(methods), per)] or [[]]
    fig, axes = plt.subplots(1, len(chunks), figsize=(7.0 * len(chunks), 5.0), squeeze=False, sharey=True)
    dense = [r for r in sub if r['method'] == 'dense']
    for ax, chunk in zip(axes[0], chunks):
        for d in dense:
            ax.errorbar([d[key]], [d['top1_mean']], yerr=[_half(d)], color='k', marker='*', ms=12, capsize=3,
                        ls='none', label=f'dense ({d["runs"]} runs)', zorder=5)
            ax.axhline(d['top1_mean'], color='k', ls=':', lw=0.8)
        for m in chunk:
            pts = sorted((r for r in sub if r['method'] == m), key=lambda r: r[key])
            c = colors.get(m, 'grey')
            ax.errorbar([r[key] for r in pts], [r['top1_mean'] for r in pts], yerr=[_half(r) for r in pts],
                        color=c, marker='o', ms=5, capsize=3, ls='none', label=m)
            front = pareto_front([(r[key], r['top1_mean']) for r in pts])
            if front:
                ax.step([p[0] for p in front], [p[1] for p in front], where='post', color=c, lw=1.3, alpha=0.8)
            for r in pts:
                ax.annotate(f'{r["target_rate"]:g}', (r[key], r['top1_mean']), textcoords='offset points',
                            xytext=(4, 4), fontsize=7, color=c)
        ax.set_xscale('log')
        fmt = FuncFormatter(lambda v, _: (f'{v / 1e3:g}k' if v >= 1e3 else f'{v:g}'))
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(fmt)
        ax.tick_params(axis='x', which='minor', labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel('top-1 accuracy (%), mean and 95 % CI over runs')
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=8, loc='lower right')
        ax.set_title(f'{dataset}: {what}' + (' (step line: Pareto front of each method)' if len(chunks) == 1 else ''))
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
    paths = dict(csv=osp.join(out_dir, 'leaderboard.csv'), md=osp.join(out_dir, 'leaderboard.md'),
                 runs=osp.join(out_dir, 'runs.csv'), paired=osp.join(out_dir, 'paired.csv'))
    write_csv(rows, paths['csv'])
    write_runs_csv(results, paths['runs'])
    write_paired_csv(paired, paths['paired'])
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
    write_markdown(rows, paths['md'], title=title, preamble=preamble, paired=paired, plots=plots)
    return paths
