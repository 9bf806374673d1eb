"""Leaderboard command line: train what is missing, evaluate with MMAction2's metrics, publish tables and
plots. ``python -m mmsemiprune.leaderboard ...`` (installed or from a checkout) or ``tools/leaderboard.py``.

    # a sweep (dataset x backbone x method x rates x folds x seeds); finished runs (result.json) are skipped
    python -m mmsemiprune.leaderboard --sweep configs/leaderboard/sweep_v2.yaml
    python -m mmsemiprune.leaderboard --sweep configs/leaderboard/sweep_v2.yaml --dry-run     # what would run
    python -m mmsemiprune.leaderboard --sweep configs/leaderboard/sweep_v2.yaml --tables-only # just re-publish
    python -m mmsemiprune.leaderboard --sweep A.yaml B.yaml   # several specs, one table (shared runs once)
    python -m mmsemiprune.leaderboard --from-csv leaderboard/runs.csv --out-dir /tmp/lb   # tables from runs.csv
    # ad-hoc configs (trained if no checkpoint is given) and/or checkpoints
    python -m mmsemiprune.leaderboard --config configs/demo/stgcn_semiprune_demo.py [--checkpoint X_pruned.pth]

Runs go to ``<runs_dir>/<dataset>/<backbone>/<fold>/seed<k>/<method>[_r<rate>]`` (git-ignored), the
tables to ``<out_dir>/leaderboard.{md,csv,png}``, ``paired.csv``, ``pareto_<dataset>_{macs,nonzeros}.png``
and ``runs.csv`` (one row per run). Relative paths are relative to the current directory.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from .runs import DEVICES, RunPaths, Scheduler, load_results, run_status, worker_env
from .spec import expand_sweep, load_sweep
from .tables import read_runs_csv, write_all

__all__ = ['main', 'parse_args']

_EPILOG = """A sweep spec (YAML) lists groups of runs; each group is one dataset / backbone config:

  runs_dir: leaderboard_runs/mine          # one work dir per run below it (resumable)
  out_dir: leaderboard/mine                # leaderboard.md / .csv / paired.csv / verdicts.md / plots
  groups:
    - dataset: sbu                         # the table's dataset label
      backbone: stgcn
      config: configs/leaderboard/stgcn_sbu.py   # the DENSE config (train on fit, validate on val, test once)
      folds: [1, 2, 3, 4, 5]               # fold{k}_* splits; [null]: the config's one split
      seeds: [0, 1, 2]
      methods: [dense, semi, semi_oneshot, structured, unstructured, magnitude, l1_channel, gmp, random,
                dense_small, dense_small_ft]
      rates: [0.9, 0.98]                   # pruning rates of the pruning methods
      widths: [4, 6, 8, 10, 12]            # base channels of dense_small / dense_small_ft
      prune: {mask_epochs: 4, finetune_epochs: 8, lr: 0.02, distill: {weight: 1.0, temperature: 4.0}}
      method_cfg: {semi: {target_macs: 0.4}}   # extra prune_cfg keys per method
      variant: t40                         # optional: rows 'semi-t40', work dirs of their own

Example: python -m mmsemiprune.leaderboard --sweep configs/leaderboard/sweep_v3.yaml --dry-run
More: docs/leaderboard.md (protocol, columns, statistics)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python -m mmsemiprune.leaderboard',
                                description='Train / evaluate / tabulate pruning runs (mmsemiprune leaderboard)',
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sweep', nargs='+', default=[],
                   help='sweep spec(s) (.yaml / .json / .py): dataset x backbone x method x rates x folds; several '
                   'specs are concatenated (runs shared by key, e.g. the dense runs, count once)')
    p.add_argument('--config', nargs='+', default=[], help='ad-hoc config(s) to train (if needed) and evaluate')
    p.add_argument('--checkpoint', nargs='+', default=[],
                   help='checkpoint(s) for --config, in the same order (skips training)')
    p.add_argument('--runs-dir', help='where run work dirs live (default: the spec\'s runs_dir or leaderboard_runs)')
    p.add_argument('--out-dir', help='where tables go (default: the spec\'s out_dir or leaderboard)')
    p.add_argument('--jobs', type=int, default=2, help='runs in parallel (default 2)')
    p.add_argument('--threads', type=int, default=1, help='OMP threads per run (default 1)')
    p.add_argument('--folds', type=str, help='only these folds, e.g. 1,2')
    p.add_argument('--methods', type=str, help='only these methods, e.g. dense,semi')
    p.add_argument('--datasets', type=str, help='only these datasets')
    p.add_argument('--rates', type=str, help='only these rates, e.g. 0.9,0.98 (runs without a rate are kept)')
    p.add_argument('--stop-at', type=str, help='start no run after this local time (HH:MM) or after N minutes (+N)')
    p.add_argument('--dry-run', action='store_true', help='list what would run and exit')
    p.add_argument('--tables-only', action='store_true', help='only (re)write the tables from finished runs')
    p.add_argument('--refresh-report', action='store_true',
                   help='recompute the checkpoint-derived columns (pruning report, MACs, params after channel '
                   'removal) of finished runs with the current code, keeping their accuracy; then '
                   'write the tables (combine with --tables-only to train nothing)')
    p.add_argument('--title', default=None, help='title of the tables and plot')
    p.add_argument('--device', default='cpu', choices=DEVICES,
                   help='train and evaluate on the CPU (default; CUDA devices are hidden from the runs) or on cuda')
    p.add_argument('--from-csv', nargs='+', default=[],
                   help='also tabulate the runs of these runs.csv files (e.g. published results whose run '
                   'directories are gone); no seed column: seed 0')
    return p.parse_args(argv)


def _stop_at(s):
    if not s:
        return None
    if s.startswith('+'):
        return time.time() + 60 * float(s[1:])
    hh, mm = s.split(':')
    t = time.localtime()
    target = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, int(hh), int(mm), 0, 0, 0, -1))
    return target if target > time.time() else target + 86400


def _filter(runs, args):
    def keep(r):
        if args.folds and str(r.fold) not in args.folds.split(',') and not (r.fold is None):
            return False
        if args.methods and r.method not in args.methods.split(','):
            return False
        if args.datasets and r.dataset not in args.datasets.split(','):
            return False
        if args.rates and r.rate is not None and r.rate not in [float(x) for x in args.rates.split(',')]:
            return False
        return True
    return [r for r in runs if keep(r)]


def _oneshot(pc) -> bool:
    """Whether an ad-hoc config's prune_cfg decides its masks at the first step (either spelling)."""
    return pc.get('schedule') == 'oneshot' or bool(pc.get('oneshot'))


def _adhoc(args, runs_dir):
    """Evaluate (and train when no checkpoint is given) ad-hoc configs; returns their results."""
    from mmengine.config import Config

    from .evaluate import evaluate_checkpoint
    if args.checkpoint and len(args.checkpoint) != len(args.config):
        sys.exit('error: give one --checkpoint per --config (or none)')
    out = []
    for i, config in enumerate(args.config):
        cfg = Config.fromfile(config)
        name = osp.splitext(osp.basename(config))[0]
        pc = cfg.model.get('prune_cfg') or {}
        method = 'dense' if not pc else (
            'magnitude' if _oneshot(pc) and pc.get('mode') == 'unstructured' else
            'l1_channel' if _oneshot(pc) and pc.get('mode') == 'structured' else pc.get('mode', 'semi'))
        ds = (cfg.get('dataset_info') or {}).get('name', 'custom')
        fold = (cfg.get('dataset_info') or {}).get('fold')
        wd = osp.join(runs_dir, 'adhoc', name)
        os.makedirs(wd, exist_ok=True)
        result = osp.join(wd, 'result.json')
        ckpt = args.checkpoint[i] if args.checkpoint else None
        if osp.isfile(result) and ckpt is None:
            print(f'[leaderboard] {name}: finished earlier ({result})')
            with open(result) as f:
                out.append(json.load(f))
            continue
        t0 = time.time()
        if ckpt is None:
            import subprocess
            env = worker_env(args.device, args.threads)
            rc = subprocess.call([sys.executable, '-m', 'mmsemiprune.leaderboard.train', config, '--work-dir', wd],
                                 env=env)
            if rc:
                sys.exit(f'error: training {config} failed')
            pruned = osp.join(wd, f'{name}_pruned.pth')
            if osp.isfile(pruned):
                ckpt = pruned
            else:
                with open(osp.join(wd, 'last_checkpoint')) as f:
                    ckpt = f.read().strip()
        train_s = time.time() - t0
        res = evaluate_checkpoint(config, ckpt, wd)
        res.update(dataset=ds, backbone=cfg.model.backbone.get('type', 'model'), method=method,
                   rate=pc.get('target_rate'), fold=fold, max_epochs=cfg.train_cfg.get('max_epochs'),
                   train_s=train_s)
        with open(result, 'w') as f:
            json.dump(res, f, indent=1, sort_keys=True)
        print(f'[leaderboard] {name}: top1 {100 * res["top1"]:.2f}  mean-class {100 * res["mean_class"]:.2f}  '
              f'rate {res.get("rate_params", 0):.3f}')
        out.append(res)
    return out


def main(argv=None):
    args = parse_args(argv)
    if not args.sweep and not args.config and not args.from_csv:
        sys.exit('error: give --sweep SPEC, --config CONFIG [...] and/or --from-csv RUNS_CSV')
    specs = [load_sweep(s) for s in args.sweep]
    spec = specs[0] if specs else {}
    runs_dir = osp.abspath(args.runs_dir or spec.get('runs_dir') or 'leaderboard_runs')
    out_dir = args.out_dir or spec.get('out_dir') or 'leaderboard'
    title = args.title or spec.get('title') or 'mmsemiprune leaderboard'
    runs, seen = [], set()
    for sp in specs:
        for r in _filter(expand_sweep(sp), args):
            if r.key not in seen:
                seen.add(r.key)
                runs.append(r)
    t0 = time.time()
    if args.dry_run:
        todo = 0
        for r in runs:
            st = run_status(runs_dir, r)
            todo += st != 'done'
            print(f'{st:8s} {r.rel_dir()}')
        for c in args.config:
            print(f'adhoc    {c}')
        print(f'{len(runs)} sweep runs, {todo} to run (finished ones are skipped); runs dir {runs_dir}')
        return 0
    results = []
    if runs and not args.tables_only:
        sched = Scheduler(runs_dir, runs, jobs=args.jobs, threads=args.threads, stop_at=_stop_at(args.stop_at),
                          log=lambda m: print(time.strftime('%H:%M:%S ') + m, flush=True), device=args.device)
        summary = sched.run()
        print(f'[leaderboard] sweep: {summary}', flush=True)
    if runs and args.refresh_report:
        from .evaluate import refresh_report
        fin = [r for r in runs if run_status(runs_dir, r) == 'done']
        for i, r in enumerate(fin, 1):
            try:
                refresh_report(RunPaths(runs_dir, r).work_dir)
            except Exception as e:  # keep the old numbers, say so
                print(f'[leaderboard] refresh failed for {r.rel_dir()}: {type(e).__name__}: {e}', flush=True)
            if i % 10 == 0 or i == len(fin):
                print(f'[leaderboard] refreshed {i}/{len(fin)} reports', flush=True)
    if runs:
        results += load_results(runs_dir, runs)
    if args.config:
        results += _adhoc(args, runs_dir)
    for f in args.from_csv:
        results += read_runs_csv(f)
    if not results:
        print('[leaderboard] no finished runs yet: no tables written')
        return 1
    preamble = '\n\n'.join(sp['preamble'].strip() for sp in specs if sp.get('preamble'))
    n_sweep = len(runs)
    if n_sweep:
        done = sum(run_status(runs_dir, r) == 'done' for r in runs)
        preamble += f'\n\nFinished runs: {done} of {n_sweep} in the sweep(s) {", ".join(f"`{s}`" for s in args.sweep)}.'
    paths = write_all(results, out_dir, title=title, preamble=preamble)
    print(f'[leaderboard] wrote {", ".join(paths.values())} ({time.time() - t0:.0f} s)')
    return 0
