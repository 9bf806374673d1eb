"""Gate: per group, arbitrates between the group-wise and the entry-wise mask.

    g = σ(γ / τ_g)   (γ ∈ R^G learned, init 0 → g = ½),    hard gate: 1[γ > 0]

``g → 1`` means "this group is pruned or kept as a whole" (structured), ``g → 0`` "its entries are
pruned individually" (unstructured). Fixing the gate gives the baselines from the same code:
``mode='group'`` (g ≡ 1, structured-only) and ``mode='entry'`` (g ≡ 0, unstructured-only); those
modes have no parameter at all.
"""
import torch
from torch import nn

__all__ = ['Gate', 'GATE_MODES']

GATE_MODES = ('learned', 'group', 'entry')


class Gate(nn.Module):
    """Gate over ``num_groups`` groups. ``forward(tau)`` returns g of shape (G,)."""

    def __init__(self, num_groups: int, mode: str = 'learned', init: float = 0.0):
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f'unknown gate mode {mode!r}; choose one of {GATE_MODES}')
        self.mode = mode
        self.num_groups = int(num_groups)
        if mode == 'learned':
            self.logit = nn.Parameter(torch.full((self.num_groups, ), float(init)))

    def forward(self, tau=1.0) -> torch.Tensor:
        if self.mode == 'learned':
            return torch.sigmoid(self.logit / tau)
        return torch.full((self.num_groups, ), 1.0 if self.mode == 'group' else 0.0)

    def hard(self) -> torch.Tensor:
        """Boolean (G,): True where the group mask decides."""
        if self.mode == 'learned':
            return self.logit.detach() > 0
        return torch.full((self.num_groups, ), self.mode == 'group', dtype=torch.bool)

    def zero_touch(self) -> torch.Tensor:
        """0·Σγ: keeps γ in the autograd graph after freezing (DDP expects every parameter used)."""
        if self.mode == 'learned':
            return self.logit.sum() * 0.0
        return torch.zeros(())

    def extra_repr(self):
        return f'num_groups={self.num_groups}, mode={self.mode}'
