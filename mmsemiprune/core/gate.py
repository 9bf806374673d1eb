"""Gate: per group, arbitrates between the group-wise and the entry-wise mask.

    g = σ(γ / (τ_g · s))   (γ ∈ R^G learned, init 0 → g = ½),    hard gate: 1[γ > 0]

with ``s = mean_g |γ_g|`` (detached; ``relative=True``, the default) or ``s = 1``. Ours, measured: the
learned logits of an SBU run stay at |γ| ≈ 0.01–0.15, so with s = 1 and τ_g annealed to 0.025 at the start
of the hard phase, 56–98 % of the gates of each layer were still in (0.05, 0.95): the trained network was a
blend of group and entry masks and the hard decision 1[γ > 0] changed it. Relative to the logits' own scale,
τ_g → 0 does decide every gate.

``g → 1`` means "this group is pruned or kept as a whole" (structured), ``g → 0`` "its entries are
pruned individually" (unstructured). Fixing the gate gives the baselines from the same code:
``mode='group'`` (g ≡ 1, structured-only) and ``mode='entry'`` (g ≡ 0, unstructured-only); those
modes have no parameter at all.

Frozen decisions (ours): the hard decisions that shaped the last trained mask are stored in the buffer
``decided`` (G,) and, once ``frozen``, :meth:`Gate.hard` reads that buffer, never the live logits,
which optimizers may still move after the freeze (zero gradient + momentum + weight decay).
"""
import torch
from torch import nn

__all__ = ['Gate', 'GATE_MODES']

GATE_MODES = ('learned', 'group', 'entry')


class Gate(nn.Module):
    """Gate over ``num_groups`` groups. ``forward(tau)`` returns g of shape (G,)."""

    def __init__(self, num_groups: int, mode: str = 'learned', init: float = 0.0, relative: bool = True):
        super().__init__()
        self.relative = bool(relative)
        if mode not in GATE_MODES:
            raise ValueError(f'unknown gate mode {mode!r}; choose one of {GATE_MODES}')
        self.mode = mode
        self.num_groups = int(num_groups)
        if mode == 'learned':
            self.logit = nn.Parameter(torch.full((self.num_groups, ), float(init)))
        self.register_buffer('decided', torch.full((self.num_groups, ), mode == 'group', dtype=torch.bool))
        self.register_buffer('frozen', torch.tensor(False))
        self._is_frozen = False  # host-side mirror of ``frozen`` (no device sync in the training step)

    @torch.no_grad()
    def init_logits(self, values: torch.Tensor) -> None:
        """Set γ (learned mode only), e.g. from the group scores (see ``SemiPruner(gate_init='score')``)."""
        if self.mode == 'learned':
            self.logit.copy_(values.to(self.logit))

    @torch.no_grad()
    def snapshot(self) -> None:
        """Store the current hard decisions in ``decided`` (used once frozen)."""
        if not self._is_frozen:
            self.decided.copy_(self.live_hard())

    @torch.no_grad()
    def freeze(self) -> None:
        """From now on :meth:`hard` returns ``decided`` (take a :meth:`snapshot` first if needed)."""
        self.frozen.fill_(True)
        self._is_frozen = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._is_frozen = bool(self.frozen)

    def forward(self, tau=1.0) -> torch.Tensor:
        if self.mode == 'learned':
            if self.relative:
                tau = tau * self.logit.detach().abs().mean().clamp_min(1e-6)
            return torch.sigmoid(self.logit / tau)
        return torch.full((self.num_groups, ), 1.0 if self.mode == 'group' else 0.0)

    def live_hard(self) -> torch.Tensor:
        """Boolean (G,) from the live logits: 1[γ > 0]."""
        if self.mode == 'learned':
            return self.logit.detach() > 0
        return self.decided.clone()

    def hard(self) -> torch.Tensor:
        """Boolean (G,): True where the group mask decides (the stored decisions once frozen)."""
        if self._is_frozen:
            return self.decided.clone()
        return self.live_hard()

    def extra_repr(self):
        return f'num_groups={self.num_groups}, mode={self.mode}'
