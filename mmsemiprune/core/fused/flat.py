"""All masks of a list as one flat vector: the static index of the fused fast path.

:class:`FlatIndex` holds, for a list of masks on one device, the index tensors that address every entry of every mask
in one concatenated vector (N,) (mask ℓ at offset o_ℓ, the layer id of every entry, per grouping slot the global group
id of every entry, group sizes, the α_e subsample and the α_g pool of the threshold search); :func:`flat_for` keeps it
on the first mask, built once per list and device. :func:`flat_scale` and :func:`flat_scores` compute the scores of
:meth:`~mmsemiprune.core.cascade.SemiMask.group_scores` for all masks at once, and :func:`versions` /
:func:`unchanged` key such caches by the tensors' identities and in-place version counters (read on the host, no
device work).
"""
import math
import weakref

import torch

from .segment import segment_sum

__all__ = ['versions', 'unchanged', 'FlatIndex', 'flat_for', 'flat_scale', 'flat_scores']

_EPS = 1e-12


def versions(tensors):
    """[(t, t._version)]: a host-side key of tensors' identities and in-place versions (no device work)."""
    return [(t, t._version) for t in tensors]


def unchanged(key, tensors) -> bool:
    """Whether ``tensors`` are the tensors of ``key`` (:func:`versions`), none modified in place since."""
    return len(key) == len(tensors) and all(a is t and v == t._version for (a, v), t in zip(key, tensors))


class FlatIndex:
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
        if hit is not None and unchanged(hit[0], costs):
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
        self.__dict__['_weights'] = (versions(costs), out)
        return out

    def alive(self, masks) -> bool:
        return len(masks) == len(self.refs) and all(r() is m for r, m in zip(self.refs, masks))

    def floor_counts(self, floor: float):
        """k_ℓ = ⌈floor·n_ℓ⌉ (float64 (L,)) and whether any is > 0."""
        if floor not in self.floor_k:
            ks = [math.ceil(floor * n) if floor > 0 else 0 for n in self.sizes]
            self.floor_k[floor] = (torch.tensor(ks, dtype=torch.float64, device=self.lid.device), any(ks))
        return self.floor_k[floor]


def flat_for(masks, device) -> FlatIndex:
    """The cached :class:`FlatIndex` of this mask list on this device (built once)."""
    cache = masks[0].__dict__.setdefault('_sp_flat', {})
    key = (tuple(id(m) for m in masks), str(device))
    flat = cache.get(key)
    if flat is None or not flat.alive(masks):
        flat = cache[key] = FlatIndex(masks, device)
    return flat


def flat_scale(latents) -> torch.Tensor:
    """rms(Ŵ_ℓ) per mask, (L,), detached, bit-identical to :meth:`~mmsemiprune.core.cascade.SemiMask.normalise`
    (the same pow and mean per tensor, one foreach operator for the squares)."""
    with torch.no_grad():
        sq = torch._foreach_pow([t.detach() for t in latents] if torch.is_grad_enabled() else latents, 2)
        return torch.stack([s.mean() for s in sq]).sqrt().clamp_min(_EPS)


def flat_scores(flat: FlatIndex, masks, latents, reuse: bool = True):
    """(|x| (N,), per slot the group statistics (G_k,), coarse score per entry (N,) or None): the scores
    :meth:`~mmsemiprune.core.cascade.SemiMask.group_scores` gives, for all masks at once (no grad).

    ``reuse`` (the eager search): the flat latents w, the per-entry scale s, x = w / s, |x| and the scores are kept
    on ``flat`` (``flat.shared``, keyed by the latents' versions) for the rest of the step: the compute target's
    probes search again within the step and take the scores as they are, and the batched soft masks (:mod:`.batch`)
    take w and x from there instead of a second cat, gather and divide over all entries. ``reuse=False`` (the
    graphed search) recomputes everything from the live latents (a replay must) and keeps nothing."""
    m0 = masks[0]
    sh = flat.__dict__.get('shared')
    if reuse and sh is not None and unchanged(sh[0], latents):
        return sh[4:]  # (|x|, stats, coarse): the scores depend on the latents alone
    plain = [t.detach() if t.requires_grad else t for t in latents] if torch.is_grad_enabled() else list(latents)
    w = torch._C._nn.flatten_dense_tensors(plain)  # one operator (cat of the flattened tensors)
    if m0.normalize:
        # rms per tensor: reused while the latents are unchanged unless ``reuse`` is False
        cached = getattr(flat, 'scale', None)
        if reuse and cached is not None and unchanged(cached[1], latents):
            scale = cached[0]
        else:
            scale = flat_scale(latents)
            flat.scale = (scale, versions(latents))  # reused by the batched soft masks (.batch)
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
    flat.shared = (versions(latents), w, se, xs, x, stats, coarse) if reuse else None
    return x, stats, coarse
