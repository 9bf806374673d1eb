"""Run bookkeeping: one work dir per run, skip-finished logic, a 2-slot scheduler with dependencies
(pruning runs wait for the dense run of their fold and seed), progress and ETA.

A run's work dir (``<runs_dir>/<dataset>/<backbone>/<fold>/seed<k>/<method>[_r<rate>]``) holds

- ``config.py``: the resolved config (also the name of the weights-only ``config_pruned.pth``);
- MMEngine's checkpoints and logs, ``train.log`` / ``worker.log``;
- ``timing.json``: every training segment ``[start, seconds]`` (a run resumed after an interruption has
  several; ``train_s`` in the result is their sum);
- ``result.json``: the final result; **its presence marks the run finished** (skipped later);
- for dense runs, ``dense_weights.pth`` (weights only), the starting point of the pruning runs.

An interrupted run resumes: finished training is not repeated (only the evaluation), partial training
continues from its last checkpoint (``--resume``).

Each run is one worker subprocess (``python -m mmsemiprune.leaderboard.runs RUNS_DIR RUN_JSON``) that
trains through ``python -m mmsemiprune.leaderboard.train`` (MMEngine's Runner; module entry points only,
so an installed package works from any directory) and then evaluates in-process (:mod:`.evaluate`).
Relative paths (configs, data) are relative to the directory the leaderboard was started in.
``device='cpu'`` (default) hides CUDA devices from the worker (``CUDA_VISIBLE_DEVICES=''``); ``'cuda'``
lets MMEngine use the GPU.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from datetime import datetime
from typing import Dict, List, Optional

from .spec import RunSpec

__all__ = ['RunPaths', 'run_status', 'pending_runs', 'Scheduler', 'load_results', 'train_seconds',
           'record_segment', 'worker_env', 'PKG_PARENT', 'DEVICES']

#: the directory that holds the ``mmsemiprune`` package (a checkout's root or site-packages)
PKG_PARENT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULT = 'result.json'
TIMING = 'timing.json'
DEVICES = ('cpu', 'cuda')


class RunPaths:
    """Files of one run. A seed-0 run uses its pre-seed directory (no ``seed0/``) when only that exists."""

    def __init__(self, runs_dir: str, spec: RunSpec):
        self.spec = spec
        self.work_dir = osp.join(runs_dir, spec.rel_dir())
        legacy = spec.legacy_rel_dir()
        if legacy is not None and not osp.isdir(self.work_dir) and osp.isdir(osp.join(runs_dir, legacy)):
            self.work_dir = osp.join(runs_dir, legacy)
        self.config = osp.join(self.work_dir, 'config.py')
        self.result = osp.join(self.work_dir, RESULT)
        self.dense_weights = osp.join(self.work_dir, 'dense_weights.pth')
        self.pruned = osp.join(self.work_dir, 'config_pruned.pth')
        self.train_log = osp.join(self.work_dir, 'train.log')
        self.worker_log = osp.join(self.work_dir, 'worker.log')
        self.timing = osp.join(self.work_dir, TIMING)

    def dense(self, runs_dir: str) -> 'RunPaths':
        return RunPaths(runs_dir, self.spec.dense_twin())


def _last_checkpoint(work_dir: str) -> Optional[str]:
    f = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(f):
        return None
    with open(f) as fh:
        p = fh.read().strip()
    if not osp.isabs(p):
        p = osp.join(work_dir, osp.basename(p))
    return p if osp.isfile(p) else None


def final_checkpoint(paths: RunPaths, max_epochs: int) -> Optional[str]:
    """The checkpoint to evaluate when training finished, else None."""
    last = _last_checkpoint(paths.work_dir)
    if last is None or osp.basename(last) != f'epoch_{max_epochs}.pth':
        return None
    from .methods import DENSE_METHODS
    if paths.spec.method not in DENSE_METHODS:
        return paths.pruned if osp.isfile(paths.pruned) else None
    return last


def run_status(runs_dir: str, spec: RunSpec) -> str:
    """'done' (result.json), 'partial' (some training checkpoint) or 'pending'."""
    p = RunPaths(runs_dir, spec)
    if osp.isfile(p.result):
        return 'done'
    if _last_checkpoint(p.work_dir):
        return 'partial'
    return 'pending'


def pending_runs(runs_dir: str, runs: List[RunSpec]) -> List[RunSpec]:
    return [r for r in runs if run_status(runs_dir, r) != 'done']


def load_results(runs_dir: str, runs: Optional[List[RunSpec]] = None) -> List[Dict]:
    """Results of the given runs (or every result.json under runs_dir), with the run's identity."""
    out = []
    if runs is not None:
        files = [(RunPaths(runs_dir, r).result, r) for r in runs]
    else:
        files = []
        for root, _, names in os.walk(runs_dir):
            if RESULT in names:
                files.append((osp.join(root, RESULT), None))
    for f, r in files:
        if not osp.isfile(f):
            continue
        with open(f) as fh:
            res = json.load(fh)
        if r is not None:
            res.update(dataset=r.dataset, backbone=r.backbone, method=r.label, rate=r.rate, fold=r.fold,
                       seed=int(r.seed), width=r.width)
        res['seed'] = int(res.get('seed') or 0)  # results written before seeds existed: seed 0
        out.append(res)
    return out


# -- timing ---------------------------------------------------------------------------------------------
def _read_timing(path: str) -> Dict[str, List]:
    if osp.isfile(path):
        with open(path) as fh:
            return json.load(fh)
    return {'train': []}


def _write_json(path: str, obj) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _newest_mtime(work_dir: str, since: float, until: Optional[float] = None) -> float:
    """Latest modification time in [since, until] of a file under ``work_dir`` written by training (not
    timing.json / worker.log), else ``since``."""
    t = since
    for root, _, names in os.walk(work_dir):
        for n in names:
            if n.startswith(TIMING) or n == 'worker.log':
                continue
            try:
                m = osp.getmtime(osp.join(root, n))
            except OSError:
                continue
            if until is None or m <= until:
                t = max(t, m)
    return t


def record_segment(path: str, start: float, seconds: Optional[float]) -> None:
    """Record a training segment ``[start, seconds]`` in ``timing.json``; ``seconds=None`` opens it (a
    segment still open when the next one starts, i.e. killed, is closed at the work dir's last write)."""
    t = _read_timing(path)
    segs = t.setdefault('train', [])
    for sg in segs:
        if sg[1] is None and sg[0] != start:
            sg[1] = max(_newest_mtime(osp.dirname(path), sg[0], until=start) - sg[0], 0.0)
    for sg in segs:
        if sg[0] == start:
            sg[1] = seconds
            break
    else:
        segs.append([start, seconds])
    _write_json(path, t)


def _log_segments(work_dir: str) -> List[List[float]]:
    """Training segments of a run without timing.json (older sweeps): one MMEngine session directory
    ``YYYYMMDD_HHMMSS/`` per (re)start, from its name to its log file's last write."""
    segs = []
    for d in sorted(glob.glob(osp.join(work_dir, '[0-9]' * 8 + '_' + '[0-9]' * 6))):
        try:
            start = datetime.strptime(osp.basename(d), '%Y%m%d_%H%M%S').timestamp()
        except ValueError:
            continue
        logs = glob.glob(osp.join(d, '*.log'))
        if logs:
            segs.append([start, max(max(osp.getmtime(f) for f in logs) - start, 0.0)])
    return segs


def train_seconds(work_dir: str) -> Dict[str, float]:
    """``dict(train_s=sum of all training segments, segments=count)`` of a run (timing.json, else the
    MMEngine session directories)."""
    path = osp.join(work_dir, TIMING)
    segs = _read_timing(path).get('train', []) if osp.isfile(path) else _log_segments(work_dir)
    total = 0.0
    for start, sec in segs:
        total += sec if sec is not None else max(_newest_mtime(work_dir, start) - start, 0.0)
    return dict(train_s=total, train_segments=len(segs))


# -- worker -------------------------------------------------------------------------------------------
def worker_env(device: str = 'cpu', threads: Optional[int] = None) -> Dict[str, str]:
    """Environment of a worker / training subprocess: this package first on PYTHONPATH, CUDA hidden on
    ``device='cpu'``, ``threads`` OMP/MKL threads (default: OMP_NUM_THREADS or 1)."""
    if device not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    env = dict(os.environ)
    if threads is not None:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = PKG_PARENT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def _train(paths: RunPaths, resume: bool, env: Dict[str, str]) -> None:
    cmd = [sys.executable, '-m', 'mmsemiprune.leaderboard.train', paths.config, '--work-dir', paths.work_dir]
    if resume:
        cmd.append('--resume')
    start = time.time()
    record_segment(paths.timing, start, None)
    try:
        with open(paths.train_log, 'a') as log:
            log.write(f'\n# {" ".join(cmd)}\n')
            log.flush()
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        record_segment(paths.timing, start, time.time() - start)
    if rc != 0:
        raise RuntimeError(f'training failed (exit {rc}); see {paths.train_log}')


def run_one(runs_dir: str, spec: RunSpec, device: str = 'cpu') -> Dict:
    """Train (if needed) and evaluate one run; writes and returns its result.json content."""
    from .evaluate import evaluate_checkpoint
    from .methods import build_run_config, needs_dense

    paths = RunPaths(runs_dir, spec)
    os.makedirs(paths.work_dir, exist_ok=True)
    dense_ckpt = None
    if needs_dense(spec):
        dense_ckpt = paths.dense(runs_dir).dense_weights
        if not osp.isfile(dense_ckpt):
            raise RuntimeError(f'{spec.rel_dir()}: the dense run of this fold and seed has no {dense_ckpt} yet')
    cfg = build_run_config(spec, dense_ckpt)
    max_epochs = int(cfg.train_cfg['max_epochs'])
    if not osp.isfile(paths.config):
        cfg.dump(paths.config)
    env = worker_env(device)
    ckpt = final_checkpoint(paths, max_epochs)
    if ckpt is None:
        _train(paths, resume=_last_checkpoint(paths.work_dir) is not None, env=env)
        ckpt = final_checkpoint(paths, max_epochs)
        if ckpt is None:
            raise RuntimeError(f'training ended without a final checkpoint (epoch_{max_epochs}); see {paths.train_log}')
    res = evaluate_checkpoint(paths.config, ckpt, paths.work_dir,
                              save_dense_weights=paths.dense_weights if spec.method == 'dense' else None)
    res.update(spec.to_dict())
    res.update(train_seconds(paths.work_dir))
    res.update(max_epochs=max_epochs, device=device, total_s=res['train_s'] + res['eval_s'],
               finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'))
    _write_json(paths.result, res)
    return res


# -- scheduler ----------------------------------------------------------------------------------------
def _fmt(s: float) -> str:
    s = int(max(s, 0))
    return f'{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}'


class Scheduler:
    """Run pending runs with ``jobs`` worker processes; a pruning run starts once its dense run is done."""

    def __init__(self, runs_dir: str, runs: List[RunSpec], jobs: int = 2, threads: int = 1,
                 stop_at: Optional[float] = None, log=print, device: str = 'cpu'):
        self.runs_dir, self.runs, self.jobs, self.threads = runs_dir, runs, max(1, int(jobs)), threads
        self.stop_at = stop_at
        self.device = device
        self.log = log
        self.failed: Dict[tuple, str] = {}

    # durations of finished runs (this or earlier sessions), by kind, for the ETA
    def _durations(self) -> Dict[str, List[float]]:
        d: Dict[str, List[float]] = {}
        for r in self.runs:
            p = RunPaths(self.runs_dir, r)
            if osp.isfile(p.result):
                with open(p.result) as fh:
                    res = json.load(fh)
                d.setdefault(self._kind(r), []).append(float(res.get('train_s', 0)) + float(res.get('eval_s', 0)))
        return d

    @staticmethod
    def _kind(r: RunSpec) -> str:
        """ETA class of a run: dataset and dense / learned / one-shot (their epochs differ)."""
        from .methods import is_oneshot
        kind = (r.method if r.method in ('dense', 'dense_small', 'dense_small_ft') else
                'oneshot' if is_oneshot(r.method) else 'learned')
        return f'{r.dataset}/{kind}'

    def eta(self, todo: List[RunSpec], running: Dict) -> Optional[float]:
        d = self._durations()
        if not d:
            return None
        every = [x for v in d.values() for x in v]
        fallback = statistics.median(every)
        total = 0.0
        for r in todo:
            v = d.get(self._kind(r))
            total += statistics.median(v) if v else fallback
        for key, (proc, r, t0) in running.items():
            v = d.get(self._kind(r))
            total += max((statistics.median(v) if v else fallback) - (time.time() - t0), 0)
        return total / self.jobs

    def _ready(self, r: RunSpec) -> bool:
        from .methods import needs_dense
        if not needs_dense(r):
            return True
        return osp.isfile(RunPaths(self.runs_dir, r).dense(self.runs_dir).dense_weights)

    def _start(self, r: RunSpec):
        p = RunPaths(self.runs_dir, r)
        os.makedirs(p.work_dir, exist_ok=True)
        env = worker_env(self.device, self.threads)
        log = open(p.worker_log, 'a')
        cmd = [sys.executable, '-m', 'mmsemiprune.leaderboard.runs', self.runs_dir, json.dumps(r.to_dict()),
               '--device', self.device]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return proc

    def run(self, poll: float = 5.0) -> Dict[str, int]:
        todo = pending_runs(self.runs_dir, self.runs)
        n_total, n_done0 = len(self.runs), len(self.runs) - len(todo)
        self.log(f'[leaderboard] {n_total} runs, {n_done0} already finished, {len(todo)} to do, '
                 f'{self.jobs} parallel job(s) x {self.threads} thread(s)')
        running: Dict[tuple, tuple] = {}
        done = 0
        while todo or running:
            # start what is ready, in priority order
            while len(running) < self.jobs and (self.stop_at is None or time.time() < self.stop_at):
                # a dense run whose fold failed blocks its pruning runs: drop them
                blocked = [r for r in todo if r.method != 'dense' and r.dense_twin().key in self.failed]
                for r in blocked:
                    self.failed[r.key] = 'dense run failed'
                    todo.remove(r)
                nxt = next((r for r in todo if self._ready(r)), None)
                if nxt is None:
                    break
                todo.remove(nxt)
                running[nxt.key] = (self._start(nxt), nxt, time.time())
                self.log(f'[leaderboard] start  {nxt.rel_dir()}')
            if not running:
                if todo and (self.stop_at is None or time.time() < self.stop_at):
                    waiting = [r.rel_dir() for r in todo if not self._ready(r)][:3]
                    self.log(f'[leaderboard] nothing runnable; waiting for dense runs: {waiting}')
                break
            time.sleep(poll)
            for key in list(running):
                proc, r, t0 = running[key]
                if proc.poll() is None:
                    continue
                del running[key]
                dt = time.time() - t0
                if proc.returncode == 0 and osp.isfile(RunPaths(self.runs_dir, r).result):
                    done += 1
                    with open(RunPaths(self.runs_dir, r).result) as fh:
                        res = json.load(fh)
                    msg = f'top1 {100 * res["top1"]:.1f}'
                    if r.method != 'dense':
                        msg += f' rate {res.get("rate_params", 0):.3f} struct {res.get("structural_share", 0):.2f}'
                else:
                    self.failed[key] = f'exit {proc.returncode}'
                    msg = f'FAILED (exit {proc.returncode}; see {RunPaths(self.runs_dir, r).worker_log})'
                eta = self.eta(todo, running)
                self.log(f'[leaderboard] [{n_done0 + done}/{n_total}] {r.rel_dir()} {msg} in {_fmt(dt)}; '
                         f'{len(todo)} queued, {len(running)} running; ETA '
                         f'{_fmt(eta) if eta is not None else "?"}')
            if self.stop_at is not None and time.time() >= self.stop_at and not running:
                self.log(f'[leaderboard] time limit reached; {len(todo)} run(s) left for a later session')
                break
        return dict(done=done, failed=len(self.failed), left=len(todo))


def _main(argv=None):
    p = argparse.ArgumentParser(description='one leaderboard run (started by the scheduler)')
    p.add_argument('runs_dir')
    p.add_argument('spec_json')
    p.add_argument('--device', default='cpu', choices=DEVICES)
    a = p.parse_args(argv)
    spec = RunSpec(**json.loads(a.spec_json))
    res = run_one(a.runs_dir, spec, device=a.device)
    print(json.dumps({k: res[k] for k in ('top1', 'mean_class', 'rate_params') if k in res}))


if __name__ == '__main__':
    _main()
