"""Cost model, budget regularizer and rate controller.

Cost: every entry of a prunable tensor ℓ costs ``c_ℓ``: 1 for ``cost='params'``; for ``cost='flops'``
the number of times it is applied per sample (the output positions T'·V of a conv, recorded by
:meth:`~.pruner.SemiPruner.profile`), i.e. its multiply-accumulates.

Budget regularizer (the sibling papers' λ(Σψ − c)², normalised so λ is scale-free):

    R = λ · ((Σ_ℓ c_ℓ Σ_i ψ_ℓ,i − (1 − r)·N) / N)²,   N = Σ_ℓ c_ℓ·numel_ℓ

Rate controller (our choice; the paper's threshold rule is not public): every step the band positions
a_e (entries) and a_g (groups) are placed so that the *hard* kept cost equals the scheduled target,
as MRMP's quantile map a(r) does for a prior. Measured on SBU: thresholds moved by the penalty's
gradient alone overshoot or freeze once τ is small; placing them by a monotone search on the hard
count cannot. The penalty R still acts on the latents and the gates (it polarises the soft mask
towards the hard one and prices the gate's choice).

Speed (issue "pruning at GPU speed"): the search runs on the device over all tensors at once, with a
fixed number of operators and no host synchronisation: the scores of all masks live in one flat vector
(static index tensors per mask list, :class:`_Flat`), and every weighted quantile is an exact two-pass
radix select over the float32 bit patterns (:func:`_select`: two weighted histograms, cumulative sums,
no sort, no ``.item()``, no boolean indexing).
"""
import math
import weakref
from typing import Dict, Optional, Sequence

import torch

from .segment import atomic_free, segment_sum, select_per_segment_sorted, select_sorted

__all__ = ['CostModel', 'BudgetRegularizer', 'solve_thresholds', 'COSTS']

COSTS = ('params', 'flops')
_EPS = 1e-12


class CostModel:
    """The cost an entry of a pruned tensor counts for: 'params' (1) or 'flops' (its MACs per sample,
    recorded by :meth:`~.pruner.SemiPruner.profile`). Validates the name."""

    def __init__(self, cost: str = 'params'):
        if cost not in COSTS:
            raise ValueError(f'unknown cost {cost!r}; choose one of {COSTS} (cost="params" counts weights, '
                             'cost="flops" weights each entry by the output positions it is applied to)')
        self.cost = cost


class BudgetRegularizer:
    """R = λ((Σ c·ψ − (1 − r)N)/N)² over the cached soft masks of the last forward. ``rate`` may be a
    float or a 0-dim tensor (no host synchronisation)."""

    def __init__(self, weight: float = 5.0):
        if not weight >= 0:
            raise ValueError(f'budget weight must be >= 0, got {weight!r}')
        self.weight = float(weight)

    def kept_fraction(self, masks) -> torch.Tensor:
        masks = [m for m in masks if m.last_psi is not None]
        if not masks:
            return None
        sums = torch.stack([m.last_psi.sum() for m in masks])
        costs = torch.stack([m.cost for m in masks]).to(sums.dtype)
        numels = [m.last_psi.numel() for m in masks]
        total = (costs * sums.new_tensor(numels)).sum() if len(set(numels)) > 1 else costs.sum() * numels[0]
        return (sums * costs).sum() / total

    def __call__(self, masks, rate, frac=None) -> torch.Tensor:
        """``frac``: the kept fraction when already computed (the pruner's batched masks)."""
        frac = self.kept_fraction(masks) if frac is None else frac
        if frac is None:
            return torch.zeros(())
        return self.weight * (frac - (1.0 - rate)) ** 2


# -- exact weighted selection on the device -------------------------------------------------------------------
_HI, _LO = 1 << 15, 1 << 16  # non-negative float32: sign bit 0, 15 high bits + 16 low bits


def _select(v: torch.Tensor, target, w: torch.Tensor) -> torch.Tensor:
    """Smallest t ≥ 0 with Σ_i w_i·[v_i > t] ≤ target, exactly: 0 or one of the values of ``v``.

    ``v``: float32 ≥ 0 (+inf allowed), ``w``: float64 weights ≥ 0, ``target``: float or 0-dim float64.
    Radix select over the bit patterns (monotone for non-negative floats): a weighted histogram of the
    high 15 bits finds the bucket where the cumulative weight (largest first) crosses the target, a
    second one of the low 16 bits inside that bucket finds the value. Returns a 0-dim float32 tensor.
    On a GPU (:func:`~.segment.atomic_free`) one sort instead (:func:`~.segment.select_sorted`, the same value):
    the histograms' atomic adds pile onto the few buckets where the values cluster."""
    if atomic_free(v.device):
        return select_sorted(v, target, w)
    bits = v.contiguous().view(torch.int32)
    hi, lo = bits >> 16, bits & (_LO - 1)
    # weighted histograms by bincount: the same float64 sums as index_add_ (each bucket adds its entries in index
    # order), without a zero-filled histogram to allocate and no (N,) float64 of masked weights for the second one
    h1 = torch.bincount(hi, w, minlength=_HI + 1)
    r1 = h1.flip(0).cumsum(0).flip(0)  # r1[h] = Σ w over high bits ≥ h (r1[_HI] = 0)
    # bucket ids counted in int32, hi's dtype (a mixed int32 == int64 compare runs a slower loop, and no casts:
    # index_select takes int32 indices; hs·2¹⁶ + lstar ≤ 2³¹ − 1)
    hstar = (r1 > target).sum(dtype=torch.int32) - 1  # the bucket of the crossing element; -1: everything fits
    hs = hstar.clamp_min(0).reshape(1)
    rest = target - r1.index_select(0, hs + 1)  # weight still allowed inside the bucket
    # entries outside the bucket go to one extra bin, dropped (adding their weight as 0.0 would give the same sums)
    h2 = torch.bincount(torch.where(hi == hs, lo, _LO), w, minlength=_LO + 1)[:_LO]
    r2 = h2.flip(0).cumsum(0).flip(0)
    lstar = ((r2 > rest).sum(dtype=torch.int32) - 1).clamp_min(0)
    val = (hs * _LO + lstar).view(torch.float32)
    return torch.where(hstar >= 0, val, 0.0).reshape(())


def _select_per_segment(v: torch.Tensor, seg: torch.Tensor, nseg: int, k: torch.Tensor,
                        plans=None) -> torch.Tensor:
    """Per segment s, the k_s-th largest value of ``v[seg == s]`` (k_s ≥ 1, as float64 tensor (nseg,)),
    with the same two-pass radix select as :func:`_select`, all segments at once. Returns float32 (nseg,).
    On a GPU one sort instead (:func:`~.segment.select_per_segment_sorted`; ``plans``: where its static plan of
    ``seg`` is kept)."""
    if atomic_free(v.device):
        return select_per_segment_sorted(v, seg, nseg, k, {} if plans is None else plans, 'select')
    bits = v.contiguous().view(torch.int32)
    hi, lo = bits >> 16, bits & (_LO - 1)
    base_hi, base_lo = _radix_bases(seg, nseg, plans)
    if base_hi.dtype != hi.dtype:
        hi, lo = hi.to(base_hi.dtype), lo.to(base_hi.dtype)
    # unweighted: integer counts by bincount (the float64 sums of ones index_add_ gave are these integers exactly;
    # NTU ST-GCN, 3.05 M entries, 22 tensors: ~48 -> ~30 ms per search on one thread, no (N,) float64 of ones)
    h1 = torch.bincount(base_hi + hi, minlength=nseg * (_HI + 1)).view(nseg, _HI + 1)
    r1 = h1.flip(1).cumsum(1).flip(1)
    limit = (k - 1).unsqueeze(1)
    hstar = ((r1 > limit).sum(1) - 1).clamp_min(0)
    rest = limit.squeeze(1) - r1.gather(1, (hstar + 1).unsqueeze(1)).squeeze(1)
    # compared in hi's dtype (int32 == int64 runs a slower mixed-type loop: 17 -> ~4 ms per 3 M entries); entries
    # outside their segment's bucket counted in one extra bin, dropped
    inb = hi == hstar.to(hi.dtype).index_select(0, seg)
    h2 = torch.bincount(torch.where(inb, base_lo + lo, nseg * _LO), minlength=nseg * _LO + 1)[:nseg * _LO]
    r2 = h2.view(nseg, _LO).flip(1).cumsum(1).flip(1)
    lstar = ((r2 > rest.unsqueeze(1)).sum(1) - 1).clamp_min(0)
    return (hstar * _LO + lstar).to(torch.int32).view(torch.float32)


def _radix_bases(seg: torch.Tensor, nseg: int, plans) -> tuple:
    """(seg·(2¹⁵ + 1), seg·2¹⁶): the histogram offsets of the static segment ids ``seg``, kept in ``plans`` (the
    integer multiplies over the 3 M entries cost ~12 ms each per search on one CPU thread); int32 while they fit,
    the dtype of the bit patterns they are added to (a mixed int64 + int32 add runs a slower loop)."""
    hit = plans.get('radix_bases') if plans is not None else None
    if hit is None or hit[0] is not seg or hit[3] != nseg:
        idx = seg.to(torch.int32) if nseg * _LO < 2 ** 31 else seg.to(torch.int64)
        hit = (seg, idx * (_HI + 1), idx * _LO, nseg)
        if plans is not None:
            plans['radix_bases'] = hit
    return hit[1], hit[2]


# -- all masks as one flat vector -------------------------------------------------------------------------------
def _versions(tensors):
    """[(t, t._version)]: a host-side key of tensors' identities and in-place versions (no device work)."""
    return [(t, t._version) for t in tensors]


def _unchanged(key, tensors) -> bool:
    """Whether ``tensors`` are the tensors of ``key`` (:func:`_versions`), none modified in place since."""
    return len(key) == len(tensors) and all(a is t and v == t._version for (a, v), t in zip(key, tensors))


class _Flat:
    """Static index tensors of a list of masks on one device: the entries of all masks concatenated
    (mask ℓ at offset o_ℓ), the layer id of every entry, per grouping slot k the global group id of every
    entry (mask ℓ's groups at an offset; entries of masks without a k-th grouping point at one extra dummy
    group), group sizes and the layer of each group, and the strided subsample of the α_e reference."""

    def __init__(self, masks, device):
        self.refs = [weakref.ref(m) for m in masks]
        L = len(masks)
        self.L = L
        self.sizes = [math.prod(m.shape) for m in masks]
        self.N = sum(self.sizes)
        dev = device
        self.lid = torch.repeat_interleave(torch.arange(L, device=dev), torch.tensor(self.sizes, device=dev))
        self.plans = {}  # segment plans of the atomic-free reductions (GPU, .segment), built on first use
        self.numel = torch.tensor(self.sizes, dtype=torch.float64, device=dev)
        self.lengths = torch.tensor(self.sizes, dtype=torch.long, device=dev)
        self.modes = {m.mode for m in masks}
        self.K = max(len(m.groupings) for m in masks)
        self.single = [len(m.groupings) == 1 for m in masks]
        self.slots = []
        for k in range(self.K):
            gids, sizes, glid, G = [], [], [], 0
            offs = []
            for li, m in enumerate(masks):
                offs.append(G)
                if len(m.groupings) > k:
                    gids.append(getattr(m, f'gid{k}').reshape(-1).to(dev) + G)
                    sizes.append(getattr(m, f'gsize{k}').to(dev))
                    glid.append(torch.full((m.num_groups[k], ), li, dtype=torch.long, device=dev))
                    G += m.num_groups[k]
                else:
                    gids.append(None)
            gid = torch.cat([g if g is not None else torch.full((n, ), G, dtype=torch.long, device=dev)
                             for g, n in zip(gids, self.sizes)])
            size = torch.cat(sizes + [torch.ones(1, dtype=sizes[0].dtype, device=dev)]).to(torch.float32)
            glid = torch.cat(glid)
            glen = torch.bincount(glid, minlength=L)
            lens = [m.num_groups[k] if len(m.groupings) > k else 0 for m in masks]  # glen on the host
            self.slots.append(dict(gid=gid, size=size, glid=glid, glen=glen, lens=lens, G=G, offs=offs))
        # α_e reference: deterministic strided subsample of every mask (≤ 65536 entries each), factor n/|sub|
        idx, fac, slid = [], [], []
        off = 0
        for li, n in enumerate(self.sizes):
            step = max(n // 65536, 1) if n > 65536 else 1
            sub = torch.arange(0, n, step, device=dev)
            idx.append(sub + off)
            fac.append(n / sub.numel())
            slid.append(torch.full((sub.numel(), ), li, dtype=torch.long, device=dev))
            off += n
        self.sub_idx, self.sub_lid = torch.cat(idx), torch.cat(slid)
        self.sub_fac = torch.tensor(fac, dtype=torch.float64, device=dev)
        if self.K:
            # α_g reference pool: the groups of single-grouping masks (weight c·n_g), the entries of the others
            s0 = self.slots[0]
            gi, ei = [], []
            off = 0
            for li, m in enumerate(masks):
                if len(m.groupings) == 1:
                    gi.append(torch.arange(m.num_groups[0], device=dev) + s0['offs'][li])
                elif len(m.groupings) > 1:
                    ei.append(torch.arange(self.sizes[li], device=dev) + off)
                off += self.sizes[li]
            self.pool_groups = torch.cat(gi) if gi else None
            self.pool_entries = torch.cat(ei) if ei else None
        self.floor_k = {}

    def cost_weights(self, masks):
        """The search's cost weights, derived from the masks' ``cost`` buffers only: (c_ℓ float64 (L,), N = Σ c_ℓ·n_ℓ,
        the α_e subsample's weights, the α_g pool's weights, c_ℓ per entry (N,) float64), computed once and again
        only when a cost buffer is replaced or changed (profiling, a state dict load): ~12 operators and a float64
        copy of every entry's weight saved per step. Version counters and identities are read on the host."""
        costs = [m.cost for m in masks]
        hit = self.__dict__.get('_weights')
        if hit is not None and _unchanged(hit[0], costs):
            return hit[1]
        dev = self.lid.device
        c64 = torch.stack([m.cost for m in masks]).to(device=dev, dtype=torch.float64)
        total = (c64 * self.numel).sum()
        sub_w = (c64 * self.sub_fac).index_select(0, self.sub_lid)
        pool_w = None
        if self.K:
            s0, wts = self.slots[0], []
            if self.pool_groups is not None:
                wts.append(s0['size'].double().index_select(0, self.pool_groups)
                           * c64.index_select(0, s0['glid'].index_select(0, self.pool_groups)))
            if self.pool_entries is not None:
                wts.append(c64.index_select(0, self.lid.index_select(0, self.pool_entries)))
            pool_w = torch.cat(wts)
        w_entry = c64.index_select(0, self.lid)
        out = (c64, total, sub_w, pool_w, w_entry)
        self.__dict__['_weights'] = (_versions(costs), out)
        return out

    def alive(self, masks) -> bool:
        return len(masks) == len(self.refs) and all(r() is m for r, m in zip(self.refs, masks))

    def floor_counts(self, floor: float):
        """k_ℓ = ⌈floor·n_ℓ⌉ (float64 (L,)) and whether any is > 0."""
        if floor not in self.floor_k:
            ks = [math.ceil(floor * n) if floor > 0 else 0 for n in self.sizes]
            self.floor_k[floor] = (torch.tensor(ks, dtype=torch.float64, device=self.lid.device), any(ks))
        return self.floor_k[floor]


def _flat_for(masks, device) -> _Flat:
    """The cached :class:`_Flat` of this mask list on this device (built once)."""
    cache = masks[0].__dict__.setdefault('_sp_flat', {})
    key = (tuple(id(m) for m in masks), str(device))
    flat = cache.get(key)
    if flat is None or not flat.alive(masks):
        flat = cache[key] = _Flat(masks, device)
    return flat


def flat_scale(latents) -> torch.Tensor:
    """rms(Ŵ_ℓ) per mask, (L,), detached, bit-identical to :meth:`~.cascade.SemiMask.normalise`
    (the same pow and mean per tensor, one foreach operator for the squares)."""
    with torch.no_grad():
        sq = torch._foreach_pow([t.detach() for t in latents] if torch.is_grad_enabled() else latents, 2)
        return torch.stack([s.mean() for s in sq]).sqrt().clamp_min(_EPS)


def flat_scores(flat: _Flat, masks, latents, reuse: bool = True):
    """(|x| (N,), per slot the group statistics (G_k,), coarse score per entry (N,) or None): the scores
    :meth:`~.cascade.SemiMask.group_scores` gives, for all masks at once (no grad).

    ``reuse`` (the eager search): the flat latents w, the per-entry scale s, x = w / s, |x| and the scores are kept
    on ``flat`` (``flat.shared``, keyed by the latents' versions) for the rest of the step: the compute target's
    probes search again within the step and take the scores as they are, and the batched soft masks (:mod:`.batch`)
    take w and x from there instead of a second cat, gather and divide over all entries. ``reuse=False`` (the
    graphed search) recomputes everything from the live latents (a replay must) and keeps nothing."""
    m0 = masks[0]
    sh = flat.__dict__.get('shared')
    if reuse and sh is not None and _unchanged(sh[0], latents):
        return sh[4:]  # (|x|, stats, coarse): the scores depend on the latents alone
    plain = [t.detach() if t.requires_grad else t for t in latents] if torch.is_grad_enabled() else list(latents)
    w = torch._C._nn.flatten_dense_tensors(plain)  # one operator (cat of the flattened tensors)
    if m0.normalize:
        # rms per tensor: reused while the latents are unchanged unless ``reuse`` is False
        cached = getattr(flat, 'scale', None)
        if reuse and cached is not None and _unchanged(cached[1], latents):
            scale = cached[0]
        else:
            scale = flat_scale(latents)
            flat.scale = (scale, _versions(latents))  # reused by the batched soft masks (.batch)
        se = scale.index_select(0, flat.lid)
        xs = w / se
    else:
        se, xs = None, w
    x = xs.abs()
    stats, coarse = [], None
    for s in flat.slots:
        v = x if m0.group_stat == 'l1' else x * x
        tot = segment_sum(v, s['gid'], s['G'] + 1, flat.plans, id(s))
        st = tot / s['size']
        if m0.group_stat != 'l1':
            st = st.clamp_min(1e-30).sqrt()  # as groups.group_rms
        stats.append(st)
        c = st.index_select(0, s['gid'])
        coarse = c if coarse is None else torch.minimum(coarse, torch.where(s['gid'] == s['G'], coarse, c))
    flat.shared = (_versions(latents), w, se, xs, x, stats, coarse) if reuse else None
    return x, stats, coarse


def _gate_hard(flat: _Flat, masks, device):
    """Hard gate decision per group of slot 0 (True: the group mask decides), (G_0 + 1,) with the dummy."""
    gates = [m.gate for m in masks]
    if all(g.mode == 'learned' and not getattr(g, '_is_frozen', False) for g in gates):
        hard = torch.cat([g.logit.detach() if torch.is_grad_enabled() else g.logit for g in gates]) > 0
    else:
        hard = torch.cat([g.hard().to(device) for g in gates])
    return torch.cat([hard, hard.new_zeros(1)])


@torch.no_grad()
def solve_thresholds(items: Sequence, rate: float, floor: float = 0.0, stats: bool = True,
                     hard_masks: bool = False, rate_t: Optional[torch.Tensor] = None):
    """Place the band of every mask so that the hard kept cost is (1 − rate)·N.

    ``items``: list of (SemiMask, latent); frozen masks are skipped. Steps:
      1. α_e: global entry threshold meeting the target with entry masks alone (on a deterministic
         subsample: it is only a scale reference); α_g: the same for group masks alone;
      2. per entry the ratio ρ = score/α of whichever mask decides it (hard gate; for ctf the smaller);
      3. layer floor: in every tensor the ⌈floor·n_ℓ⌉ largest ρ are kept whatever the level (its own,
         lower level u_ℓ);
      4. t: the global level with Σ_ℓ c_ℓ·max(#(ρ_ℓ > t), floor part) = target, i.e. the rate is met
         exactly (to one entry / group) including the floors (no undershoot);
      5. a_e,ℓ = t_ℓ·α_e, a_g,ℓ = t_ℓ·α_g are written into each mask's buffers (t_ℓ = t, or just below
         u_ℓ where the floor binds).
    All on the device, O(1) operators in the number of masks, no host synchronisation. Returns a dict with
    alpha_entry, alpha_group, level, kept_fraction as floats (``stats=False``: nothing is read back to the
    host and None is returned, the form the training step uses). ``hard_masks=True``: return instead the list of
    boolean hard masks at the new thresholds, one per item in order (views of one flat mask: what
    ``m.hard(w)`` gives, from the same flat scores the thresholds were selected from; one pass instead of ~26
    operators per tensor), or None when per-tensor masks are needed (mixed modes, frozen items).
    ``rate_t``: the rate as a 0-dim float64 tensor on the latents' device, used instead of ``rate`` in the
    arithmetic (same value, same numbers): the input a captured CUDA graph of the search reads (:mod:`.cudagraph`).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f'pruning rate must be in [0, 1), got {rate!r}')
    live = [(m, w) for m, w in items if not _is_frozen(m)]
    if not live:
        return None if hard_masks or not stats else dict(alpha_entry=0.0, alpha_group=0.0, level=0.0,
                                                         kept_fraction=1.0)
    masks = [m for m, _ in live]
    latents = [w for _, w in live]
    for m, w in live:
        m.check_latent(w)
    dev = latents[0].device
    flat = _flat_for(masks, dev)
    x, gstats, coarse = flat_scores(flat, masks, latents, reuse=rate_t is None)  # rate_t: the graphed search
    c64, total, sub_w, pool_w, w_entry = flat.cost_weights(masks)
    target = (1.0 - (rate if rate_t is None else rate_t)) * total

    alpha_e, alpha_g = _scale_references(flat, masks, x, gstats, coarse, target, sub_w, pool_w)  # 1.
    rho, group_decides = _deciding_ratios(flat, masks, x, coarse, alpha_e, alpha_g)  # 2.
    t_l, level = _levels(flat, rho, float(floor), target, w_entry)  # 3. and 4.

    # 5. write the thresholds (one operator per buffer list)
    te, tg = (t_l * alpha_e).float(), (t_l * alpha_g).float()
    torch._foreach_copy_([m.thr_entry for m in masks], list(te.unbind()))
    torch._foreach_copy_([m.thr_group for m in masks], list(tg.unbind()))
    if hard_masks and (len(live) != len(items) or len(flat.modes) != 1):
        return None  # frozen items keep their stored masks, mixed modes decide per tensor: the caller's job
    if not stats and not hard_masks:
        return None
    kept_mask = _kept_mask(flat, live, x, coarse, te, tg, group_decides, hard_masks)
    if hard_masks:
        return list(torch._C._nn.unflatten_dense_tensors(kept_mask, latents))  # views shaped as the latents
    kept = (w_entry * kept_mask).sum() / total
    return dict(alpha_entry=float(alpha_e), alpha_group=float(alpha_g), level=float(level),
                kept_fraction=float(kept))


def _scale_references(flat: _Flat, masks, x, gstats, coarse, target, sub_w, pool_w):
    """Step 1 of :func:`solve_thresholds`: (α_e, α_g), 0-dim float64, the global thresholds meeting ``target`` with
    entry masks alone (on the deterministic subsample) and with group masks alone (1 where no mask uses them)."""
    dev = x.device
    if any(m.uses_entries for m in masks):
        sub = x.index_select(0, flat.sub_idx)
        alpha_e = _select(sub, target, sub_w).double().clamp_min(1e-8)
    else:
        alpha_e = torch.ones((), dtype=torch.float64, device=dev)
    if any(m.uses_groups for m in masks):
        vals = []
        if flat.pool_groups is not None:
            vals.append(gstats[0].index_select(0, flat.pool_groups))
        if flat.pool_entries is not None:
            vals.append(coarse.index_select(0, flat.pool_entries))
        alpha_g = _select(torch.cat(vals) if len(vals) > 1 else vals[0], target, pool_w).double().clamp_min(1e-8)
    else:
        alpha_g = torch.ones((), dtype=torch.float64, device=dev)
    return alpha_e, alpha_g


def _deciding_ratios(flat: _Flat, masks, x, coarse, alpha_e, alpha_g):
    """Step 2 of :func:`solve_thresholds`: (ρ float32 (N,), the ratio score/α of whichever mask decides each entry;
    for semi masks of one mode the hard gate per entry (True: the group mask decides), else None)."""
    group_decides = None
    if len(flat.modes) == 1:
        mode = masks[0].mode
        e = x / alpha_e if mode != 'structured' else None
        g = coarse / alpha_g if mode != 'unstructured' else None
        if mode == 'unstructured':
            rho = e
        elif mode == 'structured':
            rho = g
        elif mode == 'ctf':
            rho = torch.minimum(e, g)
        else:
            group_decides = _gate_hard(flat, masks, x.device).index_select(0, flat.slots[0]['gid'])
            rho = torch.where(group_decides, g, e)
    else:  # mixed modes (not produced by SemiPruner): per mask
        parts = []
        for m, xs, cs in zip(masks, x.split(flat.sizes), (coarse.split(flat.sizes) if coarse is not None
                                                            else [None] * flat.L)):
            if m.mode == 'unstructured':
                parts.append(xs / alpha_e)
            elif m.mode == 'structured':
                parts.append(cs / alpha_g)
            elif m.mode == 'ctf':
                parts.append(torch.minimum(xs / alpha_e, cs / alpha_g))
            else:
                parts.append(torch.where(m.entry_decides().reshape(-1), xs / alpha_e, cs / alpha_g))
        rho = torch.cat(parts)
    return rho.to(torch.float32), group_decides


def _levels(flat: _Flat, rho, floor: float, target, w_entry):
    """Steps 3 and 4 of :func:`solve_thresholds`: (t_ℓ float64 (L,), the global level t), with the layer floors."""
    # 3. layer floors: u_ℓ = the k_ℓ-th largest ρ of tensor ℓ; entries ≥ u_ℓ are kept at any level
    k, any_floor = flat.floor_counts(floor)
    if any_floor:
        u = _select_per_segment(rho, flat.lid, flat.L, k.clamp_min(1), flat.plans)
        u = torch.where(k > 0, u, float('inf'))
        in_floor = rho >= u.index_select(0, flat.lid)
        rho_level = torch.where(in_floor, float('inf'), rho)
    else:
        u = None
        rho_level = rho

    # 4. global level
    level = _select(rho_level, target, w_entry).double()
    if any_floor:  # floors alone above the target (rounding of ⌈floor·n⌉): prune everything else
        # (≡ where(isinf(ρ), 0, ρ).max(), NaN kept as NaN: one pass over the entries instead of two)
        finite = torch.nan_to_num(rho_level, nan=math.nan, posinf=0.0, neginf=0.0).max().double()
        level = torch.where(torch.isinf(level), finite, level)
    # the hard masks compare score > t·α, not score/α > t: step just past the boundary score so that
    # float rounding cannot keep the element the search has just excluded
    level = torch.where(level > 0, level * (1 + 1e-6) + 1e-12, level)
    t_l = level.expand(flat.L)
    if u is not None:
        u64 = u.double()
        t_l = torch.where(u64 <= level, (u64 * (1 - 1e-6) - 1e-12).clamp_min(0.0), t_l)
    return t_l, level


def _kept_mask(flat: _Flat, live, x, coarse, te, tg, group_decides, hard_masks: bool):
    """The flat boolean hard masks (N,) at the written thresholds, exactly as the hard masks compare (score >
    stored float32 threshold); per tensor (:meth:`~.cascade.SemiMask.hard`) for mixed modes."""
    mode = live[0][0].mode
    keep_e = x > te.index_select(0, flat.lid) if mode != 'structured' or not hard_masks else None
    keep_g = coarse > tg.index_select(0, flat.lid) if coarse is not None else None
    if len(flat.modes) == 1 and mode == 'semi':
        return torch.where(group_decides, keep_g, keep_e)
    if len(flat.modes) == 1:
        return keep_e if mode == 'unstructured' else keep_g if mode == 'structured' else keep_e & keep_g
    return torch.cat([m.hard(w).reshape(-1) for m, w in live])


def _is_frozen(m) -> bool:
    v = getattr(m, '_is_frozen', None)
    return bool(m.frozen) if v is None else v
