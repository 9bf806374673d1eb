"""Run bookkeeping: one work dir per run, skip-finished logic, a 2-slot scheduler with dependencies
(pruning runs wait for the dense run of their fold), progress and ETA.

A run's work dir (``<runs_dir>/<dataset>/<backbone>/<fold>/<method>[_r<rate>]``) holds

- ``config.py``: the resolved config (also the name of the weights-only ``config_pruned.pth``);
- MMEngine's checkpoints and logs, ``train.log`` / ``worker.log``;
- ``result.json``: the final result; **its presence marks the run finished** (skipped later);
- for dense runs, ``dense_weights.pth`` (weights only), the starting point of the pruning runs.

An interrupted run resumes: finished training is not repeated (only the evaluation), partial training
continues from its last checkpoint (``--resume``).

Each run is one worker subprocess (``python -m mmsemiprune.leaderboard.runs RUN_JSON``) that calls
``tools/train.py`` as a subprocess and then evaluates in-process (:mod:`.evaluate`).
"""
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

from .spec import RunSpec

__all__ = ['RunPaths', 'run_status', 'pending_runs', 'Scheduler', 'load_results', 'REPO_ROOT']

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULT = 'result.json'


class RunPaths:
    def __init__(self, runs_dir: str, spec: RunSpec):
        self.spec = spec
        self.work_dir = osp.join(runs_dir, spec.rel_dir())
        self.config = osp.join(self.work_dir, 'config.py')
        self.result = osp.join(self.work_dir, RESULT)
        self.dense_weights = osp.join(self.work_dir, 'dense_weights.pth')
        self.pruned = osp.join(self.work_dir, 'config_pruned.pth')
        self.train_log = osp.join(self.work_dir, 'train.log')
        self.worker_log = osp.join(self.work_dir, 'worker.log')

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
    if paths.spec.method != 'dense':
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
            res.update(dataset=r.dataset, backbone=r.backbone, method=r.label, rate=r.rate, fold=r.fold)
        out.append(res)
    return out


# -- worker -------------------------------------------------------------------------------------------
def _train(paths: RunPaths, resume: bool, env: Dict[str, str]) -> None:
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), paths.config, '--work-dir', paths.work_dir]
    if resume:
        cmd.append('--resume')
    with open(paths.train_log, 'a') as log:
        log.write(f'\n# {" ".join(cmd)}\n')
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    if rc != 0:
        raise RuntimeError(f'training failed (exit {rc}); see {paths.train_log}')


def run_one(runs_dir: str, spec: RunSpec) -> Dict:
    """Train (if needed) and evaluate one run; writes and returns its result.json content."""
    from .evaluate import evaluate_checkpoint
    from .methods import build_run_config

    paths = RunPaths(runs_dir, spec)
    os.makedirs(paths.work_dir, exist_ok=True)
    dense_ckpt = None
    if spec.method != 'dense' and spec.prune.get('from_dense', True):
        dense_ckpt = paths.dense(runs_dir).dense_weights
        if not osp.isfile(dense_ckpt):
            raise RuntimeError(f'{spec.rel_dir()}: the dense run of this fold has no {dense_ckpt} yet')
    cfg = build_run_config(spec, dense_ckpt)
    max_epochs = int(cfg.train_cfg['max_epochs'])
    if not osp.isfile(paths.config):
        cfg.dump(paths.config)
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = REPO_ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    t0 = time.time()
    ckpt = final_checkpoint(paths, max_epochs)
    trained_now = False
    if ckpt is None:
        _train(paths, resume=_last_checkpoint(paths.work_dir) is not None, env=env)
        trained_now = True
        ckpt = final_checkpoint(paths, max_epochs)
        if ckpt is None:
            raise RuntimeError(f'training ended without a final checkpoint (epoch_{max_epochs}); see {paths.train_log}')
    train_s = time.time() - t0
    res = evaluate_checkpoint(paths.config, ckpt, paths.work_dir,
                              save_dense_weights=paths.dense_weights if spec.method == 'dense' else None)
    prev = {}
    if osp.isfile(paths.result + '.timing'):
        with open(paths.result + '.timing') as fh:
            prev = json.load(fh)
    res.update(spec.to_dict())
    res.update(max_epochs=max_epochs, train_s=train_s if trained_now else prev.get('train_s', train_s),
               total_s=time.time() - t0, finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'))
    tmp = paths.result + '.tmp'
    with open(tmp, 'w') as fh:
        json.dump(res, fh, indent=1, sort_keys=True)
    os.replace(tmp, paths.result)
    return res


# -- scheduler ----------------------------------------------------------------------------------------
def _fmt(s: float) -> str:
    s = int(max(s, 0))
    return f'{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}'


class Scheduler:
    """Run pending runs with ``jobs`` worker processes; a pruning run starts once its dense run is done."""

    def __init__(self, runs_dir: str, runs: List[RunSpec], jobs: int = 2, threads: int = 1,
                 stop_at: Optional[float] = None, log=print):
        self.runs_dir, self.runs, self.jobs, self.threads = runs_dir, runs, max(1, int(jobs)), threads
        self.stop_at = stop_at
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
        return f'{r.dataset}/{"dense" if r.method == "dense" else "prune"}'

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
        if r.method == 'dense' or not r.prune.get('from_dense', True):
            return True
        return osp.isfile(RunPaths(self.runs_dir, r).dense(self.runs_dir).dense_weights)

    def _start(self, r: RunSpec):
        p = RunPaths(self.runs_dir, r)
        os.makedirs(p.work_dir, exist_ok=True)
        env = dict(os.environ)
        env['OMP_NUM_THREADS'] = str(self.threads)
        env['MKL_NUM_THREADS'] = str(self.threads)
        env['PYTHONPATH'] = REPO_ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
        log = open(p.worker_log, 'a')
        cmd = [sys.executable, '-m', 'mmsemiprune.leaderboard.runs', self.runs_dir, json.dumps(r.to_dict())]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
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


def _main(argv):
    runs_dir, spec_json = argv[1], argv[2]
    spec = RunSpec(**json.loads(spec_json))
    res = run_one(runs_dir, spec)
    print(json.dumps({k: res[k] for k in ('top1', 'mean_class', 'rate_params') if k in res}))


if __name__ == '__main__':
    _main(sys.argv)
