"""Sweep specification: dataset × backbone × method × rates × folds, expanded into ordered runs.

A sweep file (YAML, JSON or an MMEngine ``.py`` config) holds::

    runs_dir: leaderboard_runs          # one work dir per run below it
    out_dir: leaderboard                # leaderboard.md / .csv / .png
    groups:
      - dataset: sbu                    # free-form label (also the table's dataset column)
        backbone: stgcn
        config: configs/leaderboard/stgcn_sbu.py   # the DENSE model config of this dataset/backbone
        folds: [1, 2, 3, 4, 5]          # splits fold{k}_train / fold{k}_test; [null]: one split
        methods: [dense, semi, structured, unstructured, magnitude, l1_channel]
        rates: [0.5, 0.8, 0.9, 0.95]
        prune: {epochs: 10, lr: 0.05, schedule: {warmup: 0.3, freeze: 0.7}}   # pruning-run overrides
        method_cfg: {semi: {budget_weight: 5.0}}   # optional extra prune_cfg keys per method
        cfg_options: {train_dataloader.dataset.ann_file: ...}   # optional config overrides (all runs)
        variant: ft50                   # optional label: rows 'semi-ft50', work dirs semi-ft50_r0.9; the
                                        # dense run (never a variant) is shared with the plain group

Runs are ordered *fold-major* (every method of fold 1 of every group, then fold 2, ...), dense first
inside a fold, so an interrupted sweep leaves complete, comparable folds.
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ['RunSpec', 'load_sweep', 'expand_sweep', 'METHOD_ORDER']

METHOD_ORDER = ['dense', 'semi', 'structured', 'unstructured', 'magnitude', 'l1_channel', 'ctf']


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

    @property
    def label(self) -> str:
        return f'{self.method}-{self.variant}' if self.variant else self.method

    @property
    def name(self) -> str:
        r = '' if self.rate is None else f'_r{self.rate:g}'
        return f'{self.label}{r}'

    @property
    def fold_name(self) -> str:
        return 'split' if self.fold is None else f'fold{self.fold}'

    def rel_dir(self) -> str:
        """Work dir relative to the sweep's runs_dir: <dataset>/<backbone>/<fold>/<method>[_r<rate>]."""
        return osp.join(self.dataset, self.backbone, self.fold_name, self.name)

    def dense_twin(self) -> 'RunSpec':
        return RunSpec(self.dataset, self.backbone, 'dense', self.config, None, self.fold, {}, {}, 0,
                       dict(self.cfg_options))

    @property
    def key(self):
        return (self.dataset, self.backbone, self.fold, self.label, self.rate)

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


def expand_sweep(spec: Dict[str, Any]) -> List[RunSpec]:
    """All runs of a spec, fold-major, dense first within a fold; duplicates removed."""
    runs: List[RunSpec] = []
    seen = set()
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
        if any(m != 'dense' for m in methods) and not rates:
            raise ValueError(f'sweep group {gi}: pruning methods need "rates"')
        for fi, fold in enumerate(folds):
            ordered = sorted(methods, key=METHOD_ORDER.index)
            for m in ordered:
                for r in ([None] if m == 'dense' else rates):
                    rs = RunSpec(dataset=str(g['dataset']), backbone=str(g.get('backbone', 'model')), method=m,
                                 config=g['config'], rate=r, fold=None if fold is None else int(fold),
                                 prune=dict(g.get('prune') or {}),
                                 method_cfg=dict((g.get('method_cfg') or {}).get(m) or {}),
                                 priority=fi * 1000 + gi, cfg_options=dict(g.get('cfg_options') or {}),
                                 variant='' if m == 'dense' else str(g.get('variant') or ''))
                    if rs.key in seen:
                        continue
                    seen.add(rs.key)
                    runs.append(rs)
    runs.sort(key=lambda r: r.priority)  # stable: keeps method / rate order inside a fold
    return runs
