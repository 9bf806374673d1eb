"""MACs and memory traffic of trained leaderboard runs as exported: which method's models a GPU would run faster.

    python bench/traffic_of_runs.py leaderboard_runs/v2 --datasets sbu --rates 0.9 0.95

For every finished run under ROOT (``<dataset>/<backbone>/<fold>/<seed>/<method>_r<rate>/``, as the leaderboard
writes them: ``result.json``, the run's ``config.py`` dump and ``config_pruned.pth``), the masked model is loaded
and counted as exported (:func:`mmsemiprune.leaderboard.evaluate.model_counts`, what the leaderboard records; the
current exporter folds the classifier's constant input channels into its bias; runs recorded by an earlier one
count without that, shown in the last column and used for the check against ``result.json``):
MACs dense / exported (mmengine's FlopAnalyzer) and memory traffic dense / exported (bytes written by all
operators of one forward, :func:`mmsemiprune.export.exporter.count_traffic`, the exported graph convolution for
both), on one clip of the run's input shape. Prints one row per (dataset, backbone, method, rate): runs, top-1 (from
``result.json``), the two ratios (means over runs) and the exported MMACs. On a GPU at large batches exported
ST-GCNs ran as much faster as their traffic ratio (docs/speed.md), on a compute-bound CPU closer to
their MACs ratio. No timing here: counts only, so it runs anywhere (the checkpoints stay where they are; the
leaderboard's data is not read).
"""
import argparse
import glob
import json
import os.path as osp
import statistics
import sys
import warnings
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('root', help='a leaderboard run folder (e.g. leaderboard_runs/v2)')
    p.add_argument('--datasets', nargs='+', default=None)
    p.add_argument('--methods', nargs='+', default=None, help='method names as in the run folders (semi, '
                   'structured, unstructured, magnitude, l1_channel, semi_oneshot, semi-sec, ...)')
    p.add_argument('--rates', nargs='+', type=float, default=None)
    p.add_argument('--seeds', nargs='+', type=int, default=None)
    p.add_argument('--json', help='also write every run\'s counts here')
    return p.parse_args(argv)


def find_runs(root, datasets=None, methods=None, rates=None, seeds=None):
    """[(dataset, backbone, method, rate, fold, seed, run_dir)] of finished pruned runs, sorted."""
    out = []
    for res in glob.glob(osp.join(root, '*', '*', '*', 'seed*', '*_r*', 'result.json')):
        run = osp.dirname(res)
        parts = run.split(osp.sep)
        dataset, backbone, fold, seed, name = parts[-5:]
        method, _, rate = name.rpartition('_r')
        try:
            rate, seed_i = float(rate), int(seed[4:])
        except ValueError:
            continue
        if ((datasets and dataset not in datasets) or (methods and method not in methods)
                or (rates and not any(abs(rate - r) < 1e-9 for r in rates)) or (seeds and seed_i not in seeds)):
            continue
        if not (osp.isfile(osp.join(run, 'config.py')) and osp.isfile(osp.join(run, 'config_pruned.pth'))):
            continue
        out.append((dataset, backbone, method, rate, fold, seed_i, run))
    return sorted(out)


def count_run(run):
    """model_counts of the run's masked model on a synthetic clip of its recorded input shape, plus top-1."""
    import torch
    from mmengine.config import Config

    from mmsemiprune.export.exporter import load_pruned_model, synthetic_skeletons
    from mmsemiprune.leaderboard.evaluate import model_counts
    res = json.load(open(osp.join(run, 'result.json')))
    cfg = Config.fromfile(osp.join(run, 'config.py'))
    model = load_pruned_model(cfg, osp.join(run, 'config_pruned.pth'), trust=True, cfg_name=run)
    shape = [int(s) for s in res['macs_input_shape'].split('x')]  # (1, M, T, V, C)
    x1 = synthetic_skeletons(shape, seed=0)
    with torch.no_grad():
        c = model_counts(cfg, model, x1)  # the current exporter (classifier constants folded)
        c['macs_exported_unfolded'] = model_counts(cfg, model, x1, fold_head=False)['macs_exported']
    c['top1'] = res['top1']
    c['macs_exported_recorded'] = res.get('macs_exported')
    return c


def main(argv=None):
    args = parse_args(argv)
    import torch
    torch.set_num_threads(1)
    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()
    mmsemiprune.register_all()
    runs = find_runs(args.root, args.datasets, args.methods, args.rates, args.seeds)
    if not runs:
        raise SystemExit(f'traffic_of_runs: no finished pruned run under {args.root!r} matches (expected '
                         '<dataset>/<backbone>/<fold>/seed<k>/<method>_r<rate>/ with result.json, config.py and '
                         'config_pruned.pth, as the leaderboard writes them)')
    rows, every = defaultdict(list), []
    for i, (dataset, backbone, method, rate, fold, seed, run) in enumerate(runs):
        c = count_run(run)
        rec = c['macs_exported_recorded']
        if rec is not None and min(abs(c['macs_exported'] - rec), abs(c['macs_exported_unfolded'] - rec)) > 0.5:
            raise SystemExit(f'traffic_of_runs: {run}: exported MACs {c["macs_exported"]:.0f} (without the classifier '
                             f'fold {c["macs_exported_unfolded"]:.0f}) differ from the {rec:.0f} the leaderboard '
                             'recorded: not the same model')
        rows[(dataset, backbone, method, rate)].append(c)
        every.append(dict(c, dataset=dataset, backbone=backbone, method=method, rate=rate, fold=fold, seed=seed))
        print(f'[{i + 1}/{len(runs)}] {osp.relpath(run, args.root)}: MACs '
              f'x{c["macs_dense"] / c["macs_exported"]:.2f} traffic x{c["traffic_dense"] / c["traffic_exported"]:.2f}',
              file=sys.stderr)
    print('| dataset | backbone | method | rate | runs | top-1 % | MACs × (dense / exported) | traffic × '
          '| exported MMACs | without the classifier fold |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for (dataset, backbone, method, rate), cs in rows.items():
        m = statistics.mean
        print(f'| {dataset} | {backbone} | {method} | {rate:g} | {len(cs)} | {100 * m(c["top1"] for c in cs):.2f} | '
              f'{m(c["macs_dense"] / c["macs_exported"] for c in cs):.2f} | '
              f'{m(c["traffic_dense"] / c["traffic_exported"] for c in cs):.2f} | '
              f'{m(c["macs_exported"] for c in cs) / 1e6:.2f} | '
              f'{m(c["macs_exported_unfolded"] for c in cs) / 1e6:.2f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(every, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
