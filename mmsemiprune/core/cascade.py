"""The cascaded mask ψ(Ŵ) of one prunable tensor: band-stop → weight sharing → gate.

Given the latent tensor Ŵ (the stock parameter itself, e.g. ``conv.weight``), with
``x = Ŵ / rms(Ŵ)`` (per-tensor normalisation, detached, so one global threshold is fair across
layers of different scale and fan-in):

    entry-wise   ψ_e = B(x; a_e, τ)                                          shape of Ŵ
    group-wise   s_k = RMS_{i∈g}(x_i) per grouping k;  ψ_G = Π_k B(s_k; a_g, τ·spread_k)[gid_k]
    semi         ψ = g ⊙ ψ_G + (1 − g) ⊙ ψ_e,   g = σ(γ/τ_g)[gid_0] (gate over the first grouping)
    structured   ψ = ψ_G            (gate fixed to 1)
    unstructured ψ = ψ_e            (gate fixed to 0)
    ctf          ψ = ψ_G ⊙ ψ_e      (the sibling paper's coarse-to-fine product)

How the parts combine, which of them a mode uses and what its hard mask is are the mode's (:mod:`.modes`).
``B`` is :func:`~.bandstop.band_stop`. ``spread_k = std_g(s_k)`` scales the group temperature to the
spread of the group statistic (group RMS values of normalised weights all sit near 1, so a weight-scale
temperature would make group masks flip in bulk). The thresholds a_e, a_g are per-tensor buffers set
by the rate controller (:mod:`.budget`); the temperature τ is a buffer set by the schedule. Once
frozen, ψ is the stored boolean mask exactly.

Hard phase (ours, ``SemiPruner(hard_phase=True)``): in the last part of the anneal the gate decisions are
frozen and the pruner writes the hard, topologically consistent mask M at the exact rate into ``mask``
every step (re-solved from the moving latents); the forward returns ψ = M, so the network trains on the
kind of mask the freeze will store, and the freeze stores the last one. No surrogate gradient flows
through ψ there: measured on SBU, a straight-through surrogate (at the annealed τ ≈ 10⁻³, or at τ₀ with
live gates) flipped gates and entries every step and drove ``loss_cls`` from 0.4 to 1.0–2.0.
"""
from typing import Optional, Sequence

import torch
from torch import nn

from .bandstop import band_stop
from .gate import Gate
from .groups import group_mean, group_rms, parse_grouping
from .modes import MODES, PruneMode, get_mode

__all__ = ['SemiMask', 'MODES']

_EPS = 1e-12


class SemiMask(nn.Module):
    """Mask module for one tensor of ``shape``. ``forward(latent) -> ψ`` (same shape as latent).

    Args:
        shape: shape of the latent tensor.
        groupings: coarse groupings (e.g. ``['out:fold=3']``); the first one carries the gate.
        mode: one of :data:`MODES` (or a registered :class:`~.modes.PruneMode`).
        name: qualified name, used in error messages and reports.
    """

    def __init__(self, shape, groupings: Sequence = ('out', ), mode: str = 'semi', name: str = '',
                 normalize: bool = True, group_stat: str = 'rms', gate_init: float = 0.0, mask_bias: bool = False,
                 gate_relative: bool = True):
        super().__init__()
        self.mask_bias = bool(mask_bias)
        self._is_frozen = False  # host-side mirror of the ``frozen`` buffer (no device sync per step)
        self._hard_on = False  # hard phase (set by the pruner every step)
        self._mask_f = self._row_f = None  # float caches of the stored mask (see _cache_hard)
        self._rows_whole = None  # frozen: host flag "no output row entirely masked" (bias_untouched), lazily
        self._keep = None  # soft projection (pruner): constant K multiplying the soft mask, or None
        if group_stat not in ('rms', 'l1'):
            raise ValueError(f"unknown group_stat {group_stat!r}; choose 'rms' (default) or 'l1' (mean |w|, "
                             'the L1-norm channel criterion of Li et al. 2017)')
        self.normalize = bool(normalize)
        self.group_stat = group_stat
        pm = get_mode(mode)
        mode = pm.name
        self.shape = tuple(int(s) for s in shape)
        self.name = name
        self.mode = mode
        groupings = [parse_grouping(g) for g in groupings]
        groupings = [g for g in groupings if g.kind != 'entry']
        if pm.groups and not groupings:
            free = ', '.join(repr(n) for n in MODES if not get_mode(n).groups)
            raise ValueError(f'{name or "tensor"}: mode {mode!r} needs at least one coarse group kind '
                             f"(e.g. groups=['out']); only {free} works without groups")
        for g in groupings:
            g.check(self.shape, name or 'tensor')
        self.groupings = groupings
        self.num_groups = []
        for k, g in enumerate(groupings):
            gid = g.group_ids(self.shape)
            self.register_buffer(f'gid{k}', gid, persistent=False)
            self.register_buffer(f'gsize{k}', torch.bincount(gid.reshape(-1)), persistent=False)  # group sizes
            self.num_groups.append(int(gid.max()) + 1)
        self.gate = Gate(self.num_groups[0] if groupings else 1, pm.gate_mode, init=gate_init, relative=gate_relative)
        self.register_buffer('temperature', torch.tensor(1.0))
        self.register_buffer('gate_temperature', torch.tensor(1.0))
        self.register_buffer('thr_entry', torch.tensor(0.0))
        self.register_buffer('thr_group', torch.tensor(0.0))
        self.register_buffer('cost', torch.tensor(1.0))   # budget cost per entry
        self.register_buffer('macs', torch.tensor(0.0))   # MACs per entry per sample (0 = not profiled)
        self.register_buffer('frozen', torch.tensor(False))
        self.register_buffer('mask', torch.ones(self.shape, dtype=torch.bool))
        self._batch = None  # the pruner's SoftBatch (all soft masks in one pass, .batch), if any
        self._lazy = None  # (batch cache, index): last_* are views of it, made when first read
        self.last_psi = None  # ψ of the last forward, reused by the budget loss
        self.last_delta = None  # semi: per-group mean(ψ_G − ψ_e) of the last forward (detached)
        self.last_group = None  # semi: per-group mean ψ_G of the last forward (detached)

    # ψ, Δ and ψ̄_G of the last forward: tensors, or views of the batched evaluation made when first read
    def _unlazy(self):
        lz = self.__dict__.get('_lazy')
        if lz is not None:
            c, i = lz
            self.__dict__['_lazy'] = None
            self._last_psi = c.psi_view(i)
            self._last_delta, self._last_group = c.group_views(i)

    def _last(name):  # noqa: N805  (property factory)
        def get(self):
            self._unlazy()
            return self.__dict__.get(name)

        def set_(self, value):  # the per-tensor path writes all three: a pending batch view is dropped
            if self.__dict__.get('_lazy') is not None:
                self.__dict__.update(_lazy=None, _last_psi=None, _last_delta=None, _last_group=None)
            self.__dict__[name] = value
        return property(get, set_)

    last_psi, last_delta, last_group = _last('_last_psi'), _last('_last_delta'), _last('_last_group')
    del _last

    def __getstate__(self):  # copies and pickles carry no link to the pruner's batch nor graph views
        state = super().__getstate__()
        # ψ / Δ / ψ̄_G of the last forward are per-step caches (graph views that deepcopy refuses): a copy
        # recomputes them at its own next forward
        state.update(_batch=None, _lazy=None, _last_psi=None, _last_delta=None, _last_group=None)
        # the threshold search's flat index of the original's mask list (fused.flat.flat_for), with the step's flat
        # latents and scores: a copy's masks are other objects and build their own
        state.pop('_sp_flat', None)
        return state

    def batched(self, latent: torch.Tensor, bias: Optional[torch.Tensor] = None):
        """(Ŵ ⊙ ψ, b ⊙ β) from the pruner's batched soft masks or, frozen / in the hard phase, its batched
        stored masks (:mod:`.fused.batch`), or None where they do not apply (no pruner, stale or foreign inputs,
        distributed training for the stored masks): then use ``latent * self(latent)``.
        ``bias``: the conv bias to mask (``mask_bias``), or None."""
        b = self.__dict__.get('_batch')
        if b is None:
            return None
        if self._is_frozen or self._hard_on:  # the stored masks: Ŵ ⊙ M of every tensor from one foreach multiply
            W = b.take_stored(self, latent)
            if W is None:
                return None
            if bias is None or self.bias_untouched():
                return W, bias
            return W, bias * self.row_keep(self.last_psi)
        c, i = b.take(self, latent)
        if c is None:
            return None
        self.__dict__['_lazy'] = (c, i)
        W = c.W[i]  # shaped as the latent
        if bias is None:
            return W, None
        if c.bias is not None and c.biases[i] is bias:
            return W, c.bias[i]
        return W, bias * self.row_keep(self.last_psi)

    @property
    def prune_mode(self) -> PruneMode:
        """The :class:`~.modes.PruneMode` of :attr:`mode`."""
        return get_mode(self.mode)

    @property
    def uses_entries(self) -> bool:
        return self.prune_mode.entries

    @property
    def uses_groups(self) -> bool:
        return self.prune_mode.groups

    def check_latent(self, latent):
        """Raise a ValueError when ``latent`` is not of the shape this mask was built for."""
        if tuple(latent.shape) != self.shape:
            raise ValueError(f'{self.name or "mask"}: latent has shape {tuple(latent.shape)} but the mask '
                             f'was built for {self.shape}; re-create the pruner after changing the model')

    def normalise(self, latent: torch.Tensor) -> torch.Tensor:
        """x = Ŵ / rms(Ŵ) with the scale detached (x = Ŵ when ``normalize=False``: raw global magnitude)."""
        if not self.normalize:
            return latent
        scale = latent.detach().pow(2).mean().sqrt().clamp_min(_EPS)
        return latent / scale

    def _coarse(self, x: torch.Tensor, tau, thr=None) -> torch.Tensor:
        thr = self.thr_group if thr is None else thr
        out = None
        for k, g in enumerate(self.groupings):
            gid = getattr(self, f'gid{k}')
            s = self._group_stat(x, gid, k)
            spread = s.detach().std().clamp_min(1e-3) if s.numel() > 1 else s.new_tensor(1.0)
            psi = band_stop(s, thr, tau * spread)[gid]
            out = psi if out is None else out * psi
        return out

    @torch.no_grad()
    def first_group_scores(self, latent: torch.Tensor) -> torch.Tensor:
        """(G,) statistic of the first grouping (the gate's groups) of the normalised |latent|."""
        self.check_latent(latent)
        return self._group_stat(self.normalise(latent.detach()).abs(), self.gid0, 0)

    def _group_stat(self, x, gid, k):
        size = getattr(self, f'gsize{k}')
        if self.group_stat == 'l1':
            return group_mean(x.abs(), gid, self.num_groups[k], size)
        return group_rms(x, gid, self.num_groups[k], size)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._is_frozen = bool(self.frozen)
        self._cache_hard()

    @torch.no_grad()
    def _cache_hard(self) -> None:
        """Float copies of the stored mask and of its rows' bias factors, so that a frozen / hard-phase step
        costs one multiply per tensor (and one for its bias) instead of casts and reductions."""
        self._mask_f = self.mask.to(torch.float32)
        self._row_f = self.row_keep(self._mask_f)
        self._rows_whole = None

    def bias_untouched(self) -> bool:
        """Frozen and no output row entirely masked: β ≡ 1, so the masked bias is the bias itself (saves two
        operators per step and tensor). One host read per freeze (or load / device move), none per step; False
        in the soft and hard phases, whose masks move."""
        if not self._is_frozen or self._mask_f is None:
            return False
        if self._rows_whole is None:
            self._rows_whole = bool(self._row_f.min() >= 1)
        return self._rows_whole

    def row_keep(self, psi: torch.Tensor) -> torch.Tensor:
        """β (shape[0],): max_i ψ[o, i] per output row, the factor of that row's bias (1 when any entry of
        the row survives, 0 when the whole row is masked)."""
        if psi is self.last_psi and self._is_stored(psi):
            return self._row_f if self._row_f.dtype == psi.dtype else self._row_f.to(psi.dtype)
        return psi.reshape(psi.shape[0], -1).amax(dim=1)

    def _is_stored(self, psi) -> bool:
        return (self._is_frozen or self._hard_on) and self._mask_f is not None and self._mask_f.device == psi.device

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        self.check_latent(latent)
        if self._is_frozen or self._hard_on:  # the stored mask, exactly
            if self._mask_f is None or self._mask_f.device != latent.device:
                self._cache_hard()
            psi = self._mask_f  # constant: the gates take part through the pruner's budget_loss
            if psi.dtype != latent.dtype:
                psi = psi.to(latent.dtype)
            self.last_psi = psi
            return psi
        b = self.__dict__.get('_batch')
        if b is not None:
            c, i = b.take(self, latent)
            if c is not None:
                self.__dict__['_lazy'] = (c, i)
                return self.last_psi
        soft = self._soft(latent)
        self.last_psi = soft
        return soft

    @torch.no_grad()
    def set_keep(self, keep: Optional[torch.Tensor]) -> None:
        """Soft phase: multiply the soft mask by the constant ``keep`` (float, latent shape; the live region of
        the projected hard masks, see ``SemiPruner(soft_projection=True)``); None removes it."""
        if keep is not None and tuple(keep.shape) != self.shape:
            raise ValueError(f'{self.name}: keep has shape {tuple(keep.shape)}, expected {self.shape}')
        self._keep = None if keep is None else keep.to(torch.float32)

    def _soft(self, latent: torch.Tensor) -> torch.Tensor:
        """The soft cascade at the annealed temperatures (⊙ K under the soft projection)."""
        psi = self._cascade(latent)
        if self._keep is not None:
            psi = psi * (self._keep if self._keep.dtype == psi.dtype else self._keep.to(psi.dtype))
        return psi

    def _cascade(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.normalise(latent)
        tau, gate_tau = self.temperature, self.gate_temperature
        te, tg = self.band_positions(latent, x)
        pm = self.prune_mode
        g = self._gate_values(x, gate_tau) if pm.gated else None
        psi_g = self._coarse(x, tau, tg) if pm.groups else None
        psi_e = band_stop(x, te, tau) if pm.entries else None
        psi = pm.combine(psi_g, psi_e, g)
        if pm.gated:
            with torch.no_grad():
                self.last_delta = group_mean(psi_g - psi_e, self.gid0, self.num_groups[0], self.gsize0)
                self.last_group = group_mean(psi_g, self.gid0, self.num_groups[0], self.gsize0)
        return psi

    def _gate_values(self, x: torch.Tensor, gate_tau) -> torch.Tensor:
        """g per entry (the latent's shape) from the gate of the first grouping."""
        if self.gate.mode == 'latent':  # .latent_gate: g from the latent itself
            return self.gate.from_latent(x, self.gid0, self.gsize0, gate_tau)[self.gid0]
        return self.gate(gate_tau)[self.gid0]

    # -- hooks of the options of .learned_thresholds and .latent_gate (off: the buffers and the γ gate) -----------
    @property
    def needs_reference(self) -> bool:
        """Learned band positions or a latent gate: the per-tensor forward is the reference and the fused batched
        soft masks (:mod:`.fused.batch`) do not apply."""
        return self._modules.get('bands') is not None or self.gate.mode == 'latent'

    def band_positions(self, latent: torch.Tensor, x: Optional[torch.Tensor] = None):
        """(a_e, a_g): the ``thr_entry`` / ``thr_group`` buffers, or with learned bands
        (:mod:`.learned_thresholds`) the quantiles of the detached scores at the trained fractions (differentiable
        in the fractions). ``x``: the normalised latent when already computed."""
        b = self._modules.get('bands')
        if b is None:
            return self.thr_entry, self.thr_group
        xa = (self.normalise(latent) if x is None else x).detach().abs()
        stats = [self._group_stat(xa, getattr(self, f'gid{k}'), k) for k in range(len(self.groupings))]
        return b(xa if self.uses_entries else None, stats)

    # -- hard masks and scores (no grad) ------------------------------------------------------------
    @torch.no_grad()
    def scores(self, latent: torch.Tensor):
        """(entry score |x|, coarse score min_k s_k[gid_k] or None), both of the latent's shape."""
        self.check_latent(latent)
        x = self.normalise(latent.detach()).abs()
        coarse = None
        for k, g in enumerate(self.groupings):
            gid = getattr(self, f'gid{k}')
            s = self._group_stat(x, gid, k)[gid]
            coarse = s if coarse is None else torch.minimum(coarse, s)
        return x, coarse

    @property
    def per_group_scores(self) -> bool:
        """True when the coarse score is constant per group of the first grouping (one grouping)."""
        return len(self.groupings) == 1

    @torch.no_grad()
    def group_scores(self, latent: torch.Tensor):
        """(|x| of the latent's shape, coarse scores, their sizes): per group of the first grouping
        ((G,), (G,)) when there is one grouping, else per entry ((numel,), ones); (None, None) without
        groupings."""
        self.check_latent(latent)
        x = self.normalise(latent.detach()).abs()
        if not self.groupings:
            return x, None, None
        if self.per_group_scores:
            s = self._group_stat(x, self.gid0, 0)
            return x, s, self.gsize0
        _, coarse = self.scores(latent)
        return x, coarse.reshape(-1), torch.ones(coarse.numel(), dtype=torch.long)

    @torch.no_grad()
    def group_decides(self) -> Optional[torch.Tensor]:
        """Boolean of the latent's shape: True where the group-wise mask decides (hard gate 1); None when the mode
        has no gate."""
        if self.prune_mode.gated:
            return self.gate.hard()[self.gid0]
        return None

    @torch.no_grad()
    def entry_decides(self) -> Optional[torch.Tensor]:
        """Boolean of the latent's shape: True where the entry-wise mask decides (hard gate 0)."""
        gd = self.group_decides()
        return None if gd is None else ~gd

    @torch.no_grad()
    def hard(self, latent: torch.Tensor, thr_entry=None, thr_group=None) -> torch.Tensor:
        """Boolean mask at the given (default: current) thresholds, τ → 0 and hard gates."""
        if self._is_frozen:
            return self.mask.clone()
        te = self.thr_entry if thr_entry is None else thr_entry
        tg = self.thr_group if thr_group is None else thr_group
        x, coarse = self.scores(latent)  # x = |x| ≥ 0: x > a_e is band_stop_hard(x, a_e)
        pm = self.prune_mode
        return pm.keep(coarse > tg if pm.groups else None, x > te if pm.entries else None, self.group_decides())

    @torch.no_grad()
    def current(self, latent: torch.Tensor) -> torch.Tensor:
        """The boolean mask the forward uses now: the stored mask when frozen or in the hard phase, else
        :meth:`hard` at the current thresholds (what the report counts)."""
        if self._is_frozen or self._hard_on:
            return self.mask.clone()
        h = self.hard(latent)
        return h if self._keep is None else h & self._keep.to(h.device).bool()

    def current_gates(self) -> torch.Tensor:
        """Boolean (G,) gate decisions of :meth:`current` (the snapshot in the hard phase)."""
        if self._hard_on:
            return self.gate.decided.clone()
        return self.gate.hard()

    @torch.no_grad()
    def set_hard(self, mask: Optional[torch.Tensor]) -> None:
        """Hard phase: use ``mask`` (bool, latent shape) as the forward value; ``None`` switches back to the
        soft mask. Snapshots the gate decisions that produced it (a no-op once the gates are frozen)."""
        if mask is None:
            self._hard_on = False
            return
        if tuple(mask.shape) != self.shape:
            raise ValueError(f'{self.name}: hard mask has shape {tuple(mask.shape)}, expected {self.shape}')
        self.mask.copy_(mask.to(torch.bool))
        self.gate.snapshot()
        self._hard_on = True
        self._cache_hard()

    @torch.no_grad()
    def freeze(self, mask: Optional[torch.Tensor] = None) -> None:
        """Store ``mask`` (bool, latent shape; default: the hard-phase mask already stored) and use it
        exactly from now on, with the gate decisions that produced it."""
        if mask is None:
            if not self._hard_on:
                raise RuntimeError(f'{self.name}: freeze() without a mask needs the hard phase to have run')
        else:
            if tuple(mask.shape) != self.shape:
                raise ValueError(f'{self.name}: frozen mask has shape {tuple(mask.shape)}, expected {self.shape}')
            self.mask.copy_(mask.to(torch.bool))
            self.gate.snapshot()
        self.gate.freeze()
        self.frozen.fill_(True)
        self._is_frozen = True
        self._hard_on = False
        self._cache_hard()

    def extra_repr(self):
        gs = ', '.join(str(g) for g in self.groupings) or 'entry'
        return f'{self.name}: shape={self.shape}, mode={self.mode}, groups=[{gs}]'
