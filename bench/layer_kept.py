"""Per-layer kept fractions of finished leaderboard runs, read from their masks.

For every run ``<runs_dir>/<dataset>/<backbone>/<fold>/seed<k>/<label>_r<rate>/config_pruned.pth`` of the given
labels and rate, the kept fraction of each masked tensor (its stored ``*_psi.mask``) is averaged over the runs
found (folds x seeds), one column per label, one row per tensor, in the model's order; the last row is the
fraction of all prunable weights kept. Answers "where does each scoring put its budget":

    python bench/layer_kept.py leaderboard_runs/v3 --dataset sbu --rate 0.9 \\
        --labels semi semi-raw semi_oneshot semi_oneshot-norm unstructured unstructured-raw magnitude magnitude-norm
"""
import argparse
import glob
import os.path as osp
import sys
from collections import OrderedDict

import torch


def kept_fractions(path: str) -> 'OrderedDict[str, tuple]':
    """``{tensor: (kept, numel)}`` of one run's ``config_pruned.pth``."""
    sd = torch.load(path, map_location='cpu', weights_only=False)
    sd = sd.get('state_dict', sd)
    out = OrderedDict()
    for k, v in sd.items():
        if k.endswith('_psi.mask'):
            name = k[:-len('_psi.mask')].replace('backbone.', '')
            out[name] = (int(v.bool().sum()), v.numel())
    if not out:
        raise ValueError(f'{path}: no stored masks (*_psi.mask): not a pruned run')
    return out


def table(runs_dir, dataset, rate, labels, backbone='stgcn'):
    cols, rows, found = {}, OrderedDict(), {}
    for label in labels:
        files = sorted(glob.glob(osp.join(runs_dir, dataset, backbone, '*', 'seed*', f'{label}_r{rate:g}',
                                          'config_pruned.pth')))
        found[label] = len(files)
        per = [kept_fractions(f) for f in files]
        for p in per:
            for name in p:
                rows.setdefault(name, None)
        cols[label] = per
    lines = ['| tensor | numel | ' + ' | '.join(f'{lb} ({found[lb]})' for lb in labels) + ' |',
             '|---|---|' + '---|' * len(labels)]
    for name in list(rows) + ['all prunable']:
        cells, numel = [], None
        for label in labels:
            fr = []
            for p in cols[label]:
                if name == 'all prunable':
                    k, n = sum(a for a, _ in p.values()), sum(b for _, b in p.values())
                elif name in p:
                    k, n = p[name]
                else:
                    continue
                fr.append(k / n)
                numel = n
            cells.append(f'{100 * sum(fr) / len(fr):.1f}' if fr else '–')
        lines.append(f'| {name} | {numel} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines), found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('runs_dir')
    p.add_argument('--dataset', required=True)
    p.add_argument('--backbone', default='stgcn')
    p.add_argument('--rate', type=float, required=True)
    p.add_argument('--labels', nargs='+', required=True, help='run labels, e.g. semi semi_oneshot-norm')
    a = p.parse_args(argv)
    if not osp.isdir(a.runs_dir):
        sys.exit(f'error: runs dir {a.runs_dir!r} not found; give the runs_dir of a sweep (e.g. leaderboard_runs/v3)')
    text, found = table(a.runs_dir, a.dataset, a.rate, a.labels, a.backbone)
    missing = [lb for lb, n in found.items() if n == 0]
    if len(missing) == len(found):
        sys.exit(f'error: no finished runs of {a.labels} at rate {a.rate:g} under {a.runs_dir}/{a.dataset}')
    print(f'Kept % of each masked tensor, mean over runs (runs in brackets), {a.dataset} rate {a.rate:g}:\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
