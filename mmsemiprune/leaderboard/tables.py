"""Aggregate run results over folds and write ``leaderboard.csv``, ``leaderboard.md``, ``runs.csv`` and
the accuracy-vs-rate plot ``leaderboard.png``."""
import csv
import math
import os
import os.path as osp
import statistics
from collections import OrderedDict
from typing import Dict, List

from .spec import METHOD_ORDER

__all__ = ['aggregate', 'write_csv', 'write_markdown', 'write_runs_csv', 'plot', 'write_all', 'mean_std']

COLUMNS = ['dataset', 'backbone', 'method', 'target_rate', 'folds', 'rate_params', 'rate_flops',
           'top1_mean', 'top1_std', 'mean_class_mean', 'mean_class_std', 'params_dense', 'params_nonzero',
           'params_compact', 'flops_dense_M', 'flops_kept_M', 'flops_compact_M', 'latency_ms',
           'latency_ms_dense_shape', 'speedup', 'structural_share', 'epochs']


def mean_std(xs: List[float]):
    """Mean and sample standard deviation (0 for a single value); NaN for no values."""
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return float('nan'), float('nan')
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _mean(rows, key, scale=1.0):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(v) * scale if v else float('nan')


def aggregate(results: List[Dict]) -> List[Dict]:
    """One row per (dataset, backbone, method, target rate), mean ± std over folds (accuracies in %)."""
    groups: Dict[tuple, List[Dict]] = OrderedDict()
    for r in results:
        rate = 0.0 if r.get('method') == 'dense' else float(r.get('rate') if r.get('rate') is not None
                                                                 else r.get('target_rate', 0.0))
        groups.setdefault((r['dataset'], r.get('backbone', ''), r['method'], rate), []).append(r)
    rows = []
    for (ds, bb, m, rate), rs in groups.items():
        t1m, t1s = mean_std([100 * r['top1'] for r in rs])
        mcm, mcs = mean_std([100 * r['mean_class'] for r in rs])
        rows.append(dict(dataset=ds, backbone=bb, method=m, target_rate=rate, folds=len(rs),
                         fold_ids=sorted(str(r.get('fold')) for r in rs),
                         rate_params=_mean(rs, 'rate_params'), rate_flops=_mean(rs, 'rate_flops'),
                         top1_mean=t1m, top1_std=t1s, mean_class_mean=mcm, mean_class_std=mcs,
                         params_dense=_mean(rs, 'params_dense'), params_nonzero=_mean(rs, 'params_nonzero'),
                         params_compact=_mean(rs, 'params_compact'),
                         flops_dense_M=_mean(rs, 'flops_dense', 1e-6), flops_kept_M=_mean(rs, 'flops_kept', 1e-6),
                         flops_compact_M=_mean(rs, 'flops_compact', 1e-6), latency_ms=_mean(rs, 'latency_ms'),
                         latency_ms_dense_shape=_mean(rs, 'latency_ms_dense_shape'),
                         speedup=_mean([dict(s=r['latency_ms_dense_shape'] / r['latency_ms']) for r in rs
                                        if r.get('latency_ms') and r.get('latency_ms_dense_shape')], 's'),
                         structural_share=_mean(rs, 'structural_share'),
                         epochs=_mean(rs, 'max_epochs')))
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    first = {}
    for r in results:  # datasets in the order they first appear (the sweep's order)
        first.setdefault(r['dataset'], len(first))
    rows.sort(key=lambda r: (first[r['dataset']], r['backbone'], r['target_rate'] > 0, r['target_rate'],
                             order.get(r['method'], 99), r['method']))
    return rows


def _csv_val(v):
    if isinstance(v, float):
        return '' if math.isnan(v) else f'{v:.6g}'
    return v


def write_csv(rows: List[Dict], path: str):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_val(r.get(k)) for k in COLUMNS})


RUN_COLUMNS = ['dataset', 'backbone', 'method', 'rate', 'fold', 'top1', 'top5', 'mean_class', 'rate_params',
               'rate_flops', 'structural_share', 'params_dense', 'params_nonzero', 'params_compact', 'flops_dense',
               'flops_kept', 'flops_compact', 'latency_ms', 'latency_ms_dense_shape', 'shrink_max_abs_diff',
               'max_epochs', 'train_s', 'eval_s', 'finished_at', 'report_code']


def write_runs_csv(results: List[Dict], path: str):
    """Every run (fold) separately."""
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=RUN_COLUMNS, extrasaction='ignore')
        w.writeheader()
        for r in sorted(results, key=lambda r: (r['dataset'], str(r.get('fold')), r['method'], r.get('rate') or 0)):
            w.writerow({k: _csv_val(r.get(k)) for k in RUN_COLUMNS})


def _pm(m, s, nd=1):
    if math.isnan(m):
        return '–'
    return f'{m:.{nd}f} ± {s:.{nd}f}'


def _num(v, fmt):
    return '–' if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _k(v):
    return '–' if v is None or math.isnan(v) else f'{v / 1e3:.1f}k'


def markdown_table(rows: List[Dict]) -> str:
    head = ('| dataset | method | target rate | achieved rate (params / FLOPs) | top-1 % | mean-class % | folds '
            '| params dense → kept → compact | MMACs dense → kept → compact | latency ms compact / dense-shape (speed-up) '
            '| structural share |')
    lines = [head, '|' + '---|' * 11]
    for r in rows:
        dense = r['method'] == 'dense'
        lines.append('| ' + ' | '.join([
            r['dataset'], r['method'], '–' if dense else f'{r["target_rate"]:g}',
            '–' if dense else f'{_num(r["rate_params"], ".3f")} / {_num(r["rate_flops"], ".3f")}',
            _pm(r['top1_mean'], r['top1_std']), _pm(r['mean_class_mean'], r['mean_class_std']), str(r['folds']),
            f'{_k(r["params_dense"])} → {_k(r["params_nonzero"])} → {_k(r["params_compact"])}',
            f'{_num(r["flops_dense_M"], ".2f")} → {_num(r["flops_kept_M"], ".2f")} → {_num(r["flops_compact_M"], ".2f")}',
            f'{_num(r["latency_ms"], ".2f")} / {_num(r["latency_ms_dense_shape"], ".2f")} '
            f'({_num(r["speedup"], ".2f")}×)',
            '–' if dense else _num(r['structural_share'], '.2f')]) + ' |')
    return '\n'.join(lines)


NOTES = """Columns: *achieved rate* = fraction of the prunable conv weights (params) / of their MACs removed by
the final hard masks. *top-1*, *mean-class*: MMAction2 `AccMetric` on the test split with the config's
test pipeline, mean ± sample std over folds (std 0 with one fold). *params*: backbone + head parameters
of the dense-shaped model → non-zero after the masks → after physically removing dead channels
(`mmsemiprune.core.export.shrink`). *MMACs*: multiply-accumulates per sample of the prunable convs
(the pruner's profile): dense → kept entries → after channel removal (what a dense CPU kernel still
computes). *latency*: median of 20 single-thread batch-1 forwards (one clip, backbone + head) of the
compacted model / of the dense-shaped baked model, measured back to back in the same process on a shared
2-core machine: absolute numbers drift with the load of other jobs (compare rows by the speed-up, the
per-run ratio dense-shape / compact, averaged over folds).
*structural share*: fraction of the pruned weights that lie in physically removable groups."""


def write_markdown(rows: List[Dict], path: str, title: str = 'Leaderboard', preamble: str = ''):
    parts = [f'# {title}', '']
    if preamble:
        parts += [preamble.strip(), '']
    for ds in OrderedDict((r['dataset'], 1) for r in rows):
        sub = [r for r in rows if r['dataset'] == ds]
        bbs = sorted({r['backbone'] for r in sub})
        parts += [f'## {ds} ({", ".join(bbs)})', '', markdown_table(sub), '']
    parts += [NOTES, '']
    with open(path, 'w') as f:
        f.write('\n'.join(parts))


def plot(rows: List[Dict], path: str, title: str = 'Accuracy vs pruning rate'):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    datasets = list(OrderedDict((r['dataset'], 1) for r in rows))
    if not datasets:
        raise ValueError('nothing to plot: no results')
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.4 * len(datasets), 4.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        sub = [r for r in rows if r['dataset'] == ds]
        dense = [r for r in sub if r['method'] == 'dense']
        for d in dense:
            ax.axhline(d['top1_mean'], color='k', ls='--', lw=1,
                       label=f'dense {d["top1_mean"]:.1f} % ({d["folds"]} fold{"s" if d["folds"] > 1 else ""})')
            if d['top1_std'] > 0:
                ax.axhspan(d['top1_mean'] - d['top1_std'], d['top1_mean'] + d['top1_std'], color='k', alpha=0.07)
        methods = [m for m in METHOD_ORDER if m != 'dense' and any(r['method'] == m for r in sub)]
        methods += sorted({r['method'] for r in sub} - set(methods) - {'dense'})
        for i, m in enumerate(methods):
            pts = sorted((r for r in sub if r['method'] == m), key=lambda r: r['target_rate'])
            x = [r['target_rate'] for r in pts]
            ax.errorbar([v + (i - len(methods) / 2) * 0.003 for v in x], [r['top1_mean'] for r in pts],
                        yerr=[r['top1_std'] for r in pts], marker='o', ms=4, capsize=3, lw=1.5,
                        label=f'{m} (folds: {"/".join(str(r["folds"]) for r in pts)})')
        nf = max((r['folds'] for r in sub), default=1)
        ax.set_title(f'{ds}: top-1 vs target pruning rate' + (f' (mean ± std, ≤{nf} folds)' if nf > 1 else ''))
        ax.set_xlabel('target pruning rate (fraction of prunable weights removed)')
        ax.set_ylabel('top-1 accuracy (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='best')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: List[Dict], out_dir: str, title: str = 'Leaderboard', preamble: str = '') -> Dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    rows = aggregate(results)
    paths = dict(csv=osp.join(out_dir, 'leaderboard.csv'), md=osp.join(out_dir, 'leaderboard.md'),
                 png=osp.join(out_dir, 'leaderboard.png'), runs=osp.join(out_dir, 'runs.csv'))
    write_csv(rows, paths['csv'])
    write_runs_csv(results, paths['runs'])
    write_markdown(rows, paths['md'], title=title, preamble=preamble)
    if rows:
        plot(rows, paths['png'], title=title)
    return paths
