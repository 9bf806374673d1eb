"""SemiPruner: installs the cascaded masks on a model and drives them through training.

Typical use (any ``nn.Module``)::

    cfg = PruneConfig.from_dict(dict(target_rate=0.9, mode='semi'))  # or SemiPruner(model, specs, 0.9, mode=...)
    pruner = SemiPruner(model, [PruneSpec('features.0', groups=['out']), ...], cfg)
    for it in range(n):
        pruner.set_progress(it / n)              # temperature, scheduled rate, thresholds, freeze
        loss = task_loss(model(x)) + pruner.budget_loss()
        ...
    pruner.freeze()                              # if the schedule did not already
    print(pruner.report())

The pruner is an ``nn.Module`` only to keep its schedule state in buffers (saved in checkpoints);
the model is *not* registered as its child. All mask state lives next to the pruned parameters.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import contextlib

import torch
from torch import nn

from .budget import BudgetRegularizer, solve_thresholds
from .config import GATE_PRICES, PruneConfig, auto_update_every, check_fraction, check_rate  # noqa: F401
from .cascade import SemiMask
from .compute import Allocation
from .finalize import LiveRegions, consistent_masks, harden
from .fused.batch import SoftBatch
from .fused.cudagraph import GraphedSearch
from .latent_gate import refresh_latent_gates, use_latent_gates
from .learned_thresholds import budget_fraction, hard_kept_fraction, sync_bands, use_learned_bands
from .rank import rank_surrogate
from .reparam import install_mask, is_masked
from .scorers import build_scorer

__all__ = ['PruneSpec', 'SemiPruner', 'check_rate', 'check_fraction', 'GATE_PRICES']

_NO_CONFIG = object()


@dataclass
class PruneSpec:
    """Prune ``<module>.<param>`` with the given coarse groups (e.g. ``['out:fold=3']``)."""
    module: str
    param: str = 'weight'
    groups: Sequence = field(default_factory=lambda: ['out'])


def _fill_all(tensors, value: float) -> None:
    """t.fill_(value) for every (0-dim) tensor of the list in two foreach operators (0·t + value is exactly
    value for the finite buffers written here)."""
    torch._foreach_zero_(tensors)
    torch._foreach_add_(tensors, value)


def _config_of(config, kwargs) -> PruneConfig:
    """The validated :class:`PruneConfig` of ``SemiPruner(model, specs, config, **kwargs)``."""
    if isinstance(config, PruneConfig):
        if kwargs:
            raise TypeError(f'SemiPruner got a PruneConfig and the keyword arguments {sorted(kwargs)}; '
                            'set them in the config (PruneConfig.from_dict) instead')
        return config
    if isinstance(config, dict):
        return PruneConfig.from_dict(dict(config, **kwargs))
    d = dict(kwargs)
    if config is not _NO_CONFIG:
        if 'target_rate' in d:
            raise TypeError('SemiPruner got target_rate twice (positional and keyword)')
        d['target_rate'] = config
    if 'target_rate' not in d:
        raise TypeError('SemiPruner needs a PruneConfig or a target_rate, e.g. SemiPruner(model, specs, 0.9)')
    return PruneConfig.from_dict(d, warn=False)  # the keyword API names the ablation switches flat


class SemiPruner(nn.Module):
    """Args:
        model: the module to prune (masks are installed in place).
        specs: list of :class:`PruneSpec` (or dicts with the same keys).
        config: the validated :class:`~.config.PruneConfig` (``PruneConfig.from_dict(prune_cfg)``), a
            ``prune_cfg`` dict, or the target rate alone (a float) with the other keys as keyword arguments.
        channel_sets: list of :class:`~.topology.ChannelSet` for consistency, reports and export.
        **kwargs: without a config object, the keys of :class:`~.config.PruneConfig` (``mode='structured'``,
            ``schedule=PruneSchedule(...)`` or a dict ...). The flat names of the ablation switches
            (``hard_phase=False`` for ``ablation=dict(hard_phase=False)``) and the scorer flags
            (``normalize=False`` for ``scorer='magnitude'``, ``group_stat='l1'`` for ``scorer='l1'``) are
            accepted here as well.

    Every key is described in :class:`~.config.PruneConfig`; what the pruner computes for some of them:

    - ``gate_price_by``: the gate price term P, with μ = ``gate_price`` (ours):
      'params': P_p = Σ_g g_g·n_g·c·Δ_g / N with Δ_g = mean_{i∈g}(ψ_G − ψ_e) detached: each gate is pushed
      towards whichever mask keeps less of its group (weak groups → removed whole, strong groups → thinned
      entry-wise); 'macs': P_m = Σ_g g_g·(ψ̄_G,g − 1)·F_g / M with F_g the MACs freed by removing group g
      whole (its producer rows, its consumer columns and its adjacency aggregation,
      :func:`~.compute.group_prices`) and M the dense MACs: in export only a group removed whole frees
      compute (needs :meth:`profile`); 'both' (default): P = P_p + P_m.
    - ``target_macs``: hard masks (hard phase and freeze) remove whole channels, weakest per freed MAC first,
      until the MACs left after channel removal are ≤ target_macs·dense (:func:`~.compute.project_macs`).
      Needs channel sets and :meth:`profile`.
    - ``ablation.soft_projection`` (with ``target_macs``, ours): at every mask update of the soft phase the
      consistent, projected hard masks are computed as in the hard phase (compute budget ramped with the
      rate, 1 − (1 − target_macs)·r(p)/r), the thresholds are left where that meets the rate, and the soft
      mask is multiplied by the live region K of those masks (0 on their all-zero rows and columns):
      ψ ← ψ ⊙ K.
    - ``update_every`` (ours; as RigL / GMP update masks every ΔT steps): the threshold search and the
      consistent (projected) hard masks are recomputed at the first step of a phase, every N-th step after
      it, and whenever the scheduled rate moved by ≥ 0.01 since the last recomputation (so the warm-up ramp
      is followed step by step); in between, the soft masks keep their thresholds (ψ still follows the
      latents and the temperature), the hard phase keeps its masks, the soft projection K and its
      thresholds. 'auto': 1 until :meth:`set_run_length` gives the run's length (the recognizer calls it at
      the first step), then max(1, freeze·max_iters // 1000).
    - ``cuda_graphs``: on CUDA the soft phase's threshold search is one replay of a captured CUDA graph
      (:mod:`.fused.cudagraph`; same kernels, same thresholds); not with ``target_macs``; ignored on the CPU.
    - ``thresholds='learned'``: trained band positions, the search only at the freeze
      (:mod:`.learned_thresholds`; no hard phase, not with ``target_macs``); ``gates='latent'``: gates computed
      from the latent (:mod:`.latent_gate`; ``mode='semi'``); ``rank_weight``: the MAC-priced live row / column
      surrogate of :mod:`.rank`. With either of the first two the masks take the per-tensor reference path (the
      fused batched soft masks and the CUDA-graph search do not apply).
    - ``scorer='random'`` (one-shot only): gates and masks decided on random latents, see :meth:`_scored_latents`.
    """

    def __init__(self, model: nn.Module, specs, config=_NO_CONFIG, channel_sets=None, **kwargs):
        super().__init__()
        cfg = _config_of(config, kwargs)
        if cfg.target_macs is not None and not channel_sets:
            raise ValueError('target_macs needs channel sets (physical channel removal): they are declared for '
                             "ST-GCN, ST-GCN++, AAGCN and CTR-GCN; drop target_macs for this backbone")
        abl = cfg.ablation
        self.config = cfg
        self.target_rate, self.mode, self.cost, self.layer_floor = cfg.target_rate, cfg.mode, cfg.cost, cfg.layer_floor
        self.gate_price, self.gate_price_by, self.gate_init = cfg.gate_price, cfg.gate_price_by, abl.gate_init
        self.hard_phase, self.target_macs = abl.hard_phase, cfg.target_macs
        self.allocation = Allocation(cfg.allocation, cfg.channel_floor)
        self.scorer = build_scorer(cfg.scorer)
        self.schedule = cfg.build_schedule()
        self.regularizer = BudgetRegularizer(cfg.budget_weight)
        self.channel_sets = list(channel_sets or [])
        self._init_state(cfg)
        object.__setattr__(self, '_model', model)
        self._items = []  # (key, module, pname, SemiMask)
        for mod, spec, mask in self._resolve(model, specs):
            install_mask(mod, spec.param, mask, spec.module)
            self._items.append((f'{spec.module}.{spec.param}', mod, spec.param, mask))
        if self._learned:
            use_learned_bands(self.masks, cfg.layer_floor, self.schedule.tau_start)
        if self._latent_gates:
            use_latent_gates(self.masks)
        self._batch = None
        self._link_batch()

    def _init_state(self, cfg: PruneConfig) -> None:
        """Buffers (saved in checkpoints) and host-side state of the schedule and the mask searches."""
        self.register_buffer('progress', torch.tensor(0.0))
        self.register_buffer('rate_now', torch.tensor(0.0))
        self.register_buffer('profiled', torch.tensor(False))
        self._is_profiled = False  # host-side mirror of ``profiled`` (no device sync per step)
        self.register_buffer('frozen_at', torch.tensor(-1.0))  # progress at which masks were frozen
        self.register_buffer('gates_initialised', torch.tensor(self.gate_init != 'score'))
        self._gates_ready = self.gate_init != 'score'  # host-side mirror of gates_initialised (no sync per step)
        self.soft_projection = cfg.ablation.soft_projection and cfg.target_macs is not None
        self._hard_asked = None  # hard phase: the rate asked of the threshold search at the last step
        self._soft_asked = None  # soft projection: the same, in the soft phase
        self._soft_rate = None  # ... and the scheduled rate it was asked for
        self._soft_slope = 1.0  # d asked / d rate between the last two updates (the next warm start's step)
        self._update_auto = cfg.update_every == 'auto'
        self.update_every = 1 if self._update_auto else cfg.update_every
        self._updated_at = None  # (phase, scheduled rate, steps since) of the last mask recomputation
        self.projection_search = cfg.ablation.projection_search
        self.cuda_graphs = bool(cfg.cuda_graphs)
        self._learned = cfg.thresholds == 'learned'  # .learned_thresholds
        self._latent_gates = cfg.gates == 'latent'  # .latent_gate
        self.rank_weight = cfg.rank_weight  # .rank
        # soft-phase search by graph replay (CUDA); latent gates are re-evaluated every step (new tensors a captured
        # graph would not read): the eager search
        self._graphed = GraphedSearch() if self.cuda_graphs and cfg.gates == 'param' else None
        self._keep_flat = None  # soft projection: K of every mask, flattened and concatenated (SoftBatch)
        self._live = None  # LiveRegions of the masks (static ids, built at the first projection)
        self.hard_stats = {}  # hard phase: asked / achieved rate of the last hard masks
        self._prices = None  # gate_price_by 'macs'/'both': per-mask (G,) MACs freed, cached after profiling

    def _resolve(self, model: nn.Module, specs):
        """(module, spec, mask) of every spec, all validated before the model is touched."""
        modules = dict(model.named_modules())
        if not specs:
            raise ValueError('nothing to prune: the list of prunable tensors is empty')
        specs = [PruneSpec(**s) if isinstance(s, dict) else s for s in specs]
        abl, resolved = self.config.ablation, []
        for spec in specs:
            if spec.module not in modules:
                close = [n for n in modules if n.endswith(spec.module.split('.')[-1])][:5]
                raise ValueError(f'no module named {spec.module!r} in the model; '
                                 f'similar names: {close or "none"}')
            mod = modules[spec.module]
            p = mod._parameters.get(spec.param)
            if p is None:
                have = [n for n, v in mod._parameters.items() if v is not None]
                raise ValueError(f'cannot prune {spec.module}.{spec.param}: {type(mod).__name__} has no '
                                 f'parameter {spec.param!r} (it has {have})')
            if is_masked(mod, spec.param) or any(r[0] is mod and r[1].param == spec.param for r in resolved):
                raise ValueError(f'{spec.module}.{spec.param} is listed twice or already masked')
            mask = SemiMask(p.shape, spec.groups, self.mode, name=f'{spec.module}.{spec.param}',
                            normalize=self.scorer.normalize, group_stat=self.scorer.group_stat,
                            gate_init=0.0 if self.gate_init == 'score' else self.gate_init,
                            mask_bias=abl.mask_bias and spec.param == 'weight', gate_relative=abl.gate_relative)
            resolved.append((mod, spec, mask.to(p.device)))
        return resolved

    def _link_batch(self):
        """All soft masks in one pass (:class:`~.fused.batch.SoftBatch`): link every mask to this pruner's batch
        (again after a deep copy, which drops the link)."""
        self._batch = SoftBatch(self)
        for m in self.masks:
            m._batch = self._batch

    # -- access ---------------------------------------------------------------------------------------
    @property
    def masks(self) -> List[SemiMask]:
        return [m for *_, m in self._items]

    def items(self):
        """List of (key, SemiMask, latent)."""
        return [(k, m, mod._parameters[p]) for k, mod, p, m in self._items]

    @property
    def frozen(self) -> bool:
        return all(m._is_frozen for m in self.masks)

    @property
    def in_hard_phase(self) -> bool:
        return any(m._hard_on for m in self.masks)

    @property
    def phase(self) -> str:
        """Kind of the masks now: 'soft', 'hard' (hard phase) or 'frozen'."""
        return 'frozen' if self.frozen else 'hard' if self.in_hard_phase else 'soft'

    def phase_at(self, p: float) -> str:
        """Kind of the masks that :meth:`set_progress` (p) gives."""
        s = self.schedule
        if self.frozen or s.frozen(p):
            return 'frozen'
        hard = self.hard_phase and not self._learned  # learned bands: no hard phase (.learned_thresholds)
        return 'hard' if hard and s.in_hard_phase(p) and s.rate(p, self.target_rate) > 0 else 'soft'

    # -- schedule --------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_progress(self, p: float):
        """Move to progress p ∈ [0, 1]: temperature, scheduled rate, thresholds; freeze when due."""
        p = float(min(max(p, 0.0), 1.0))
        self.progress.fill_(p)
        if self._batch is None:
            self._link_batch()
        self._batch.clear()  # thresholds and temperatures move: the next forward recomputes ψ
        if self.frozen:
            self.rate_now.fill_(self.target_rate)
            return
        phase = self.phase_at(p)
        with self._scored_latents():  # scorer 'random': gates and masks decided on random latents
            if not self._gates_ready:  # before a one-shot freeze too (semi one-shot: gates from scores)
                self._init_gates_from_scores()
            if self._latent_gates:  # this step's hard decisions, from the current latents
                refresh_latent_gates(self.items())
            if phase == 'frozen':
                self.freeze()
                return
        tau = self.schedule.tau(p)
        _fill_all([m.temperature for m in self.masks], tau)  # one operator per list, no host sync
        _fill_all([m.gate_temperature for m in self.masks], tau / self.schedule.tau_start)
        rate = self.schedule.rate(p, self.target_rate)
        self.rate_now.fill_(rate)
        if phase == 'hard':
            if not self._update_due('hard', rate):  # keep the last consistent hard masks
                return
            for m in self.masks:  # gate decisions are final from the start of the hard phase
                m.gate.snapshot()
                m.gate.freeze()
            self._set_keep(None)
            start = self._hard_asked if self._hard_asked is not None else self._soft_asked
            masks, asked, achieved = consistent_masks(self.items(), rate, self.layer_floor, self.channel_sets,
                                                      target_macs=self.target_macs, start=start,
                                                      secant=self._secant(), allocation=self.allocation)
            self._hard_asked = asked
            for key, m, _ in self.items():
                m.set_hard(masks[key])
            self.hard_stats = dict(asked=asked, achieved=achieved)
            return
        for m in self.masks:
            m.set_hard(None)
        if rate > 0 and self.soft_projection and self._is_profiled:
            if self._update_due('projection', rate, force=self._keep_flat is None):
                self._project_soft(rate)
            # else: K and the thresholds of the last recomputation, as the plain soft phase keeps its thresholds
            # (the rate has moved by < 0.01 since; re-solving them every step cost ~230 operators per step)
            return
        self._set_keep(None)
        if self._learned:  # trained band positions: no search, the buffers follow them
            sync_bands(self.items())
            return
        if rate > 0:
            if self._update_due('soft', rate):  # else: the thresholds of the last search
                items = [(m, w) for _, m, w in self.items()]
                if self._graphed is not None:  # CUDA: one graph replay (core/fused/cudagraph.py); eager elsewhere
                    self._graphed(items, rate, self.layer_floor)
                else:
                    solve_thresholds(items, rate, self.layer_floor, stats=False)
        else:
            self._updated_at = None
            torch._foreach_zero_([m.thr_entry for m in self.masks] + [m.thr_group for m in self.masks])

    @contextlib.contextmanager
    def _scored_latents(self):
        """With ``scorer='random'`` (one-shot only): every latent tensor is replaced by standard normal draws of
        the global torch RNG (the run's seed) while the gates and masks are decided, then restored, so the
        masks are a random draw under exactly the rules (rate, gates, ``target_macs``, consistency) of the
        magnitude masks, and the kept weights keep their trained values."""
        if not self.scorer.random:
            yield
            return
        latents = [w for _, _, w in self.items()]
        saved = [w.detach().clone() for w in latents]
        try:
            for w in latents:
                w.detach().copy_(torch.randn_like(w))
            yield
        finally:
            for w, v in zip(latents, saved):
                w.detach().copy_(v)

    def _secant(self) -> bool:
        """Whether the consistent masks' search takes the secant step (``projection_search``)."""
        search = self.projection_search
        if search == 'auto':
            search = 'secant' if self.target_macs is not None else 'bisect'
        return search == 'secant' or self.update_every > 1

    def set_run_length(self, max_iters: int) -> int:
        """update_every='auto': the interval for a run of ``max_iters`` steps (see the class docstring)."""
        if self._update_auto:
            self.update_every = auto_update_every(self.schedule.freeze, int(max_iters))
        return self.update_every

    def _update_due(self, phase: str, rate: float, force: bool = False) -> bool:
        """Whether this step recomputes the masks of ``phase`` (see ``update_every``; ``force``: it must, e.g. no
        live region yet); counts the step and restarts the count at a recomputation."""
        last = self._updated_at
        due = (force or last is None or last[0] != phase or last[2] + 1 >= self.update_every
               or abs(rate - last[1]) >= 0.01)
        self._updated_at = (phase, rate, 0) if due else (phase, last[1], last[2] + 1)
        return due

    @torch.no_grad()
    def _project_soft(self, rate: float) -> None:
        """soft_projection: thresholds and live regions K from the consistent, projected hard masks.

        Warm start of the secant search (``projection_search`` 'secant', the default with a compute target): the
        previous update's asked rate moved along the scheduled rate's change by the slope d asked / d rate of the
        last two updates (first update: asked / rate; a slope outside [0, 2] falls back to it). While the rate
        ramps up the unmoved start missed at every step (3.1 probes per step on the NTU ST-GCN, warm-up ramp,
        target_macs 0.4; now 1.5); in the steady state (the rate unchanged) the start is the previous asked rate
        as before. The published bisection ('bisect') keeps its unmoved start."""
        macs = 1.0 - (1.0 - self.target_macs) * rate / self.target_rate
        # with an update interval the soft phase accepts ±0.005 of the rate (its rate is approximate anyway; the hard
        # phase and the freeze meet it to 1e-3): measured on the NTU ST-GCN, 1e-3 took 7-11 probes per update
        start, prev, secant = self._soft_asked, self._soft_rate, self._secant()  # asked / rate are set together
        if secant and prev is not None and rate != prev:
            start = min(max(start + self._soft_slope * (rate - prev), 0.0), rate)
        masks, asked, _ = consistent_masks(self.items(), rate, self.layer_floor, self.channel_sets,
                                           target_macs=macs, start=start,
                                           tol=1e-3 if self.update_every == 1 else 5e-3, secant=secant,
                                           allocation=self.allocation)
        if prev is not None and abs(rate - prev) > 1e-6:
            slope = (asked - self._soft_asked) / (rate - prev)
            self._soft_slope = slope if 0.0 <= slope <= 2.0 else asked / rate
        else:
            self._soft_slope = asked / rate if rate > 0 else 1.0
        self._soft_asked, self._soft_rate = asked, rate
        items = self.items()
        flat = torch._C._nn.flatten_dense_tensors([masks[key] for key, _, _ in items])  # one operator
        dev = flat.device
        if self._live is None or self._live.rowid.device != dev or self._live.shapes != [m.shape for m in self.masks]:
            self._live = LiveRegions([m.shape for m in self.masks], dev)
        self._set_keep(self._live(flat))  # live_region of every mask, in one pass

    def _set_keep(self, keeps) -> None:
        """K of every mask (None: none), the flat (N,) float32 vector of all of them. The masks keep views of
        one flat vector, which later updates overwrite in place."""
        if keeps is None:
            if self._keep_flat is not None:
                for m in self.masks:
                    m.set_keep(None)
                self._keep_flat = None
            return
        old = self._keep_flat
        if old is not None and old.shape == keeps.shape and old.device == keeps.device and all(
                m._keep is not None and m._keep.untyped_storage().data_ptr() == old.untyped_storage().data_ptr()
                for m in self.masks):
            old.copy_(keeps)  # the masks still hold views of it: they follow
            return
        self._keep_flat = keeps
        for m, k in zip(self.masks, keeps.split([m.mask.numel() for m in self.masks])):
            m.set_keep(k.view(m.shape))  # a view of the flat vector the batched masks read

    @torch.no_grad()
    def _init_gates_from_scores(self):
        """gate_init='score': γ_g = (median(s) − s_g)/std(s) per tensor from the first grouping's score s_g of
        the current (e.g. pretrained) latents: weak groups start structured (g > ½, removed whole), strong
        groups entry-wise (thinned inside)."""
        for _, m, w in self.items():
            if not m.prune_mode.gated:
                continue
            s = m.first_group_scores(w)
            spread = s.std().clamp_min(1e-6) if s.numel() > 1 else s.new_tensor(1.0)
            m.gate.init_logits((s.median() - s) / spread)
        self.gates_initialised.fill_(True)
        self._gates_ready = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._gates_ready = bool(self.gates_initialised)
        self._is_profiled = bool(self.profiled)

    def budget_loss(self) -> torch.Tensor:
        """R = λ((Σ c·ψ − (1 − r_now)N)/N)² on the soft masks of the last forward; 0 once frozen."""
        if self.frozen or self.in_hard_phase:  # hard masks at the exact rate: nothing to regularize
            return self._gate_touch()
        c = self._batch.current(self.masks) if self._batch is not None else None
        if self._learned:  # .learned_thresholds: the hard kept cost, with a gradient that reaches the bands
            soft = self.regularizer.kept_fraction(self.masks)
            frac = None if soft is None else budget_fraction(soft, self.items(), self.schedule.tau_start)
            loss = self.regularizer(self.masks, self.rate_now, frac=frac)
        elif c is not None:  # every mask's ψ of the last forward is a slice of one batched evaluation
            loss = self.regularizer(self.masks, self.rate_now, frac=self._batch.kept_fraction(c))
        else:
            loss = self.regularizer(self.masks, self.rate_now)  # a tensor: no host sync
        if self.gate_price > 0:
            loss = loss + self.gate_price * self._gate_price_term(c)
        if self.rank_weight > 0:
            loss = loss + self.rank_weight * rank_surrogate(self.masks)
        return loss

    def _gate_touch(self) -> torch.Tensor:
        """0·Σγ over all learned gates (one cat, one sum): once the masks are stored the forward no longer reads
        the gates, but DDP (find_unused_parameters=False) expects every parameter in the graph (the single place
        that keeps them there). Outside a distributed run nothing expects them: no touch (its cat, views and
        gradient copies were ~5 operators per mask, 475 per frozen CTR-GCN step; the stored gate decisions, not
        the logits, are what a frozen mask and its report read)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return torch.zeros((), device=self.masks[0].mask.device)
        logits = [m.gate.logit for m in self.masks if m.gate.mode == 'learned']
        if not logits:
            return torch.zeros(())
        return torch.cat([g.reshape(-1) for g in logits]).sum() * 0.0

    def _gate_price_term(self, batch=None) -> torch.Tensor:
        """P of ``gate_price_by`` (see the class docstring) over the semi masks of the last forward (``batch``:
        their batched evaluation, :meth:`~.fused.batch.SoftBatch.current`)."""
        if batch is not None and batch.gate is not None:
            return self._batch.gate_price(batch, self.gate_price_by,
                                          self._mac_prices() if self.gate_price_by in ('macs', 'both')
                                          and self._is_profiled else None)
        semi = [(k, m) for k, m in zip([k for k, *_ in self._items], self.masks)
                if m.prune_mode.gated and m.last_delta is not None]
        if not semi:
            return torch.zeros(())
        term = 0.0
        if self.gate_price_by in ('params', 'both'):
            costs = torch.stack([m.cost for m in self.masks])  # tensors: no host sync per mask
            share = costs / sum(c * m.mask.numel() for c, m in zip(costs.unbind(), self.masks))
            share = dict(zip(map(id, self.masks), share.unbind()))
            for _, m in semi:
                n_g = m.gsize0.to(m.last_delta.dtype)
                term = term + (m.gate(m.gate_temperature) * m.last_delta * n_g).sum() * share[id(m)]
        if self.gate_price_by in ('macs', 'both') and self._is_profiled:
            prices, total = self._mac_prices()
            for k, m in semi:
                f = prices[k].to(m.last_group.dtype)
                term = term + (m.gate(m.gate_temperature) * (m.last_group - 1.0) * f).sum() / total
        return term if torch.is_tensor(term) else torch.zeros(())

    def _mac_prices(self):
        if self._prices is None:
            from .compute import dense_macs, group_prices
            items = self.items()
            self._prices = (group_prices(items, self.channel_sets), max(dense_macs(items, self.channel_sets), 1e-9))
        return self._prices

    @torch.no_grad()
    def freeze(self, rate: Optional[float] = None):
        """Harden all masks at ``rate`` (default: the target) with topological consistency."""
        rate = self.target_rate if rate is None else check_rate(rate, 'rate')
        learned_kept = hard_kept_fraction(self.items()) if self._learned and not self.frozen else None
        if rate == self.target_rate and self.masks and all(m._hard_on for m in self.masks):
            for m in self.masks:  # the hard phase's last masks, exactly as trained
                m.freeze()
            stats = dict(self.hard_stats, from_hard_phase=True)
        else:
            stats = harden(self.items(), rate, self.layer_floor, self.channel_sets, target_macs=self.target_macs,
                           allocation=self.allocation)
        if learned_kept is not None:  # the hard kept cost the learned bands met by themselves, before the projection
            stats = dict(stats, learned_kept=learned_kept)
            self.hard_stats = stats
        self._set_keep(None)
        self.rate_now.fill_(rate)
        self.frozen_at.fill_(float(self.progress))
        return stats

    # -- costs -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def profile(self, run: Callable[[], object]):
        """Record per-entry MACs of every masked tensor by running ``run()`` once (forward hooks):
        a conv/linear weight entry is applied once per output position (T'·V); an adjacency entry
        once per output channel and frame (C·T). Sets each mask's ``cost`` buffer when cost='flops'."""
        seen = {}
        hooks = []
        for key, mod, pname, m in self._items:
            def hook(module, inp, out, key=key, pname=pname):
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if isinstance(module, nn.Linear):  # applied once per leading position of (N, ..., F)
                    seen[key] = out[0].numel() // out.shape[-1] if out.dim() > 2 else 1
                elif pname == 'weight' and out.dim() >= 2:  # conv: once per output position
                    seen[key] = out[0, 0].numel()
                else:  # adjacency (..., V, V) feeding an (N, C, T, V) output
                    seen[key] = out[0].numel() // out.shape[-1]
            hooks.append(mod.register_forward_hook(hook))
        try:
            run()
        finally:
            for h in hooks:
                h.remove()
        missing = [k for k, *_ in self._items if k not in seen]
        if missing:
            raise RuntimeError(f'profiling did not reach {missing[:3]}...: these tensors are not used in '
                               'the forward pass; remove them from the prunable list')
        for key, mod, pname, m in self._items:
            m.macs.fill_(float(seen[key]))
            if self.cost == 'flops':
                m.cost.fill_(float(seen[key]))
        self.profiled.fill_(True)
        self._is_profiled = True
        return seen

    def report(self):
        from .report import prune_report
        return prune_report(self)
