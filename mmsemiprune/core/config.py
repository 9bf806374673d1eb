"""PruneConfig: the one source of truth for ``prune_cfg``: keys, groups, types, defaults, validation,
deprecated spellings and the schedule's unit conversion (fractions of the run, iterations or epochs).

    cfg = PruneConfig.from_dict(dict(target_rate=0.9, mode='semi'))   # ValueError naming the field
    pruner = SemiPruner(model, specs, cfg, channel_sets=sets)          # the validated object, as is
    cfg.resolve_schedule(pruner.schedule, max_iters=..., max_epochs=...)  # iterations/epochs → fractions

Every field's ``metadata['doc']`` is the text of the key table in docs/prune_cfg.md (:meth:`PruneConfig.markdown_table`,
checked by a test), so a new key is documented where it is defined; ``metadata['group']`` places it among
the basic, advanced or performance keys (see the class docstring).
"""
import copy
import difflib
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple, Union

from .budget import COSTS
from .compute import ALLOCATIONS
from .modes import MODES, get_mode
from .groups import parse_grouping
from .schedule import PruneSchedule
from .scorers import SCORERS, scorer_for_flags

__all__ = ['PruneConfig', 'Ablation', 'PruneConfigDeprecationWarning', 'GATE_PRICES', 'SCHEDULE_UNITS',
           'GROUPS', 'check_rate', 'check_fraction']

GATE_PRICES = ('params', 'macs', 'both')
#: schedule keys given in iterations or epochs instead of fractions of the run
SCHEDULE_UNITS = tuple(f'{k}_{u}' for u in ('iters', 'epochs') for k in ('warmup', 'freeze', 'hard'))
#: named schedules: ``schedule='oneshot'`` decides the masks at the first step from the loaded weights
NAMED_SCHEDULES = dict(oneshot=dict(warmup=0.0, freeze=0.0))
#: key groups of the table and the docstring, in their order
GROUPS = ('basic', 'advanced', 'performance', 'ablation')


class PruneConfigDeprecationWarning(FutureWarning):
    """A ``prune_cfg`` key was given in a spelling that keeps working for one release (shown by default)."""


def _doc(text: str, default_text: Optional[str] = None, group: str = 'advanced') -> Dict[str, str]:
    out = dict(doc=text, group=group)
    if default_text is not None:
        out['default'] = default_text
    return out


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
        key = name.split('.')[-1]
        raise ValueError(f'unknown {what} {v!r}; choose one of {", ".join(map(str, choices))} '
                         f'(e.g. prune_cfg=dict({key}={choices[0]!r}))')
    return v


def _flag(v, name):
    if not isinstance(v, bool):
        raise ValueError(f'prune_cfg.{name} must be True or False, got {v!r}')
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


def _unknown(keys, valid, where, hint=None):
    """ValueError for unknown keys, naming the closest valid spelling of each."""
    notes = []
    for k in keys:
        close = (hint or {}).get(k) or next(iter(difflib.get_close_matches(str(k), list(valid), n=1)), None)
        if close:
            notes.append(f'{k!r}: did you mean {close}?')
    more = ''.join(f'; {n}' for n in notes)
    return ValueError(f'unknown {where} key(s) {sorted(keys)}; valid keys: {", ".join(valid)}{more} '
                      "(see docs/prune_cfg.md)")


@dataclass
class Ablation:
    """``prune_cfg.ablation=dict(...)``: switches that re-run an ablation of the method, and pins of the
    searches of published results. Every default is the method; change one to measure what it buys."""
    hard_phase: bool = field(default=True, metadata=_doc(
        'train the last quarter of the anneal on the hard, topologically consistent masks at the exact rate; '
        'the freeze keeps them unchanged (False: soft masks up to the freeze)'))
    mask_bias: bool = field(default=True, metadata=_doc(
        'mask each conv bias with its output row (a pruned channel emits exactly 0)'))
    gate_relative: bool = field(default=True, metadata=_doc(
        "scale the gate temperature by each tensor's mean gate logit magnitude, so the anneal decides every gate "
        'before the freeze (False: the raw logit scale)'))
    soft_projection: bool = field(default=True, metadata=_doc(
        'with `target_macs`: the soft phase already trains without the channels the compute target removes '
        '(projected at every mask update, the budget ramped with the rate), so the hard phase does not remove '
        'them at once'))
    projection_search: str = field(default='auto', metadata=_doc(
        'how the consistent (compute-projected) hard masks find the rate to ask of the threshold search: '
        '`secant` (the previous asked rate, one secant step, then a safeguarded regula falsi), `bisect` (the '
        "published leaderboards' search: at N = 1 a bisection from [0, rate] when the previous asked rate "
        'misses, else `secant`), `auto`: `secant` with `target_macs`, else `bisect`'))
    gate_init: Any = field(default=0.0, metadata=_doc(
        "initial gate logit (0 undecided, > 0 structure first), or `'score'`: from the group scores of the "
        'loaded weights (weak groups start structured)'))
    gate_group: bool = field(default=True, metadata=_doc(
        '`SemiPruneHook`: the gate logits in their own optimizer parameter group (weight decay 0; lr 0 and '
        'momentum cleared once the masks freeze)'))
    reset_momentum: bool = field(default=True, metadata=_doc(
        '`SemiPruneHook`: clear the optimizer state of the masked tensors once, when the masks become hard'))

    @classmethod
    def keys(cls) -> Dict[str, str]:
        return {f.name: f.metadata['doc'] for f in fields(cls)}

    @classmethod
    def from_dict(cls, d) -> 'Ablation':
        if isinstance(d, Ablation):
            d = {f.name: getattr(d, f.name) for f in fields(cls)}
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ValueError(f'prune_cfg.ablation must be a dict such as dict(hard_phase=False), got {d!r}')
        unknown = set(d) - set(cls.keys())
        if unknown:
            raise _unknown(unknown, list(cls.keys()), 'prune_cfg.ablation')
        out = cls(**copy.deepcopy(dict(d)))
        out.validate()
        return out

    def validate(self) -> None:
        for k in ('hard_phase', 'mask_bias', 'gate_relative', 'soft_projection', 'gate_group', 'reset_momentum'):
            _flag(getattr(self, k), f'ablation.{k}')
        _choice(self.projection_search, 'ablation.projection_search', ('auto', 'secant', 'bisect'))
        if isinstance(self.gate_init, str):
            if self.gate_init != 'score':
                raise ValueError(f"prune_cfg.ablation.gate_init must be a number or 'score', got {self.gate_init!r}")
        else:
            self.gate_init = _number(self.gate_init, 'ablation.gate_init')

    def changed(self) -> Dict[str, Any]:
        """The switches that differ from the method's defaults."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


#: top-level keys that moved into ``prune_cfg.ablation`` (old spellings, accepted for one release)
MOVED_TO_ABLATION = ('hard_phase', 'mask_bias', 'gate_relative', 'soft_projection', 'projection_search', 'gate_init')
#: every deprecated top-level key (see :func:`migrate`)
DEPRECATED_KEYS = MOVED_TO_ABLATION + ('normalize', 'group_stat', 'oneshot', 'prune_head', 'random_scores')


def _conflict(old, new, a, b):
    return ValueError(f'prune_cfg.{old}={a!r} contradicts prune_cfg.{new}={b!r}; keep only prune_cfg.{new}')


def migrate(d: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """``prune_cfg`` with its deprecated keys rewritten to the current spelling, and one sentence per
    deprecated key naming the new spelling (empty when there were none)."""
    d, notes = dict(d), []
    abl = d.get('ablation') or {}
    if isinstance(abl, Ablation):
        abl = abl.changed()
    if not isinstance(abl, dict):
        raise ValueError(f'prune_cfg.ablation must be a dict such as dict(hard_phase=False), got {abl!r}')
    abl = dict(abl)
    for k in MOVED_TO_ABLATION:
        if k in d:
            v = d.pop(k)
            if k in abl and abl[k] != v:
                raise _conflict(k, f'ablation.{k}', v, abl[k])
            abl[k] = v
            notes.append(f'prune_cfg.{k} is deprecated; use prune_cfg.ablation.{k}')
    if abl or 'ablation' in d:
        d['ablation'] = abl
    if 'normalize' in d or 'group_stat' in d:
        old = [k for k in ('normalize', 'group_stat') if k in d]
        norm, stat = _flag(d.pop('normalize', True), 'normalize'), d.pop('group_stat', 'rms')
        name = scorer_for_flags(norm, _choice(stat, 'group_stat', ('rms', 'l1')))
        if d.get('scorer', name) != name:
            raise _conflict(old[0], 'scorer', norm if old[0] == 'normalize' else stat, d['scorer'])
        d['scorer'] = name
        notes.append(f'prune_cfg.{" and prune_cfg.".join(old)} {"are" if len(old) > 1 else "is"} deprecated; '
                     f'use prune_cfg.scorer={name!r}')
    if 'oneshot' in d:
        if _flag(d.pop('oneshot'), 'oneshot'):
            if d.get('schedule') and d['schedule'] != 'oneshot':
                raise ValueError('prune_cfg.oneshot=True freezes the masks at the first step; drop prune_cfg.schedule '
                                 "(the current spelling is prune_cfg.schedule='oneshot')")
            d['schedule'] = 'oneshot'
            notes.append("prune_cfg.oneshot is deprecated; use prune_cfg.schedule='oneshot'")
        else:
            notes.append('prune_cfg.oneshot is deprecated; drop oneshot=False (the default schedule)')
    if 'random_scores' in d:
        if _flag(d.pop('random_scores'), 'random_scores'):
            d['scorer'] = 'random'
            notes.append("prune_cfg.random_scores is deprecated; use prune_cfg.scorer='random'")
        else:
            notes.append('prune_cfg.random_scores is deprecated; drop random_scores=False')
    if 'prune_head' in d:
        if d.pop('prune_head') is not False:
            raise ValueError('prune_cfg.prune_head=True is not supported: the classifier is never pruned')
        notes.append('prune_cfg.prune_head is deprecated and has no effect; drop it')
    return d, notes


@dataclass
class PruneConfig:
    """``prune_cfg``: the keys of one pruning run, grouped like the arguments of a pruner.

    Basic keys (what a run sets):
        target_rate (float): fraction of the prunable cost to remove, in (0, 1); required.
        mode (str): ``'semi'`` (default), ``'structured'``, ``'unstructured'`` or ``'ctf'``.
        target_macs (float, optional): compute budget, a fraction of the dense MACs after channel removal.
        schedule (dict | str, optional): the phases of the run as fractions of it (or in iterations /
            epochs), or ``'oneshot'``: masks decided at the first step from the loaded weights.
        distill (dict, optional): knowledge distillation from the dense model.

    Advanced keys (what is pruned, how it is counted and ranked):
        targets, groups: which tensors are pruned and which entries share one mask.
        cost (str): what the rate counts, ``'params'`` or ``'flops'``.
        layer_floor (float): the fraction every pruned tensor keeps at least.
        budget_weight (float): λ of the budget regularizer.
        gate_price (float), gate_price_by (str): the shadow price of kept cost that the gates see.
        allocation (str), channel_floor (float): with ``target_macs``, the order in which whole channels go
            (:class:`~.compute.Allocation`: ``'per_mac'`` default, ``'uniform'``, ``'score'``) and the fraction
            of its channels every channel set keeps.
        scorer (str): how entries and groups are ranked (:mod:`.scorers`): ``'normalized'`` (default),
            ``'magnitude'``, ``'l1'``, ``'magnitude_l1'``, ``'random'`` (one-shot only).
        thresholds (str), gates (str), rank_weight (float): the paper's formulation, each off by default:
            trained band positions (``'learned'``), gates computed from the latent (``'latent'``), the
            MAC-priced live row / column rank surrogate.

    Performance knobs (how often and how the masks are recomputed; docs/speed.md):
        update_every (int | str): the mask update interval, ``'auto'`` by default.
        cuda_graphs (bool): the soft phase's threshold search as a CUDA-graph replay on CUDA.

    Ablation switches and search pins (``ablation=dict(...)``, :class:`Ablation`):
        hard_phase, mask_bias, gate_relative, soft_projection, projection_search, gate_init, and the
        hook's gate_group, reset_momentum.

    Each field's ``metadata['doc']`` holds its full description (docs/prune_cfg.md). Deprecated spellings
    (top-level ``hard_phase`` …, ``normalize``, ``group_stat``, ``oneshot``, ``prune_head``) keep working
    for one release through :meth:`from_dict` with one :class:`PruneConfigDeprecationWarning` naming the
    new spelling (:func:`migrate`).
    """
    # -- basic -----------------------------------------------------------------------------------------------
    target_rate: float = field(default=None, metadata=_doc(
        'fraction of the prunable cost to remove, in (0, 1)', 'required', group='basic'))
    mode: str = field(default='semi', metadata=_doc(
        '`semi` (learned band-stop / group / gate cascade) / `structured` (group masks only) / `unstructured` '
        '(entry masks only) / `ctf` (coarse-to-fine product)', group='basic'))
    target_macs: Optional[float] = field(default=None, metadata=_doc(
        'compute budget: MACs after channel removal ≤ `target_macs` × dense (ST-GCN, ST-GCN++, AAGCN, CTR-GCN; '
        'whole channels are removed, weakest per freed MAC first, and the parameter rate is met elsewhere)',
        group='basic'))
    schedule: Union[Dict[str, Any], str, None] = field(default=None, metadata=_doc(
        '`dict(warmup=0.3, freeze=0.8, tau_start=0.2, tau_end=1e-3, hard=None)` as fractions of the run '
        '(`hard`: start of the hard phase, default the last quarter of the anneal), or '
        '`warmup_iters`/`freeze_iters`/`hard_iters`/`*_epochs`; or `\'oneshot\'`: the masks are decided at the '
        'first step from the loaded weights, then the run fine-tunes', 'see left', group='basic'))
    distill: Optional[Dict[str, Any]] = field(default=None, metadata=_doc(
        '`dict(weight=1.0, temperature=4.0, checkpoint=None)`: knowledge distillation from the dense model (the '
        'weights at the first training step, or `checkpoint`), any mode', group='basic'))
    # -- advanced --------------------------------------------------------------------------------------------
    targets: Any = field(default=None, metadata=_doc(
        'roles to prune: `dict(gcn=True, tcn=True, residual=True, adjacency=False, attention=False)`, or a list '
        'of `dict(pattern=regex, groups=[...])`', 'see left'))
    groups: Optional[Dict[str, Any]] = field(default=None, metadata=_doc(
        "group specs per role, e.g. `dict(tcn=['out', 'in'])`; kinds `entry, out, in, tap, row, col, block`, "
        '`out:fold=K`', 'per backbone'))
    cost: str = field(default='params', metadata=_doc(
        'what the rate counts: `params`, or `flops` (each entry weighted by the output positions it is applied to)'))
    layer_floor: float = field(default=0.01, metadata=_doc('every pruned tensor keeps at least this fraction'))
    budget_weight: float = field(default=5.0, metadata=_doc('λ of the budget regularizer'))
    gate_price: float = field(default=1.0, metadata=_doc(
        'constant shadow price of kept cost seen only by the gates'))
    gate_price_by: str = field(default='both', metadata=_doc(
        'what the gate price counts: `params`, `macs` (the compute a group frees when removed whole: its rows, '
        'the consumer columns and the adjacency aggregation) or `both`'))
    allocation: str = field(default='per_mac', metadata=_doc(
        'with `target_macs`: the order in which whole channels go (`mmsemiprune.core.compute.Allocation`): '
        '`per_mac` (weakest score per freed MAC first), `uniform` (the same fraction of every channel set, weakest '
        'first within a set: +3.5 [+1.3, +5.6] val points over `per_mac` for ST-GCN at target 0.4, '
        'leaderboard/v3_alloc; it may prune past the rate at tight targets), `score` (weakest first, whatever it '
        'frees)'))
    channel_floor: float = field(default=0.0, metadata=_doc(
        'with `target_macs`: the compute projection leaves every channel set at least this fraction of its '
        'channels (never fewer than 10 %; channels the masks remove by themselves stay removed); the compute '
        'target may then be missed'))
    scorer: str = field(default='normalized', metadata=_doc(
        'how entries and groups are ranked (`mmsemiprune.core.scorers`): `normalized` (`abs(w) / rms(w)` per '
        'tensor, groups by RMS), `magnitude` (raw global `abs(w)`, the global magnitude baseline), `l1` (per '
        'tensor normalised, groups by mean `abs(w)`, the L1-norm channel baseline), `magnitude_l1` (raw, groups '
        'by mean)'))
    # -- performance -----------------------------------------------------------------------------------------
    update_every: Union[int, str] = field(default='auto', metadata=_doc(
        'mask update interval N (steps): the thresholds (soft phase) and the topologically consistent, projected '
        'hard masks (hard phase, soft projection) are recomputed at the first step of a phase, every N-th step and '
        'whenever the scheduled rate moved by >= 0.01 since; in between the masks keep their thresholds / hard '
        'masks. `auto`: N = max(1, freeze·max_iters // 1000), about 1,000 updates per mask phase (1 for runs of up '
        'to 1,250 steps at freeze 0.8); 1: every step', group='performance'))
    cuda_graphs: bool = field(default=True, metadata=_doc(
        "CUDA: run the soft phase's threshold search as one replay of a captured CUDA graph (same thresholds, "
        'fewer operators dispatched). Ignored on the CPU and with `target_macs`; `False`: the eager search',
        group='performance'))
    # -- the paper's formulation, each off by default (core/learned_thresholds.py, latent_gate.py, rank.py) --
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
    # -- ablation --------------------------------------------------------------------------------------------
    ablation: Ablation = field(default_factory=Ablation, metadata=_doc(
        '`dict(...)` of ablation switches and search pins: ' + ', '.join(f'`{k}`' for k in Ablation.keys())
        + ' (rows below)', 'the method', group='ablation'))

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def keys(cls, group: Optional[str] = None) -> Dict[str, str]:
        """key → documentation (the key table of docs/prune_cfg.md), optionally of one group of :data:`GROUPS`."""
        return {f.name: f.metadata['doc'] for f in fields(cls) if group in (None, f.metadata['group'])}

    @classmethod
    def markdown_table(cls) -> str:
        """The key table of docs/prune_cfg.md: | key | meaning | default |, one block per group, then the ablation keys."""
        rows = ['| key | meaning | default |', '|---|---|---|']
        for group in GROUPS:
            rows.append(f'| **{group}** | | |')
            for f in fields(cls):
                if f.metadata['group'] == group:
                    rows.append(f'| `{f.name}` | {f.metadata["doc"]} | {_default_text(f)} |')
        rows += [f'| `ablation.{f.name}` | {f.metadata["doc"]} | {_default_text(f)} |' for f in fields(Ablation)]
        return '\n'.join(rows)

    @classmethod
    def from_dict(cls, d, *, warn: bool = True) -> 'PruneConfig':
        """Validate ``prune_cfg`` (a dict) and build the config; a :class:`PruneConfig` is returned as is.
        Raises ValueError naming the field; deprecated spellings give one
        :class:`PruneConfigDeprecationWarning` (``warn=False``: none)."""
        if isinstance(d, PruneConfig):
            return d
        if d is None or 'target_rate' not in dict(d):
            raise ValueError('SemiPruneRecognizerGCN needs prune_cfg with a target_rate, e.g. '
                             "model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', "
                             "prune_cfg=dict(target_rate=0.9, mode='semi'))")
        d, notes = migrate(dict(d))
        unknown = set(d) - set(cls.keys())
        if unknown:
            raise _unknown(unknown, list(cls.keys()), 'prune_cfg',
                           hint={k: f'prune_cfg.ablation.{k}' for k in Ablation.keys()})
        if notes and warn:
            # issued from this line (stacklevel 1): Python's default filter shows it once per process, although
            # the tools validate prune_cfg before the model validates it again
            warnings.warn(' '.join(f'{n}.' for n in notes) + ' The old spellings keep working for one release.',
                          PruneConfigDeprecationWarning)
        d = {k: v if isinstance(v, PruneSchedule) else copy.deepcopy(v) for k, v in d.items()}
        d['ablation'] = Ablation.from_dict(d.get('ablation'))
        cfg = cls(**d)
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
        _choice(self.scorer, 'scorer', tuple(SCORERS))
        _choice(self.allocation, 'allocation', ALLOCATIONS)
        self.channel_floor = _number(self.channel_floor, 'channel_floor', 0.0, 1.0, hi_open=True)
        _flag(self.cuda_graphs, 'cuda_graphs')
        self.ablation = Ablation.from_dict(self.ablation) if not isinstance(self.ablation, Ablation) else self.ablation
        self.ablation.validate()
        if self.target_macs is not None:
            self.target_macs = check_fraction(self.target_macs, 'prune_cfg.target_macs')
        elif self.channel_floor > 0:
            raise ValueError('prune_cfg.channel_floor bounds the channels the compute target removes: it needs '
                             'target_macs (e.g. target_macs=0.4)')
        check_update_every(self.update_every)
        self.distill = _check_distill(self.distill)
        _check_groups(self.groups)
        if SCORERS[self.scorer].random and not self.oneshot:
            raise ValueError("prune_cfg.scorer='random' decides a random mask at the first step: it needs "
                             "schedule='oneshot'")
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
        if self.gates == 'latent' and not get_mode(self.mode).gated:
            raise ValueError(f"prune_cfg.gates='latent' needs mode='semi' (mode {self.mode!r} has no gates)")
        if self.gates == 'latent' and self.ablation.gate_init != 0.0:
            raise ValueError("prune_cfg.gate_init initialises gate logits; with gates='latent' there are none: "
                             'drop gate_init')

    # -- schedule -------------------------------------------------------------------------------------
    @property
    def oneshot(self) -> bool:
        """``schedule='oneshot'``: the masks are decided at the first step."""
        return self.schedule == 'oneshot'

    def parse_schedule(self):
        """(PruneSchedule with the fractions given, dict of the keys given in iterations/epochs)."""
        s = self.schedule
        if isinstance(s, PruneSchedule):
            return s, {}
        if isinstance(s, str):
            if s not in NAMED_SCHEDULES:
                raise ValueError(f'unknown prune_cfg.schedule {s!r}; give dict(warmup=..., freeze=...) or one of '
                                 f'{", ".join(map(repr, NAMED_SCHEDULES))}')
            return PruneSchedule(**NAMED_SCHEDULES[s]), {}
        if not isinstance(s or {}, dict):
            raise ValueError(f'prune_cfg.schedule must be a dict or {", ".join(map(repr, NAMED_SCHEDULES))}, got {s!r}')
        d = dict(s or {})
        units = {k: d.pop(k) for k in SCHEDULE_UNITS if k in d}
        for k, v in units.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f'prune_cfg.schedule.{k} must be a non-negative integer, got {v!r}')
        try:
            sched = PruneSchedule(**d)
        except TypeError as e:
            raise ValueError(f'bad prune_cfg.schedule {s!r}: {e}; keys are warmup, freeze, hard, tau_start, '
                             f'tau_end, {", ".join(SCHEDULE_UNITS)}') from None
        return sched, units

    def build_schedule(self) -> PruneSchedule:
        """The run's :class:`PruneSchedule` (keys in iterations/epochs are set by :meth:`resolve_schedule`)."""
        return self.parse_schedule()[0]

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


def _default_text(f) -> str:
    if 'default' in f.metadata:
        return f.metadata['default']
    return f'`{f.default!r}`' if isinstance(f.default, str) else str(f.default)


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
