"""Sweep specification: dataset × backbone × method × rates × folds × seeds, expanded into ordered runs.

A sweep file (YAML, JSON or an MMEngine ``.py`` config) holds::

    runs_dir: leaderboard_runs          # one work dir per run below it
    out_dir: leaderboard                # leaderboard.md / .csv / .png
    groups:
      - dataset: sbu                    # free-form label (also the table's dataset column)
        backbone: stgcn
        config: configs/leaderboard/stgcn_sbu.py   # the DENSE model config of this dataset/backbone
        folds: [1, 2, 3, 4, 5]          # splits fold{k}_train / fold{k}_test; [null]: one split
        seeds: [0, 1, 2]                # randomness.seed of the runs (default [0]); every (fold, seed)
                                        # has its own dense run, the start of its pruning runs
        methods: [dense, semi, structured, unstructured, magnitude, l1_channel, gmp, random, dense_small]
        rates: [0.5, 0.8, 0.9, 0.95]
        widths: [4, 6, 8, 10, 12]       # base channels of dense_small / dense_small_ft (no rates)
        prune: {epochs: 10, lr: 0.05, schedule: {warmup: 0.3, freeze: 0.7}}   # pruning-run overrides
                                        # (run keys: epochs, lr, val_interval, from_dense, mask_epochs,
                                        # finetune_epochs; every other key goes into prune_cfg as is)
        method_prune: {magnitude: {lr: 0.02}}      # optional per-method overrides of `prune` (merged)
        method_cfg: {semi: {budget_weight: 5.0}}   # optional extra prune_cfg keys per method
        cfg_options: {train_dataloader.dataset.ann_file: ...}   # optional config overrides (all runs)
        variant: ft50                   # optional label: rows 'semi-ft50', work dirs semi-ft50_r0.9; the
                                        # dense run (never a variant) is shared with the plain group

Runs are ordered *seed-major, then fold-major* (every method of fold 1 of every group for the first
seed, then fold 2, ..., then the next seed), dense first inside a fold, so an interrupted sweep leaves
complete, comparable folds.

A run lives in ``<runs_dir>/<dataset>/<backbone>/<fold>/seed<k>/<method>[_r<rate>]``. Results of sweeps
run before seeds existed (``<fold>/<method>[_r<rate>]``, no seed directory) are read as seed 0: a seed-0
run whose seeded directory does not exist uses the old directory when that one exists.
"""
import copy
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ['RunSpec', 'load_sweep', 'expand_sweep', 'METHOD_ORDER', 'WIDTH_METHODS']

METHOD_ORDER = ['dense', 'semi', 'semi_oneshot', 'structured', 'unstructured', 'magnitude', 'l1_channel', 'gmp',
                'random', 'dense_small', 'dense_small_ft', 'ctf']
#: methods trained at a reduced width (``widths`` of the group) instead of at pruning rates
WIDTH_METHODS = ('dense_small', 'dense_small_ft')


@dataclass
class RunSpec:
    dataset: str
    backbone: str
    method: str
    config: str
    rate: Optional[float] = None  # None for dense
    fold: Optional[int] = None  # None: the dataset's only split
    prune: Dict[str, Any] = field(default_factory=dict)
    method_cfg: Dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    variant: str = ''  # a labelled variant of a method (e.g. another schedule): its own work dir and row
    seed: int = 0  # randomness.seed of the run (and of its dense twin)
    width: Optional[int] = None  # base channels of a WIDTH_METHODS run (None: the config's width)

    @property
    def label(self) -> str:
        return f'{self.method}-{self.variant}' if self.variant else self.method

    @property
    def name(self) -> str:
        """``<label>[_r<rate>]`` (the run's directory name below its seed directory)."""
        r = '' if self.rate is None else f'_r{self.rate:g}'
        w = '' if self.width is None else f'_w{int(self.width)}'
        return f'{self.label}{r}{w}'

    @property
    def seed_name(self) -> str:
        return f'seed{int(self.seed)}'

    @property
    def fold_name(self) -> str:
        return 'split' if self.fold is None else f'fold{self.fold}'

    def rel_dir(self) -> str:
        """Work dir relative to the sweep's runs_dir: <dataset>/<backbone>/<fold>/seed<k>/<method>[_r<rate>]."""
        return osp.join(self.dataset, self.backbone, self.fold_name, self.seed_name, self.name)

    def legacy_rel_dir(self) -> Optional[str]:
        """The directory of the same run in sweeps without seeds (seed 0 only), else None."""
        if int(self.seed) != 0:
            return None
        return osp.join(self.dataset, self.backbone, self.fold_name, self.name)

    def dense_twin(self) -> 'RunSpec':
        """The dense run of the same (dataset, backbone, fold, seed): this run's starting point."""
        return RunSpec(self.dataset, self.backbone, 'dense', self.config, None, self.fold, {}, {}, 0,
                       dict(self.cfg_options), seed=int(self.seed))

    @property
    def key(self):
        if self.width is None:  # the key of runs without a width, as before widths existed
            return (self.dataset, self.backbone, self.fold, int(self.seed), self.label, self.rate)
        return (self.dataset, self.backbone, self.fold, int(self.seed), self.label, self.rate, int(self.width))

    def to_dict(self):
        return asdict(self)


def load_sweep(path: str) -> Dict[str, Any]:
    """Read a sweep spec from .yaml/.yml, .json or .py (MMEngine config syntax)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'sweep spec not found: {path}')
    ext = osp.splitext(path)[1].lower()
    if ext in ('.yaml', '.yml'):
        import yaml
        with open(path) as f:
            spec = yaml.safe_load(f)
    elif ext == '.json':
        with open(path) as f:
            spec = json.load(f)
    elif ext == '.py':
        from mmengine.config import Config
        spec = Config.fromfile(path).to_dict()
    else:
        raise ValueError(f'unknown sweep spec format {ext!r} (use .yaml, .json or .py)')
    if not isinstance(spec, dict) or not spec.get('groups'):
        raise ValueError(f'{path}: a sweep spec needs a non-empty "groups" list')
    return spec


def _methods_known(methods):
    bad = [m for m in methods if m not in METHOD_ORDER]
    if bad:
        raise ValueError(f'unknown method(s) {bad}; choose from {METHOD_ORDER}')


def _merge(base: Dict, over: Dict) -> Dict:
    """``base`` updated by ``over``, nested dicts merged key by key (copies)."""
    out = copy.deepcopy(dict(base))
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _seeds(g, gi) -> List[int]:
    seeds = g.get('seeds')
    if seeds is None:
        return [0]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f'sweep group {gi}: "seeds" must be a non-empty list of ints >= 0, got {seeds!r}')
    if len(set(seeds)) != len(seeds):
        raise ValueError(f'sweep group {gi}: duplicate seeds in {seeds}')
    return list(seeds)


def _widths(g, gi, methods) -> List[int]:
    widths = g.get('widths') or []
    if any(m in WIDTH_METHODS for m in methods):
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f'sweep group {gi}: {"/".join(WIDTH_METHODS)} need "widths", a list of base channel '
                             f'counts >= 1 (e.g. [4, 6, 8, 10, 12]), got {widths!r}')
    return [int(w) for w in widths]


def _points(method, rates, widths):
    """(rate, width) of every run of ``method`` in a group."""
    if method == 'dense':
        return [(None, None)]
    if method in WIDTH_METHODS:
        return [(None, w) for w in widths]
    return [(r, None) for r in rates]


def expand_sweep(spec: Dict[str, Any]) -> List[RunSpec]:
    """All runs of a spec, seed-major then fold-major, dense first within a fold; duplicates removed."""
    runs: List[RunSpec] = []
    seen = set()
    seed_rank: Dict[int, int] = {}
    for gi, g in enumerate(spec['groups']):  # seeds in order of first appearance
        for s in _seeds(g, gi):
            seed_rank.setdefault(s, len(seed_rank))
    for gi, g in enumerate(spec['groups']):
        for k in ('dataset', 'config', 'methods'):
            if k not in g:
                raise ValueError(f'sweep group {gi} lacks {k!r}')
        methods = list(g['methods'])
        _methods_known(methods)
        folds = list(g.get('folds') or [None])
        rates = [float(r) for r in g.get('rates') or []]
        for r in rates:
            if not 0.0 < r < 1.0:
                raise ValueError(f'sweep group {gi}: rate {r} is not in (0, 1)')
        if any(m != 'dense' and m not in WIDTH_METHODS for m in methods) and not rates:
            raise ValueError(f'sweep group {gi}: pruning methods need "rates"')
        widths = _widths(g, gi, methods)
        seeds = _seeds(g, gi)
        method_prune = g.get('method_prune') or {}
        _methods_known(list(method_prune))
        for seed in seeds:
            for fi, fold in enumerate(folds):
                ordered = sorted(methods, key=METHOD_ORDER.index)
                for m in ordered:
                    for r, w in _points(m, rates, widths):
                        rs = RunSpec(dataset=str(g['dataset']), backbone=str(g.get('backbone', 'model')), method=m,
                                     config=g['config'], rate=r, fold=None if fold is None else int(fold),
                                     prune=_merge(g.get('prune') or {}, method_prune.get(m) or {}),
                                     method_cfg=dict((g.get('method_cfg') or {}).get(m) or {}),
                                     priority=(seed_rank[seed] * 1000 + fi) * 1000 + gi,
                                     cfg_options=dict(g.get('cfg_options') or {}),
                                     variant='' if m == 'dense' else str(g.get('variant') or ''), seed=int(seed),
                                     width=w)
                        if rs.key in seen:
                            continue
                        seen.add(rs.key)
                        runs.append(rs)
    runs.sort(key=lambda r: r.priority)  # stable: keeps method / rate order inside a fold
    return runs
