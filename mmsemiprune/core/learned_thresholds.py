"""Learned band positions (``prune_cfg.thresholds='learned'``): the thresholds are trained parameters.

Contract
--------
:func:`use_learned_bands` gives every mask of a pruner a :class:`LearnedBands` submodule ``bands`` (state-dict
keys ``<param>_psi.bands.q_entry`` / ``.q_group``, only the ones the mode uses). Its parameters are the fractions
q_e, q_g ∈ [0, 1 − floor] of the tensor's entries / groups that lie *below* its band; the band positions are the
interpolated empirical quantiles of the current (detached) scores:

    a_e = Q(|x|; q_e),    a_g = Q(s; q_g)       Q(v; q) = v₍ᵢ₎ + f·(v₍ᵢ₊₁₎ − v₍ᵢ₎),  i + f = q·n

over the sorted values v₍₁₎ ≤ … ≤ v₍ₙ₎ with v₍₀₎ = max(0, v₍₁₎ − (v₍ₙ₎ − v₍₁₎)/n) in front (q = 0: every score
above the band, a hard dense start, and a band close enough to the scores to receive a gradient); ``x = Ŵ/rms(Ŵ)``
as in :mod:`.cascade`, ``s`` the group statistics of all the tensor's groupings pooled (one a_g for all of them,
what :meth:`~.cascade.SemiMask.hard` compares the coarse score min_k s_k with). So the hard mask at the band keeps
exactly a fraction 1 − q of the tensor's entries (entry band) or groups (group band).

Why fractions and not raw positions (ours): ∂ψ/∂a lives only within a temperature of the band; a raw a_g started
at 0 sits far below the group statistics (all near 1 for normalised weights) and receives no gradient at all, and
a raw a_e a gradient proportional to the score density at a. Through Q the kept cost of tensor ℓ moves by
≈ −c_ℓ·n_ℓ/N per unit of q whatever the score distribution.

Training (ours): the fractions are parameters of the model, moved by its optimiser from the gradient of the task
loss and of the budget term R = λ((f − (1 − r(p))N)/N)² (:mod:`.budget`), which is now what drives the kept cost
to the schedule; the pruner runs no threshold search in the soft phase. Three choices make that work (measured on
the toy model of tests/core, SGD lr 0.1, 60–100 steps, rates 0.8 / 0.9):

- f is :func:`budget_fraction`: the *hard* kept cost at the current bands (no soft–hard bias: at τ₀ the soft
  count is up to twice the hard one) with the gradient of the soft one, plus a gradient path to the bands at the
  warm-up temperature τ₀ (:func:`warm_kept_fraction`): at the annealed τ, ∂ψ/∂a is a sum of spikes at the scores
  next to the band and the budget's pull on the bands vanishes between them (without that path, λ = 50, the
  hard rate at the end of the soft phase missed the target by up to 0.26);
- the gradient reaching q_ℓ is multiplied by PACE/(c_ℓ·n_ℓ/N) (a fixed diagonal preconditioner, :class:`_Pace`):
  the budget then moves every tensor's fraction at the same pace and the task loss's pull is compared per unit of
  cost, so small tensors are not left behind; the fractions are clamped into [0, 1 − floor] at every
  :meth:`~.pruner.SemiPruner.set_progress` (projected gradient descent);
- no momentum on the fractions (``SemiPruneHook`` gives them a parameter group with momentum 0 and weight decay 0):
  with momentum 0.9 they overshot and the rate missed by up to 0.9 (everything dense at the freeze).

With these, 100-step toy runs met the rate within 0.01 at the end of the soft phase for semi and structured (8 of 8
runs, the test) at λ = 50; unstructured missed by 0.044 in 1 of 4 runs. The pace is relative to the optimiser's
learning rate: a much lower learning rate needs a higher ``budget_weight`` or more mask steps.

There is no hard phase (the soft phase runs to the freeze: the hard phase re-solves its exact masks by the search
every step). At the freeze the search is the final exact projection (:func:`~.finalize.harden`), so the frozen
mask meets the rate exactly; the freeze statistics record the hard kept cost the learned bands met just before it
(``learned_kept``, in ``SemiPruner.hard_stats`` and in ``SemiPruneHook``'s transition line). The thresholds'
buffers ``thr_entry`` / ``thr_group`` follow the bands (:func:`sync_bands`) so that hard masks, reports and the
gate prices read them.

Not combined with ``target_macs`` (its soft projection places the thresholds by the search every step) nor with
``oneshot`` (nothing is trained). The fused batched soft masks (:mod:`.fused.batch`) do not apply: the masks take the
per-tensor reference path (:attr:`~.cascade.SemiMask.needs_reference`), the CUDA-graph search is not used.
"""
import math
from typing import List, Optional, Sequence

import torch
from torch import nn

from .bandstop import band_stop

__all__ = ['LearnedBands', 'quantile_band', 'use_learned_bands', 'sync_bands', 'hard_kept_fraction']


#: the gradient reaching a fraction is multiplied by PACE / (c_ℓ·n_ℓ/N), see :class:`LearnedBands`
PACE = 0.02


class _Pace(torch.autograd.Function):
    """The identity forward; the gradient multiplied by ``k`` backward (a fixed diagonal preconditioner)."""

    @staticmethod
    def forward(ctx, q, k):
        ctx.k = k
        return q.view_as(q)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.k, None


def quantile_band(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Q(values; q): the band position with a fraction q of ``values`` (detached, any shape) below it,
    interpolated linearly between consecutive sorted values with a 0 in front; differentiable in q only."""
    v = torch.sort(values.detach().reshape(-1)).values
    below = (v[0] - (v[-1] - v[0]) / v.numel()).clamp_min(0.0)  # one mean gap below the smallest value, ≥ 0
    v = torch.cat([below.reshape(1), v])
    n = v.numel() - 1
    pos = q.to(v.dtype) * n
    i = pos.detach().floor().clamp(0, n - 1).long()
    f = pos - i.to(v.dtype)
    lo, hi = v[i], v[i + 1]
    return lo + f * (hi - lo)


class LearnedBands(nn.Module):
    """Trained band positions of one mask, as fractions below the band (see the module docstring).

    Args:
        entries: whether the mask uses an entry band (modes semi / unstructured / ctf).
        groups: whether it uses a group band (modes semi / structured / ctf).
        floor: the pruner's ``layer_floor``; q ≤ 1 − floor keeps at least that fraction.
    """

    def __init__(self, entries: bool, groups: bool, floor: float = 0.0, warm: float = 0.2):
        super().__init__()
        self.hi = 1.0 - float(floor)
        self.warm = float(warm)  # temperature of the bands' gradient (see band)
        self.pace = PACE  # PACE / cost share of the tensor, set by sync_bands
        self.q_entry = nn.Parameter(torch.zeros(())) if entries else None
        self.q_group = nn.Parameter(torch.zeros(())) if groups else None

    def fractions(self):
        """(q_e, q_g) as trained, None for a band the mode does not use (their gradient scaled by ``pace``)."""
        return tuple(None if q is None else _Pace.apply(q, self.pace) for q in (self.q_entry, self.q_group))

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the fractions into [0, 1 − floor] in place (projected gradient descent)."""
        for q in (self.q_entry, self.q_group):
            if q is not None:
                q.clamp_(0.0, self.hi)

    def forward(self, entry_scores: Optional[torch.Tensor], group_stats: Sequence[torch.Tensor]):
        """(a_e, a_g) from the tensor's |x| and its groupings' statistics (detached); a band the mode does not
        use is returned as 0."""
        qe, qg = self.fractions()
        zero = (entry_scores if entry_scores is not None else group_stats[0]).new_zeros(())
        a_e = quantile_band(entry_scores, qe) if qe is not None else zero
        a_g = quantile_band(torch.cat([s.reshape(-1) for s in group_stats]), qg) if qg is not None else zero
        return a_e, a_g

    def extra_repr(self):
        return f'max_fraction={self.hi:g}'


def use_learned_bands(masks: List, floor: float = 0.0, warm: float = 0.2) -> None:
    """Give every mask a :class:`LearnedBands` submodule ``bands`` on the mask's device (q = 0: dense)."""
    for m in masks:
        m.bands = LearnedBands(m.uses_entries, m.uses_groups, floor, warm).to(m.thr_entry.device)


@torch.no_grad()
def sync_bands(items) -> None:
    """Write the current learned band positions into ``thr_entry`` / ``thr_group`` of every unfrozen mask
    (``items``: (key, mask, latent)), so that hard masks, reports and the next soft forward agree."""
    items = [it for it in items if not it[1]._is_frozen and it[1]._modules.get('bands') is not None]
    if not items:
        return
    costs = [float(m.cost) * w.numel() for _, m, w in items]
    total = sum(costs)
    for (_, m, w), c in zip(items, costs):
        m.bands.pace = PACE * total / max(c, 1e-12)
        m.bands.project()
        a_e, a_g = m.band_positions(w.detach())
        m.thr_entry.copy_(a_e)
        m.thr_group.copy_(a_g)


@torch.no_grad()
def hard_kept_fraction(items) -> float:
    """Cost-weighted kept fraction of the hard masks at the masks' current thresholds and hard gates (no
    topological consistency): the rate the learned bands meet by themselves."""
    kept = total = 0.0
    for _, m, w in items:
        c = float(m.cost)
        kept += c * float(m.hard(w).sum())
        total += c * w.numel()
    return kept / max(total, 1e-12)




def warm_kept_fraction(items, tau: float) -> Optional[torch.Tensor]:
    """Cost-weighted soft kept fraction at temperature ``tau`` as a function of the band fractions only (latents,
    scores and gates detached, hard gates): the path of the budget's gradient to the bands in
    :func:`budget_fraction`; None without learned bands."""
    kept, total = None, 0.0
    for _, m, w in items:
        if m._modules.get('bands') is None or m._is_frozen:
            continue
        x = m.normalise(w.detach()).abs()
        a_e, a_g = m.band_positions(w.detach(), x)
        pm = m.prune_mode
        entry = band_stop(x, a_e, tau) if pm.entries else None
        coarse = _warm_coarse(m, x, a_g, tau) if pm.groups else None
        psi = pm.combine(coarse, entry, m.gate.hard()[m.gid0].to(entry.dtype) if pm.gated else None)  # hard gates
        term = m.cost.to(psi.dtype) * psi.sum()
        kept = term if kept is None else kept + term
        total += float(m.cost) * w.numel()
    return None if kept is None else kept / max(total, 1e-12)


def _warm_coarse(m, x, a_g, tau):
    """Π_k B(s_k; a_g, τ·spread_k)[gid_k] of mask ``m`` (as :meth:`~.cascade.SemiMask._coarse`)."""
    coarse = None
    for k in range(len(m.groupings)):
        gid = getattr(m, f'gid{k}')
        s = m._group_stat(x, gid, k)
        spread = s.std().clamp_min(1e-3) if s.numel() > 1 else s.new_tensor(1.0)
        b = band_stop(s, a_g, tau * spread)[gid]
        coarse = b if coarse is None else coarse * b
    return coarse


def budget_fraction(soft: torch.Tensor, items, tau: float) -> torch.Tensor:
    """The kept fraction the budget term sees with learned bands.

    Value: the hard kept fraction at the current bands (:func:`hard_kept_fraction`; no soft–hard bias: at τ₀ the
    soft count is up to twice the hard one). Gradient: that of the soft kept fraction ``soft`` (to the latents,
    gates and bands at the annealed τ, as with the search) plus that of :func:`warm_kept_fraction` at the warm-up
    temperature ``tau`` (to the bands only). Why the second path (measured on the toy model): at the annealed τ,
    ∂ψ/∂a is a sum of spikes of height 1/τ at the scores next to the band and the budget's gradient to the bands
    vanishes between them, so the rate drifted by up to 0.3 during the anneal; at τ₀ it stays smooth to the end."""
    hard = soft.new_tensor(hard_kept_fraction(items))
    warm = warm_kept_fraction(items, tau)
    out = soft + (hard - soft).detach()
    return out if warm is None else out + (warm - warm.detach())
