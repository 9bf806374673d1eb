"""Gates computed from the common latent (``prune_cfg.gates='latent'``): no gate parameter at all.

Contract
--------
:func:`use_latent_gates` replaces the :class:`~.gate.Gate` of every semi mask by a :class:`LatentGate` (no
parameter, no state-dict entry beyond the ``decided`` / ``frozen`` buffers every gate has), so that the latent
tensor Ŵ (with the band positions) is the only trained mask state. For group g of the gate's grouping, with
``x = Ŵ/rms(Ŵ)`` as in :mod:`.cascade`:

    ρ_g = mean_{i∈g} |x_i| / RMS_{i∈g}(x_i) ∈ (0, 1]          the group's flatness (1: all entries equally large)
    ρ_ℓ = mean_i |x_i| / RMS_i(x_i)                             the same over the whole tensor (detached)
    u_g = ρ_g − ρ_ℓ,     g_g = σ(u_g / (τ_g · std_g(u)))      (std detached, 1 for a single group)
    hard gate 1[u_g > 0]

Why this function (ours; the paper's gate formula is not public): the gate chooses between removing/keeping a
group whole (g → 1) and thinning it entry by entry (g → 0). Entry-wise pruning pays where a group's magnitude
is concentrated in a few entries (ρ_g small: the entry band keeps its few large entries and drops the rest);
where the entries of a group are all alike (ρ_g near 1) entry-wise pruning would keep all or none of them anyway
and the group-wise decision is the cheaper one to execute. The reference ρ_ℓ is the tensor's own pooled flatness:
when its groups differ in scale (the tensor has channel structure) most groups are flatter than the pool and the
tensor is pruned mostly group-wise; when the groups share one scale and differ inside, mostly entry-wise. No
constant is involved, and as the latent trains (task loss, budget, gate price) the decisions follow it.

Hard decisions: τ_g is the annealed gate temperature (τ/τ₀, :mod:`.schedule`) relative to the spread of u, so as
τ_g → 0 every gate with u_g ≠ 0 tends to 0 or 1 (measured on the toy model: tests/core/test_latent_gate.py).
The pruner refreshes the hard decisions from the current latents at every :meth:`~.pruner.SemiPruner.set_progress`
(:func:`refresh_latent_gates`), so the threshold search, the hard masks and the reports use this step's decisions;
the snapshot / freeze of the hard phase and the freeze work as for learned gates (:mod:`.gate`).

Only for ``mode='semi'`` and ``gate_init=0``. The fused batched soft masks (:mod:`.fused.batch`) do not apply: the
masks take the per-tensor reference path (:attr:`~.cascade.SemiMask.needs_reference`).
"""
from typing import List

import torch

from .gate import Gate
from .groups import group_mean, group_rms

__all__ = ['LatentGate', 'flatness_logits', 'use_latent_gates', 'refresh_latent_gates']


def flatness_logits(x: torch.Tensor, gid: torch.Tensor, num_groups: int, sizes=None) -> torch.Tensor:
    """u_g = ρ_g − ρ_ℓ (G,) of the module docstring; differentiable in ``x`` (ρ_ℓ detached)."""
    rho_g = group_mean(x.abs(), gid, num_groups, sizes) / group_rms(x, gid, num_groups, sizes)
    with torch.no_grad():
        xd = x.detach()
        rho_l = xd.abs().mean() / xd.pow(2).mean().sqrt().clamp_min(1e-15)
    return rho_g - rho_l


class LatentGate(Gate):
    """Gate over ``num_groups`` groups computed from the latent; ``mode == 'latent'``."""

    def __init__(self, num_groups: int):
        torch.nn.Module.__init__(self)
        self.mode = 'latent'
        self.relative = True
        self.num_groups = int(num_groups)
        self.register_buffer('decided', torch.zeros(self.num_groups, dtype=torch.bool))
        self.register_buffer('frozen', torch.tensor(False))
        self._is_frozen = False
        self._u = None  # u of the last evaluation (detached) and its spread
        self._spread = None
        self._last = None  # g of the last forward (with its graph), read by the gate price

    def __getstate__(self):  # the last g is a graph tensor of one step: copies recompute it
        state = super().__getstate__()
        state['_last'] = None
        return state

    def from_latent(self, x: torch.Tensor, gid: torch.Tensor, sizes=None, tau=1.0) -> torch.Tensor:
        """g (G,) from the normalised latent ``x`` (shape of the tensor, ``gid`` its group ids)."""
        u = flatness_logits(x, gid, self.num_groups, sizes)
        self._remember(u)
        g = torch.sigmoid(u / (tau * self._spread))
        self._last = g
        return g

    @torch.no_grad()
    def refresh(self, x: torch.Tensor, gid: torch.Tensor, sizes=None) -> None:
        """Update the hard decisions from the current latent (no graph)."""
        self._remember(flatness_logits(x.detach(), gid, self.num_groups, sizes))
        self._last = None

    @torch.no_grad()
    def _remember(self, u):
        self._u = u.detach().clone()
        self._spread = self._u.std().clamp_min(1e-6) if self._u.numel() > 1 else self._u.new_tensor(1.0)

    def forward(self, tau=1.0) -> torch.Tensor:
        """g of the last forward (with its graph: the gate price reaches the latent through it), or, before any
        forward, σ(u/(τ·spread)) of the last refresh (½ before any)."""
        if self._last is not None:
            return self._last
        if self._u is None:
            return torch.full((self.num_groups, ), 0.5, device=self.decided.device)
        return torch.sigmoid(self._u / (tau * self._spread))

    def live_hard(self) -> torch.Tensor:
        """Boolean (G,): 1[u_g > 0] of the last evaluation (False before any)."""
        if self._u is None:
            return torch.zeros_like(self.decided)
        return self._u > 0


def use_latent_gates(masks: List) -> None:
    """Replace the gate of every gated (semi) mask by a :class:`LatentGate` over its first grouping."""
    for m in masks:
        if m.prune_mode.gated:
            m.gate = LatentGate(m.num_groups[0]).to(m.thr_entry.device)


@torch.no_grad()
def refresh_latent_gates(items) -> None:
    """:meth:`LatentGate.refresh` of every unfrozen latent gate from its current latent (``items``: (key, mask,
    latent))."""
    for _, m, w in items:
        if m.gate.mode == 'latent' and not m.gate._is_frozen:
            m.gate.refresh(m.normalise(w.detach()), m.gid0, m.gsize0)
