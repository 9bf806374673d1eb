"""All soft masks of a pruner in one pass over one flat vector (issue "pruning at GPU speed").

Per tensor, the soft cascade of :class:`~mmsemiprune.core.cascade.SemiMask` costs ~40 forward + backward operators, the
bias mask, the budget sum and the gate prices another ~25: O(L) small kernels per step for L masked tensors.
:class:`SoftBatch` computes the same quantities for all L masks at once, with a number of operators that does
not grow with L except for the unavoidable per-tensor views (flatten for the concatenation, the shaped view of
each masked weight, and their backward):

    w = cat_ℓ vec(Ŵ_ℓ)                           (N,)    N = Σ_ℓ numel_ℓ; lid (N,) the tensor of each entry
    x = w / rms_ℓ[lid]                            (N,)    (x = w when normalize=False)
    ψ_e = B(x; a_e[lid], τ[lid])                  (N,)
    s_k = RMS (or mean |x|) of x over the global groups gid_k (G_k + 1,) via one index_add (+1: a dummy group
          for the entries of tensors without a k-th grouping, whose factor is set to 1)
    ψ_G = Π_k B(s_k; a_g[glid_k], τ[glid_k]·spread_k[glid_k])[gid_k],  spread_k = segment std of s_k per tensor
    g = σ(γ / (τ_g·mean|γ|_ℓ)[glid_0])            (G_0,)  γ = cat_ℓ γ_ℓ
    ψ = g[gid_0]·ψ_G + (1 − g[gid_0])·ψ_e  (semi; structured ψ_G, unstructured ψ_e, ctf ψ_G·ψ_e: the mode's
          combine, :mod:`~mmsemiprune.core.modes`)
    W = w ⊙ ψ, split back into the L shaped views;  β = segment max of ψ per output row (masked biases:
          b ⊙ β)

with the per-tensor scalars (thresholds, temperatures, costs) stacked once and expanded by static index tensors
(built once per mask list and device, :class:`~.flat.FlatIndex`). The formulas are those of
:meth:`~mmsemiprune.core.cascade.SemiMask._soft` entry by entry; only the order of float reductions differs (segment
sums instead of per-tensor sums), so ψ agrees to float rounding (tests/core/fused/test_batch.py).

When it applies: every mask of the pruner soft (not frozen, not in the hard phase), one dtype and device, one mode,
normalisation and group statistic (what :class:`~mmsemiprune.core.pruner.SemiPruner` builds), with the search's
thresholds and parameter gates (``thresholds='learned'`` and ``gates='latent'`` take the per-tensor reference path). The
first masked tensor read in a
forward computes the whole batch; every mask then takes its entry once. A mask that finds its entry already taken
(a second forward, gradient accumulation, a weight read twice) or stale (its latent, thresholds, temperatures or
gate logits changed in place since: the tensors' version counters) recomputes the batch. Anything else falls
back to the per-tensor path, which stays the reference.

Frozen and in the hard phase every mask is a stored constant M_ℓ and W_ℓ = Ŵ_ℓ ⊙ M_ℓ is one multiply per tensor
each way (2L kernels per step: 190 of CTR-GCN's 214 extra operators over stock). :meth:`SoftBatch.take_stored`
computes all of them with one ``torch._foreach_mul`` forward and one backward (:class:`_ForeachMul`), the same
products bit for bit, with the same take-once / version checks; not under distributed training (DDP reduces each
gradient bucket as the backward fills it, and one backward operator for all latents would fill them all at the end).
"""
import math
import weakref

import torch

from ..bandstop import band_stop
from ..modes import get_mode
from .flat import flat_for, flat_scale, unchanged
from .segment import expand, segment_amax, segment_sum

__all__ = ['SoftBatch', 'flat_cat', 'scaled', 'split_as']

_EPS = 1e-12


def _as(t, dtype):
    """``t`` in ``dtype`` without an operator when it already is."""
    return t if t.dtype == dtype else t.to(dtype)


def _state(m, latent):
    """Version counters of everything ψ of mask ``m`` depends on (no device work)."""
    v = (latent._version, m.thr_entry._version, m.thr_group._version, m.temperature._version,
         m.gate_temperature._version)
    logit = getattr(m.gate, 'logit', None)
    return v if logit is None else v + (logit._version, )


class _Index:
    """Static index tensors of one list of masks (and of which of them carry a masked bias) on one device."""

    def __init__(self, masks, has_bias, device):
        flat = flat_for(masks, device)
        self.flat = flat
        self.L, self.N, self.sizes = flat.L, flat.N, flat.sizes
        self.lid = flat.lid
        self.plans = {}  # segment plans of the atomic-free reductions (GPU, :mod:`.segment`), built on first use
        self.numel = flat.numel.to(torch.float32)
        self.inv_sqrt_n = (1.0 / flat.numel.sqrt()).to(torch.float32)
        self.slots = []
        for s in flat.slots:
            G = s['G']
            glid = s['glid']
            dummy = any(len(m.groupings) <= len(self.slots) for m in masks)
            # per group (G + 1,): the tensor id for gathering per-tensor scalars (dummy → 0, overwritten later) and
            # for the segment std (dummy → L, an extra segment that is dropped)
            gather = torch.cat([glid, glid.new_zeros(1)])
            seg = torch.cat([glid, glid.new_full((1, ), self.L)])
            cnt = torch.cat([s['glen'], s['glen'].new_ones(1)]).to(torch.float32)
            is_dummy = torch.zeros(G + 1, dtype=torch.bool, device=device)
            is_dummy[G] = True
            self.slots.append(dict(gid=s['gid'], size=s['size'], G=G, gather=gather, seg=seg, seg_g=seg[:-1], cnt=cnt,
                                   multi=cnt > 1, dummy=is_dummy if dummy else None,
                                   glen=s['lens']))
        # masked biases: global output-row id of every entry of a mask with a masked bias (rows in the order of the
        # biases), R (a dummy row) for the others
        self.has_bias = tuple(has_bias)
        rows, self.bias_len, R = [], [], 0
        for m, n, hb in zip(masks, self.sizes, has_bias):
            if hb:
                r = m.shape[0]
                rows.append(torch.arange(n, device=device) // (n // r) + R)
                self.bias_len.append(r)
                R += r
            else:
                rows.append(torch.full((n, ), -1, dtype=torch.long, device=device))
        self.R = R
        self.rowid = None
        if R:
            rows = torch.cat(rows)
            self.rowid = torch.where(rows < 0, R, rows)
        # static per-tensor factors of the segment std (spread_k): 1/n_ℓ and 1/max(n_ℓ − 1, 1)
        for s in self.slots:
            s['inv_cnt'] = 1.0 / s['cnt']
            s['inv_cnt1'] = 1.0 / (s['cnt'] - 1).clamp_min(1)


class _Cache:
    """One batched evaluation: the flat tensors and, per mask, whether its entry was taken."""

    def __init__(self, masks, latents, biases, grad):
        self.masks, self.latents, self.biases, self.grad = masks, latents, biases, grad
        self.states = [_state(m, w) for m, w in zip(masks, latents)]
        self.taken = [False] * len(masks)
        self._psi_views = self._group_views = None

    def fresh(self, i, latent) -> bool:
        return (not self.taken[i] and self.latents[i] is latent and self.grad == torch.is_grad_enabled()
                and self.states[i] == _state(self.masks[i], latent))

    def psi_view(self, i):
        if self._psi_views is None:
            self._psi_views = self.psi.split(self.ix.sizes)
        return self._psi_views[i].view(self.masks[i].shape)

    def group_views(self, i):
        """(last_delta, last_group) of mask i: (G_ℓ,) views, or (None, None) outside semi."""
        if self.delta is None:
            return None, None
        if self._group_views is None:
            lens = self.ix.slots[0]['glen'] + [1]
            self._group_views = (self.delta.split(lens), self.group.split(lens))
        return self._group_views[0][i], self._group_views[1][i]

    def __deepcopy__(self, memo):  # graph tensors of one step: never copied with a model
        return None

    def __reduce__(self):
        return type(None), ()


def _distributed() -> bool:
    d = torch.distributed
    return d.is_available() and d.is_initialized() and d.get_world_size() > 1


class _ForeachMul(torch.autograd.Function):
    """(W_1, ..., W_L) = (Ŵ_1 ⊙ M_1, ..., Ŵ_L ⊙ M_L) for constant masks M: one ``_foreach_mul`` forward and one
    backward (∂/∂Ŵ_ℓ = grad_ℓ ⊙ M_ℓ, the product autograd's per-tensor multiply computes; torch's own derivative of
    ``_foreach_mul`` runs one multiply per tensor)."""

    @staticmethod
    def forward(ctx, n, *tensors):
        ctx.psis = tensors[n:]
        return tuple(torch._foreach_mul(list(tensors[:n]), list(tensors[n:])))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        return (None, ) + tuple(torch._foreach_mul(list(grads), list(ctx.psis))) + (None, ) * len(ctx.psis)


class _FlatCat(torch.autograd.Function):
    """cat_ℓ vec(t_ℓ) (N,) by one ``flatten_dense_tensors`` (what DDP's buckets use), whose backward hands every input
    its part of the flat gradient, shaped, by one ``unflatten_dense_tensors``: 2 operators dispatched from Python
    instead of autograd's reshape + narrow + reshape per input (66 for 22 tensors). The same values; every
    gradient is a view of the flat one, as ``cat``'s own backward gives. ``pre``: None, or ``[flat]`` when that cat
    was already made this step (the threshold search's, :func:`~.flat.flat_scores`): a view of it, no copy."""

    @staticmethod
    def forward(ctx, pre, *tensors):
        ctx.like = tensors
        if pre is not None:
            return pre[0].view_as(pre[0])
        return torch._C._nn.flatten_dense_tensors(list(tensors))

    @staticmethod
    def backward(ctx, grad):
        return (None, ) + tuple(torch._C._nn.unflatten_dense_tensors(grad, list(ctx.like)))


class _Scaled(torch.autograd.Function):
    """x = w / s (N,) for a per-entry scale s without gradient, whose value the threshold search computed this step
    from the same latents (``pre = [x, s]``): a view of it forward, ``grad / s`` backward (what autograd's division
    gives), instead of a second gather of s and divide over all entries."""

    @staticmethod
    def forward(ctx, w, pre):
        ctx.s = pre[1]
        return pre[0].view_as(pre[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return grad / ctx.s, None


class _SplitAs(torch.autograd.Function):
    """The flat (N,) tensor as views shaped like ``like`` (one ``unflatten_dense_tensors``), whose backward is one
    ``flatten_dense_tensors`` of the gradients: 2 operators instead of split + a view per output forward and a
    reshape per output + cat backward."""

    @staticmethod
    def forward(ctx, flat, *like):
        ctx.n = len(like)
        return tuple(torch._C._nn.unflatten_dense_tensors(flat, list(like)))

    @staticmethod
    def backward(ctx, *grads):  # an unused output's gradient comes materialised as zeros
        return (torch._C._nn.flatten_dense_tensors(list(grads)), ) + (None, ) * ctx.n


def _recorded(tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def flat_cat(tensors, pre=None):
    """cat_ℓ vec(t_ℓ): :class:`_FlatCat` where autograd records, else one ``flatten_dense_tensors``; ``pre``: that cat
    made already (same tensors, same versions), used instead of a new one."""
    if _recorded(tensors):
        return _FlatCat.apply(None if pre is None else [pre], *tensors)
    return pre if pre is not None else torch._C._nn.flatten_dense_tensors(list(tensors))


def scaled(w, x, s):
    """x = w / s given its value ``x`` (:class:`_Scaled` where autograd records)."""
    return _Scaled.apply(w, [x, s]) if torch.is_grad_enabled() and w.requires_grad else x


def split_as(flat, like):
    """``flat`` as views shaped like the tensors ``like``: :class:`_SplitAs` where autograd records."""
    if torch.is_grad_enabled() and flat.requires_grad:
        return _SplitAs.apply(flat, *like)
    return tuple(torch._C._nn.unflatten_dense_tensors(flat, list(like)))


class _Stored:
    """One batched evaluation of the stored (frozen / hard-phase) masks: W_ℓ = Ŵ_ℓ ⊙ M_ℓ for every ℓ by one
    ``torch._foreach_mul`` (one operator forward, one backward, a handful of kernels) instead of one multiply per
    tensor each way; the same products, entry by entry."""

    def __init__(self, masks, latents, psis, grad):
        self.masks, self.latents, self.psis, self.grad = masks, latents, psis, grad
        self.versions = [w._version for w in latents]
        self.taken = [False] * len(masks)
        self.W = _ForeachMul.apply(len(latents), *latents, *psis) if grad else torch._foreach_mul(latents, psis)

    def fresh(self, i, latent) -> bool:
        return (not self.taken[i] and self.latents[i] is latent and latent._version == self.versions[i]
                and self.masks[i]._mask_f is self.psis[i] and self.grad == torch.is_grad_enabled())

    def __deepcopy__(self, memo):
        return None

    def __reduce__(self):
        return type(None), ()


class SoftBatch:
    """The batched soft masks of one :class:`~mmsemiprune.core.pruner.SemiPruner` (see the module docstring)."""

    def __init__(self, pruner):
        self._pruner = weakref.ref(pruner)
        self._pos = {id(m): i for i, (*_, m) in enumerate(pruner._items)}
        masks = pruner.masks
        m0 = masks[0]
        self.mode = m0.mode
        # one formula for all: what SemiPruner builds (else the per-tensor path)
        self.ok = all(m.mode == m0.mode and m.normalize == m0.normalize and m.group_stat == m0.group_stat
                      and m.gate.mode == m0.gate.mode and m.gate.relative == m0.gate.relative
                      and (not m.prune_mode.groups or m.groupings)
                      and not m.needs_reference for m in masks)  # learned bands / latent gates: per-tensor path
        self._index = {}
        self._cache = None
        self._stored = None  # frozen / hard phase: the last batched Ŵ ⊙ M (_Stored)
        self._costs = None  # (cost buffers' versions, stacked costs)
        self._prices = None  # (pruner._prices object, flat MAC prices)

    def __deepcopy__(self, memo):  # a copied pruner links a new batch at its next set_progress
        return None

    def __reduce__(self):
        return type(None), ()

    def take_stored(self, mask, latent):
        """Frozen / hard phase: Ŵ ⊙ M of ``mask`` (latent's shape) from one foreach multiply over every mask of the
        pruner (recomputed when an entry was taken already or is stale: a latent changed in place, a new stored
        mask), setting ``mask.last_psi``; None where it does not apply: some mask soft, dtypes or devices mixed,
        or distributed training, where one backward operator for all latents would hold every gradient until the
        end of the backward pass instead of letting DDP reduce each bucket as it fills."""
        i = self._pos.get(id(mask))
        if i is None:
            return None
        c = self._stored
        if c is None or not c.fresh(i, latent):
            c = self._compute_stored()
            if c is None or not c.fresh(i, latent):
                return None
        c.taken[i] = True
        mask.last_psi = c.psis[i]
        return c.W[i]

    def _compute_stored(self):
        self._stored = None
        pr = self._pruner()
        if pr is None or _distributed():
            return None
        items = pr._items
        masks = [m for *_, m in items]
        latents = [mod._parameters[p] for _, mod, p, _ in items]
        dev, dt = latents[0].device, latents[0].dtype
        psis = []
        for m, w in zip(masks, latents):
            if not (m._is_frozen or m._hard_on) or w.device != dev or w.dtype != dt:
                return None
            if m._mask_f is None or m._mask_f.device != dev:
                m._cache_hard()
            if m._mask_f.dtype != dt:
                return None
            psis.append(m._mask_f)
        self._stored = _Stored(masks, latents, psis, torch.is_grad_enabled())
        return self._stored

    def clear(self) -> None:
        """Drop the cached evaluation (called at every set_progress: the thresholds move)."""
        self._cache = None

    # -- entries ---------------------------------------------------------------------------------------------
    def take(self, mask, latent):
        """The cache holding mask's entry (computing the batch if needed), marked taken; None: per-tensor path."""
        i = self._pos.get(id(mask))
        if i is None or not self.ok:
            return None, None
        c = self._cache
        if c is None or not c.fresh(i, latent):
            c = self._compute()
            if c is None or not c.fresh(i, latent):
                return None, None
        c.taken[i] = True
        return c, i

    def current(self, masks):
        """The cache every mask of ``masks`` (the pruner's list) took its ψ from in its last forward, or None."""
        c = self._cache
        if c is None or len(masks) != len(c.masks):
            return None
        for m in masks:
            lz = m.__dict__.get('_lazy')
            if lz is None or lz[0] is not c:
                return None
        return c

    # -- the batched cascade ---------------------------------------------------------------------------------
    def _compute(self):
        got = self._inputs()
        if got is None:
            return None
        pr, masks, latents, biases, ix = got
        dev, dt = latents[0].device, latents[0].dtype
        c = _Cache(masks, latents, biases, torch.is_grad_enabled())
        c.ix = ix
        m0 = masks[0]
        pm, L = get_mode(self.mode), ix.L
        lid = ix.lid
        # the search's flat latents, per-entry scale and x = w / s when it ran on these latents this step (eager
        # search, same versions: flat.flat_scores): the same values without a second cat, gather and divide
        sh = ix.flat.__dict__.get('shared')
        if sh is not None and not (unchanged(sh[0], latents) and sh[1].dtype == dt and sh[1].device == dev):
            sh = None
        w = flat_cat(latents, None if sh is None else sh[1])
        with torch.no_grad():
            # per-tensor scalars, one stack: thr_entry, thr_group, τ, τ_g (rows of (4, L))
            te = torch.stack([m.thr_entry for m in masks] + [m.thr_group for m in masks]
                                            + [m.temperature for m in masks]
                                            + [m.gate_temperature for m in masks])
            te, tg, tau, gtau = _as(te, dt).view(4, L).unbind(0)
        if m0.normalize and sh is not None:
            x = scaled(w, sh[3], sh[2])
        elif m0.normalize:
            x = w / _as(self._scale(ix, latents), dt).index_select(0, lid)
        else:
            x = w
        psi_e = band_stop(x, te.index_select(0, lid), tau.index_select(0, lid)) if pm.entries else None
        psi_g = None
        if pm.groups:
            for s in ix.slots:
                b = self._group_band(ix, s, x, tau, tg, m0.group_stat, dt)
                psi_g = b if psi_g is None else psi_g * b
        c.gate = c.delta = c.group = None
        ge = self._gates(c, gtau) if pm.gated else None
        psi = pm.combine(psi_g, psi_e, ge)
        if pm.gated:
            self._gate_means(c, psi_g, psi_e, dt)
        keep = pr._keep_flat
        if keep is not None:  # soft projection: ψ ⊙ K (K constant, one flat vector)
            psi = psi * (keep if keep.dtype == dt and keep.device == dev else keep.to(device=dev, dtype=dt))
        c.psi = psi
        c.W = split_as(w * psi, latents)  # shaped as the latents
        c.bias = self._masked_biases(ix, psi, biases) if ix.R else None
        self._cache = c
        return c

    def _inputs(self):
        """(pruner, masks, latents, masked biases or None per mask, static index) of a batched evaluation, or None
        where it does not apply (no pruner, a mask frozen or in the hard phase, devices or dtypes mixed)."""
        pr = self._pruner()
        if pr is None:
            return None
        items = pr._items
        masks = [m for *_, m in items]
        if any(m._is_frozen or m._hard_on for m in masks):
            return None
        latents = [mod._parameters[p] for _, mod, p, _ in items]
        dev, dt = latents[0].device, latents[0].dtype
        if any(w.device != dev or w.dtype != dt for w in latents) or not dt.is_floating_point:
            return None
        biases = [mod._parameters.get('bias') if m.mask_bias else None for _, mod, _, m in items]
        has_bias = tuple(b is not None for b in biases)
        key = (str(dev), has_bias)
        ix = self._index.get(key)
        if ix is None or not ix.flat.alive(masks):
            ix = self._index[key] = _Index(masks, has_bias, dev)
        return pr, masks, latents, biases, ix

    @staticmethod
    def _group_band(ix, s, x, tau, tg, group_stat, dt):
        """B(s_k; a_g, τ·spread_k)[gid_k] (N,) of grouping slot ``s``, 1 on the entries of tensors without it."""
        L = ix.L
        v = x.abs() if group_stat == 'l1' else x ** 2
        st = segment_sum(v, s['gid'], s['G'] + 1, ix.plans, id(s)) / _as(s['size'], dt)
        if group_stat != 'l1':
            st = st.clamp_min(1e-30).sqrt()  # as groups.group_rms
        with torch.no_grad():  # spread_k = std of s_k per tensor (unbiased, as Tensor.std), 1 for one group
            sd = st.detach()
            mean = segment_sum(sd, s['seg'], L + 1, ix.plans, (id(s), 'seg')) * _as(s['inv_cnt'], dt)
            d = sd - mean.index_select(0, s['seg'])
            var = segment_sum(d * d, s['seg'], L + 1, ix.plans, (id(s), 'seg')) * _as(s['inv_cnt1'], dt)
            spread = torch.where(s['multi'], var.sqrt().clamp_min(1e-3), 1.0)[:L]
            t_g = (tau * spread).index_select(0, s['gather'])
        b = band_stop(st, tg.index_select(0, s['gather']), t_g)
        if s['dummy'] is not None:
            b = torch.where(s['dummy'], 1.0, b)
        return expand(b, s['gid'], ix.plans, id(s))  # (on the GPU its backward is a scan, not atomics)

    @staticmethod
    def _gates(c, gtau):
        """g[gid_0] (N,) from the gate logits of every mask (g (G_0,) kept as ``c.gate``; 0 on the entries of tensors
        without groups)."""
        ix, masks, L = c.ix, c.masks, c.ix.L
        m0 = masks[0]
        s0 = ix.slots[0]
        logit = flat_cat([m.gate.logit for m in masks])
        glid0 = s0['gather'][:-1]
        if m0.gate.relative:  # τ_g · mean|γ| per tensor, detached (Gate.forward)
            with torch.no_grad():
                a = segment_sum(logit.abs(), s0['seg_g'], L + 1, ix.plans, (id(s0), 'seg_g'))
                t = (gtau * (a[:L] / _as(s0['cnt'][:L], a.dtype)).clamp_min(1e-6)).index_select(0, glid0)
        else:
            t = gtau.index_select(0, glid0)
        g = torch.sigmoid(logit / t)
        c.gate = g
        return expand(torch.cat([g, g.new_zeros(1)]) if s0['dummy'] is not None else g, s0['gid'], ix.plans, id(s0))

    @staticmethod
    @torch.no_grad()
    def _gate_means(c, psi_g, psi_e, dt):
        """The gate prices' per-group means of the first grouping: ``c.delta`` = mean(ψ_G − ψ_e), ``c.group`` =
        mean ψ_G."""
        ix, s0 = c.ix, c.ix.slots[0]
        size = _as(s0['size'], dt)
        c.delta = segment_sum(psi_g - psi_e, s0['gid'], s0['G'] + 1, ix.plans, id(s0)) / size
        c.group = segment_sum(psi_g, s0['gid'], s0['G'] + 1, ix.plans, id(s0)) / size

    @staticmethod
    def _masked_biases(ix, psi, biases):
        """b ⊙ β per mask with a masked bias (None for the others), β_o = max_i ψ[o, i] per output row
        (SemiMask.row_keep)."""
        # (scatter_reduce_'s amax off the CPU; on the CPU segment_reduce with scatter_reduce's backward written
        # out: torch.segment_reduce's own max backward with offsets= is wrong on long tied rows, torch 2.13)
        beta = segment_amax(psi, ix.rowid, ix.R + 1, ix.plans, 'row')
        bb = flat_cat([b for b in biases if b is not None])
        parts = iter((bb * _as(beta[:ix.R], bb.dtype)).split(ix.bias_len))
        return [next(parts) if hb else None for hb in ix.has_bias]

    @staticmethod
    def _scale(ix, latents):
        """rms(Ŵ_ℓ) (L,), detached: the one the threshold search computed this step (same latents, same
        versions: :func:`~.flat.flat_scores` leaves it on the index), else recomputed the same way."""
        cached = getattr(ix.flat, 'scale', None)
        if cached is not None and unchanged(cached[1], latents):
            return cached[0]
        return flat_scale(latents)

    # -- losses over the batch -------------------------------------------------------------------------------
    def _stacked_costs(self, c):
        """(versions, c_ℓ (L,), N = Σ c_ℓ·numel_ℓ, c_ℓ·n_g/N per group of the first grouping): recomputed only
        when a cost buffer changes (profiling)."""
        masks = c.masks
        ver = tuple(m.cost._version for m in masks)
        if self._costs is None or self._costs[0] != ver or self._costs[1].device != c.psi.device:
            with torch.no_grad():
                costs = torch.stack([m.cost for m in masks]).to(device=c.psi.device, dtype=torch.float32)
                total = (costs * c.ix.numel).sum()
                weight = None
                if c.ix.slots:
                    s0 = c.ix.slots[0]
                    weight = (costs / total).index_select(0, s0['gather'][:-1]) * s0['size'][:s0['G']]
                self._costs = (ver, costs, total, weight)
        return self._costs

    def kept_fraction(self, c) -> torch.Tensor:
        """Σ_ℓ c_ℓ Σ_i ψ_ℓ,i / Σ_ℓ c_ℓ·numel_ℓ over the batch (BudgetRegularizer.kept_fraction)."""
        _, costs, total, _ = self._stacked_costs(c)
        sums = segment_sum(c.psi, c.ix.lid, c.ix.L, c.ix.plans, 'lid')
        return (sums * _as(costs, sums.dtype)).sum() / _as(total, sums.dtype)

    def gate_price(self, c, by: str, mac_prices=None) -> torch.Tensor:
        """The pruner's gate price P (SemiPruner._gate_price_term) over the batch; ``mac_prices``: the pruner's
        (dict key → (G,) MACs freed, dense MACs) when profiled."""
        pr = self._pruner()
        s0 = c.ix.slots[0]
        G = s0['G']
        g, delta, group = c.gate, c.delta[:G], c.group[:G]
        term = 0.0
        if by in ('params', 'both'):
            weight = self._stacked_costs(c)[3]  # c_ℓ·n_g / N per group of the first grouping
            term = term + (g * delta * _as(weight, g.dtype)).sum()
        if by in ('macs', 'both') and mac_prices is not None:
            prices, dense = mac_prices
            if self._prices is None or self._prices[0] is not prices or self._prices[1].device != g.device:
                keys = [k for k, *_ in pr._items]
                self._prices = (prices, torch.cat([prices[k].reshape(-1) for k in keys]).to(g.device))
            f = _as(self._prices[1], g.dtype)
            term = term + (g * (group - 1.0) * f).sum() / dense
        return term if torch.is_tensor(term) else torch.zeros(())
