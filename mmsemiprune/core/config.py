"""PruneConfig: the one source of truth for ``prune_cfg`` — keys, types, defaults, validation and the
schedule's unit conversion (fractions of the run, iterations or epochs).

    cfg = PruneConfig.from_dict(dict(target_rate=0.9, mode='semi'))   # ValueError naming the field
    pruner = SemiPruner(model, specs, **cfg.pruner_kwargs(), channel_sets=sets)
    cfg.resolve_schedule(max_iters=..., max_epochs=...)                # iterations/epochs → fractions

Every field's ``metadata['doc']`` is the text of the README's key table (checked by a test), so a new
key is documented where it is defined.
"""
import copy
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Union

from .budget import COSTS
from .cascade import MODES
from .groups import parse_grouping
from .schedule import PruneSchedule

__all__ = ['PruneConfig', 'GATE_PRICES', 'SCHEDULE_UNITS', 'check_rate', 'check_fraction']

GATE_PRICES = ('params', 'macs', 'both')
#: schedule keys given in iterations or epochs instead of fractions of the run
SCHEDULE_UNITS = tuple(f'{k}_{u}' for u in ('iters', 'epochs') for k in ('warmup', 'freeze', 'hard'))


def _doc(text: str, default_text: Optional[str] = None) -> Dict[str, str]:
    return dict(doc=text, default=default_text) if default_text is not None else dict(doc=text)


def _number(v, name, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f'prune_cfg.{name} must be a number, got {v!r}')
    v = float(v)
    if lo is not None and (v < lo or (lo_open and v == lo)) or hi is not None and (v > hi or (hi_open and v == hi)):
        lb = '(' if lo_open else '['
        rb = ')' if hi_open else ']'
        raise ValueError(f'prune_cfg.{name} must be in {lb}{lo if lo is not None else "-inf"}, '
                         f'{hi if hi is not None else "inf"}{rb}, got {v!r}')
    return v


def _choice(v, name, choices):
    if v not in choices:
        what = 'pruning mode' if name == 'mode' else f'prune_cfg.{name}'
        raise ValueError(f'unknown {what} {v!r}; choose one of {", ".join(map(str, choices))} '
                         f'(e.g. prune_cfg=dict({name}={choices[0]!r}))')
    return v


def check_rate(rate, name='target_rate'):
    """A pruning rate strictly between 0 and 1."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < float(rate) < 1.0:
        raise ValueError(f'{name} must be a fraction strictly between 0 and 1 (the share of weights to '
                         f'remove), got {rate!r}; e.g. target_rate=0.9 keeps 10 % of the prunable weights')
    return float(rate)


def check_fraction(v, name, upper=1.0):
    """A number in (0, upper] (e.g. target_macs=0.3: at most 30 % of the dense MACs)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) <= upper:
        raise ValueError(f'{name} must be a fraction in (0, {upper:g}], got {v!r}; e.g. {name}=0.3')
    return float(v)


@dataclass
class PruneConfig:
    target_rate: float = field(default=None, metadata=_doc(
        'fraction of the prunable cost to remove, in (0, 1)', 'required'))
    mode: str = field(default='semi', metadata=_doc('`semi` / `structured` / `unstructured` / `ctf`'))
    cost: str = field(default='params', metadata=_doc(
        'what the rate counts: `params`, or `flops` (each entry weighted by the output positions it is applied to)'))
    budget_weight: float = field(default=5.0, metadata=_doc('λ of the budget regularizer'))
    layer_floor: float = field(default=0.01, metadata=_doc('every pruned tensor keeps at least this fraction'))
    schedule: Optional[Dict[str, Any]] = field(default=None, metadata=_doc(
        '`dict(warmup=0.3, freeze=0.8, tau_start=0.2, tau_end=1e-3, hard=None)` as fractions of the run '
        '(`hard`: start of the hard phase, default the last quarter of the anneal), or '
        '`warmup_iters`/`freeze_iters`/`hard_iters`/`*_epochs`', 'see left'))
    targets: Any = field(default=None, metadata=_doc(
        'roles to prune: `dict(gcn=True, tcn=True, residual=True, adjacency=False, attention=False)`, or a list '
        'of `dict(pattern=regex, groups=[...])`', 'see left'))
    groups: Optional[Dict[str, Any]] = field(default=None, metadata=_doc(
        "group specs per role, e.g. `dict(tcn=['out', 'in'])`; kinds `entry, out, in, tap, row, col, block`, "
        '`out:fold=K`', 'per backbone'))
    gate_price: float = field(default=1.0, metadata=_doc(
        'constant shadow price of kept cost seen only by the gates (see below)'))
    gate_price_by: str = field(default='both', metadata=_doc(
        'what the gate price counts: `params`, `macs` (the compute a group frees when removed whole: its rows, '
        'the consumer columns and the adjacency aggregation) or `both`'))
    gate_init: Any = field(default=0.0, metadata=_doc(
        "initial gate logit (0 undecided, > 0 structure first), or `'score'`: from the group scores of the "
        'loaded weights (weak groups start structured)'))
    gate_relative: bool = field(default=True, metadata=_doc(
        'scale the gate temperature by each tensor\'s mean gate logit magnitude, so the anneal decides every gate '
        'before the freeze (False: the raw logit scale; measured: most gates still undecided at the freeze)'))
    hard_phase: bool = field(default=True, metadata=_doc(
        'train the last quarter of the anneal on the hard, topologically consistent masks at the exact rate; '
        'the freeze keeps them unchanged'))
    mask_bias: bool = field(default=True, metadata=_doc(
        'mask each conv bias with its output row (a pruned channel emits exactly 0)'))
    target_macs: Optional[float] = field(default=None, metadata=_doc(
        'compute budget: MACs after channel removal ≤ `target_macs` × dense (ST-GCN / ST-GCN++; whole channels '
        'are removed, weakest per freed MAC first, and the parameter rate is met elsewhere)'))
    soft_projection: bool = field(default=True, metadata=_doc(
        'with `target_macs`: the soft phase already trains without the channels the compute target removes '
        '(projected every step, the budget ramped with the rate), so the hard phase does not remove them at once '
        '(measured on SBU: loss_cls on one batch ×6.4 at the soft→hard step without it)'))
    update_every: Union[int, str] = field(default='auto', metadata=_doc(
        'mask update interval N (steps): the thresholds (soft phase) and the topologically consistent, projected '
        'hard masks (hard phase, soft projection) are recomputed at the first step of a phase, every N-th step and '
        'whenever the scheduled rate moved by >= 0.01 since; in between the masks keep their thresholds / hard '
        'masks (the soft projection its live region and thresholds). `auto`: about 1,000 updates '
        'per mask phase, N = max(1, freeze·max_iters // 1000) (1 for runs of up to 1,250 steps at freeze 0.8; '
        'measured on SBU, 60-step mask phases, 5 folds: N = 16 moved top-1 by -0.9 [-4.0, +2.3] points); '
        '1: every step'))
    projection_search: str = field(default='auto', metadata=_doc(
        'how the consistent (compute-projected) hard masks find the rate to ask of the threshold search: `secant`: '
        'the previous asked rate, one secant step and a safeguarded regula falsi (fewer probes while the asked rate '
        'moves, e.g. the warm-up ramp: NTU ST-GCN with target_macs 0.4, CPU, 2.33x -> 1.37x stock); `bisect` (the '
        'published leaderboards\' search): that at N > 1, at N = 1 a bisection from [0, rate] when the previous '
        'asked rate misses; `auto`: `secant` with `target_macs`, else `bisect`. Measured with target_macs 0.4 on '
        'SBU (5 folds) and FPHA, 3 seeds, rates 0.9 / 0.95: secant - bisect top-1 +0.38 points [-0.50, +1.26] over '
        '36 pairs, exported MACs +0.3 %'))
    cuda_graphs: bool = field(default=True, metadata=_doc(
        'CUDA: run the soft phase\'s threshold search as one replay of a captured CUDA graph (~180 operators '
        'fewer dispatched per step, same thresholds; measured on an H200, batch 32: ST-GCN soft step 1.27x -> 1.17x '
        'stock in fp32, 1.34x -> 1.28x in fp16 AMP). Ignored on the CPU and with `target_macs` (its soft projection '
        'reads the host); `False`: the eager search'))
    distill: Optional[Dict[str, Any]] = field(default=None, metadata=_doc(
        '`dict(weight=1.0, temperature=4.0, checkpoint=None)`: knowledge distillation from the dense model (the '
        'weights at the first training step, or `checkpoint`), any mode'))
    oneshot: bool = field(default=False, metadata=_doc(
        'freeze the masks at the first step from the loaded weights, then fine-tune (magnitude / L1 baselines)'))
    normalize: bool = field(default=True, metadata=_doc(
        'score by `|w|/rms(w)` per tensor (True) or raw global `|w|` (False)'))
    group_stat: str = field(default='rms', metadata=_doc('group aggregation `rms` or `l1`'))
    random_scores: bool = field(default=False, metadata=_doc(
        'one-shot only: decide gates and masks on random latents (standard normal draws of the run\'s seed) '
        'under the same rules, then fine-tune: the `random` baseline'))
    prune_head: bool = field(default=False, metadata=_doc(
        'reserved, must be False: the classifier and BatchNorms are never pruned'))
    # -- the paper's formulation, each off by default (core/learned_thresholds.py, latent_gate.py, rank.py) ------
    thresholds: str = field(default='search', metadata=_doc(
        '`search`: the band positions are placed every step so that the hard kept cost meets the schedule; '
        '`learned`: they are trained parameters (fractions below the band) moved by the task loss and the budget '
        'term, the search only the exact projection at the freeze (no hard phase; not with `target_macs`)'))
    gates: str = field(default='param', metadata=_doc(
        '`param`: a learned logit per group; `latent`: computed from the latent (group flatness, mean magnitude / RMS, '
        'against the tensor\'s), so the latent is the only trained mask state (`mode=\'semi\'`)'))
    rank_weight: float = field(default=0.0, metadata=_doc(
        'weight of the rank surrogate: soft count of live rows and columns of each reshaped weight, priced by their '
        'MACs (0: off)'))
    # -- end of the paper's formulation -----------------------------------------------------------------------------

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> Dict[str, str]:
        """key → documentation (the README's key table)."""
        return {f.name: f.metadata['doc'] for f in fields(cls)}

    @classmethod
    def markdown_table(cls) -> str:
        """The README's key table: | key | meaning | default |."""
        rows = ['| key | meaning | default |', '|---|---|---|']
        for f in fields(cls):
            default = f.metadata.get('default') or (f'`{f.default!r}`' if isinstance(f.default, str) else str(f.default))
            rows.append(f'| `{f.name}` | {f.metadata["doc"]} | {default} |')
        return '\n'.join(rows)

    @classmethod
    def from_dict(cls, d) -> 'PruneConfig':
        """Validate ``prune_cfg`` (a dict) and build the config. Raises ValueError naming the field."""
        if d is None or 'target_rate' not in dict(d):
            raise ValueError('SemiPruneRecognizerGCN needs prune_cfg with a target_rate, e.g. '
                             "model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', "
                             "prune_cfg=dict(target_rate=0.9, mode='semi'))")
        d = dict(d)
        unknown = sorted(set(d) - set(cls.keys()))
        if unknown:
            raise ValueError(f'unknown prune_cfg key(s) {unknown}; valid keys: {", ".join(cls.keys())} '
                             '(see README "Enabling pruning on an existing MMAction2 skeleton config: one line")')
        cfg = cls(**copy.deepcopy(d))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        self.target_rate = check_rate(self.target_rate, 'prune_cfg.target_rate')
        _choice(self.mode, 'mode', MODES)
        _choice(self.cost, 'cost', COSTS)
        self.budget_weight = _number(self.budget_weight, 'budget_weight', 0.0)
        self.layer_floor = _number(self.layer_floor, 'layer_floor', 0.0, 1.0, hi_open=True)
        if self.layer_floor > 1.0 - self.target_rate:
            raise ValueError(f'prune_cfg.layer_floor={self.layer_floor} keeps more than the whole budget '
                             f'(1 - target_rate = {1 - self.target_rate:.3f}); lower layer_floor')
        self.gate_price = _number(self.gate_price, 'gate_price', 0.0)
        _choice(self.gate_price_by, 'gate_price_by', GATE_PRICES)
        if isinstance(self.gate_init, str):
            if self.gate_init != 'score':
                raise ValueError(f"prune_cfg.gate_init must be a number or 'score', got {self.gate_init!r}")
        else:
            self.gate_init = _number(self.gate_init, 'gate_init')
        for k in ('hard_phase', 'mask_bias', 'gate_relative', 'soft_projection', 'oneshot', 'normalize',
                  'prune_head', 'cuda_graphs', 'random_scores'):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f'prune_cfg.{k} must be True or False, got {getattr(self, k)!r}')
        if self.prune_head:
            raise ValueError('prune_cfg.prune_head=True is not supported: the classifier is never pruned')
        _choice(self.group_stat, 'group_stat', ('rms', 'l1'))
        _choice(self.projection_search, 'projection_search', ('auto', 'secant', 'bisect'))
        if self.target_macs is not None:
            self.target_macs = check_fraction(self.target_macs, 'prune_cfg.target_macs')
        check_update_every(self.update_every)
        self.distill = _check_distill(self.distill)
        _check_groups(self.groups)
        if self.random_scores and not self.oneshot:
            raise ValueError('prune_cfg.random_scores=True needs oneshot=True (a random mask decided at the first step)')
        if self.oneshot and self.schedule:
            raise ValueError('prune_cfg.oneshot=True freezes the masks at the first step; drop prune_cfg.schedule')
        self._validate_formulation()
        self.parse_schedule()

    def _validate_formulation(self) -> None:
        """The keys ``thresholds``, ``gates``, ``rank_weight`` and the combinations they exclude."""
        _choice(self.thresholds, 'thresholds', ('search', 'learned'))
        _choice(self.gates, 'gates', ('param', 'latent'))
        self.rank_weight = _number(self.rank_weight, 'rank_weight', 0.0)
        if self.thresholds == 'learned' and self.target_macs is not None:
            raise ValueError("prune_cfg.thresholds='learned' does not combine with target_macs (its soft projection "
                             "places the band positions by the search every step); drop one of them")
        if self.oneshot and (self.thresholds == 'learned' or self.gates == 'latent' or self.rank_weight > 0):
            raise ValueError("prune_cfg.oneshot=True freezes the masks at the first step: thresholds='learned', "
                             "gates='latent' and rank_weight have nothing to train; drop them")
        if self.gates == 'latent' and self.mode != 'semi':
            raise ValueError(f"prune_cfg.gates='latent' needs mode='semi' (mode {self.mode!r} has no gates)")
        if self.gates == 'latent' and self.gate_init != 0.0:
            raise ValueError("prune_cfg.gate_init initialises gate logits; with gates='latent' there are none: "
                             'drop gate_init')

    # -- schedule -------------------------------------------------------------------------------------
    def parse_schedule(self):
        """(PruneSchedule with the fractions given, dict of the keys given in iterations/epochs)."""
        if self.oneshot:
            return PruneSchedule(warmup=0.0, freeze=0.0), {}
        d = dict(self.schedule or {})
        if not isinstance(self.schedule or {}, dict):
            raise ValueError(f'prune_cfg.schedule must be a dict, got {self.schedule!r}')
        units = {k: d.pop(k) for k in SCHEDULE_UNITS if k in d}
        for k, v in units.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f'prune_cfg.schedule.{k} must be a non-negative integer, got {v!r}')
        try:
            sched = PruneSchedule(**d)
        except TypeError as e:
            raise ValueError(f'bad prune_cfg.schedule {self.schedule!r}: {e}; keys are warmup, freeze, hard, tau_start, '
                             f'tau_end, {", ".join(SCHEDULE_UNITS)}') from None
        return sched, units

    def resolve_schedule(self, schedule: PruneSchedule, max_iters: int, max_epochs: Optional[int] = None) -> None:
        """Write the keys given in iterations/epochs into ``schedule`` as fractions of the run; reject
        schedules longer than the run."""
        _, units = self.parse_schedule()
        for k, v in units.items():
            name, unit = k.split('_')
            if unit == 'epochs':
                if not max_epochs:
                    raise ValueError(f'prune_cfg.schedule.{k} needs an epoch-based run; use {name}_iters or a fraction')
                total = max_epochs
            else:
                total = max_iters
            if v > total:
                raise ValueError(f'prune_cfg.schedule.{k}={v} is longer than the run (max_{unit}={total}); '
                                 'lower it or train longer')
            setattr(schedule, name, v / total)
        schedule.validate()

    # -- use ------------------------------------------------------------------------------------------
    def pruner_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :class:`~.pruner.SemiPruner` (everything but specs and channel sets)."""
        return dict(target_rate=self.target_rate, mode=self.mode, cost=self.cost, budget_weight=self.budget_weight,
                    layer_floor=self.layer_floor, schedule=self.parse_schedule()[0], normalize=self.normalize,
                    group_stat=self.group_stat, gate_init=self.gate_init, gate_price=self.gate_price,
                    gate_price_by=self.gate_price_by, hard_phase=self.hard_phase, mask_bias=self.mask_bias,
                    target_macs=self.target_macs, gate_relative=self.gate_relative,
                    soft_projection=self.soft_projection, update_every=self.update_every,
                    projection_search=self.projection_search, cuda_graphs=self.cuda_graphs,
                    thresholds=self.thresholds, gates=self.gates, rank_weight=self.rank_weight)


AUTO_UPDATES = 1000  # update_every='auto': about this many mask updates per mask phase


def check_update_every(v):
    """``update_every``: an integer >= 1 or 'auto'."""
    if v != 'auto' and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ValueError(f"prune_cfg.update_every must be an integer >= 1 (steps) or 'auto', got {v!r}; 1 recomputes "
                         'the masks every step')
    return v


def auto_update_every(freeze: float, max_iters: int) -> int:
    """N of update_every='auto': max(1, freeze·max_iters // AUTO_UPDATES)."""
    return max(1, int(freeze * max_iters) // AUTO_UPDATES)


def _check_groups(groups):
    """Name the field in group-spec errors."""
    if groups is None:
        return
    if not isinstance(groups, dict):
        raise ValueError("prune_cfg.groups must be a dict role -> list of group specs, e.g. dict(tcn=['out', 'in']), "
                         f'got {groups!r}')
    for role, specs in groups.items():
        if isinstance(specs, (str, dict)) or not isinstance(specs, (list, tuple)):
            raise ValueError(f"prune_cfg.groups.{role} must be a list of group specs such as ['out'], got {specs!r}")
        for spec in specs:
            try:
                parse_grouping(spec)
            except ValueError as e:
                raise ValueError(f'prune_cfg.groups.{role}: {e}') from None


def _check_distill(cfg):
    """``distill=dict(weight=1.0, temperature=4.0, checkpoint=None)`` → validated dict, or None."""
    if cfg is None or cfg is False:
        return None
    if not isinstance(cfg, dict):
        raise ValueError(f'prune_cfg.distill must be a dict such as dict(weight=1.0, temperature=4.0), got {cfg!r}')
    unknown = sorted(set(cfg) - {'weight', 'temperature', 'checkpoint'})
    if unknown:
        raise ValueError(f'unknown prune_cfg.distill key(s) {unknown}; keys are weight, temperature, checkpoint')
    out = dict(weight=1.0, temperature=4.0, checkpoint=None)
    out.update(cfg)
    for k in ('weight', 'temperature'):
        out[k] = _number(out[k], f'distill.{k}', 0.0, lo_open=True)
    return out
