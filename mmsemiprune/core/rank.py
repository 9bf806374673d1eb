"""Rank surrogate (``prune_cfg.rank_weight``): a differentiable count of live rows and columns, priced in MACs.

Contract
--------
Every masked tensor ℓ is read as a matrix M_ℓ of R_ℓ rows × C_ℓ columns: its soft mask ψ_ℓ reshaped to
(shape[0], rest), i.e. out × in·k for a conv weight (for an adjacency (K, V, V): K × V·V). A row is *live* when
any of its entries is kept; the rank of the masked matrix is at most min(live rows, live columns), and a dead row
or column is one that export can drop. The soft liveness of a row (resp. column) is the probability that at least
one of its entries survives when each entry survives with probability ψ:

    ℓ_o = 1 − Π_i (1 − ψ_o,i),      ℓ_i = 1 − Π_o (1 − ψ_o,i);     r̃ = Σ_o ℓ_o,   c̃ = Σ_i ℓ_i

which is exactly the number of live rows / columns of a binary mask, so the surrogate equals the live row / column
count as τ → 0 (tests/core/test_rank.py); ψ ∈ [0, 1] for band positions ≥ 0 (:mod:`.bandstop`). Priced by the
MACs they cost per sample (``macs`` buffer of each mask, MACs of one entry, recorded by
:meth:`~.pruner.SemiPruner.profile`, the counts of :mod:`.compute`): a row of ℓ costs P_ℓ·C_ℓ, a column P_ℓ·R_ℓ:

    R_rank = Σ_ℓ P_ℓ·(C_ℓ·r̃_ℓ + R_ℓ·c̃_ℓ) / Σ_ℓ 2·P_ℓ·R_ℓ·C_ℓ        ∈ [0, 1], 1 for dense masks

and the pruner adds ``rank_weight · R_rank`` to its budget loss in the soft phase (0 in the hard phase and once
frozen, whose masks are constants). Before profiling, every entry is priced 1 (P_ℓ = 1: parameters).

What it does (ours; the paper's "surrogate tensor rank" regularizer is not public): the gradient of ℓ_o with respect
to ψ_o,i is Π_{j≠i}(1 − ψ_o,j), which is ≈ 0 for a row with any confidently kept entry and largest for a row
whose entries are all nearly pruned: it finishes off rows and columns that are almost dead (a structural saving
that entry counts do not see) and leaves live ones to the task loss and the budget term. It works on the masks'
``last_psi`` of the last forward, so it applies on the fused batched path too.
"""
from typing import Iterable, Tuple

import torch

__all__ = ['soft_live_counts', 'hard_live_counts', 'rank_surrogate']


def _matrix(psi: torch.Tensor) -> torch.Tensor:
    if psi.dim() == 0:
        raise ValueError('the rank surrogate needs masks of tensors with at least one dimension, got a scalar')
    return psi.reshape(psi.shape[0], -1)


def soft_live_counts(psi: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(r̃, c̃): soft counts of the live rows and columns of ``psi`` (values in [0, 1]) reshaped to
    (shape[0], rest); differentiable."""
    m = _matrix(psi)
    dead = 1.0 - m
    return (1.0 - dead.prod(dim=1)).sum(), (1.0 - dead.prod(dim=0)).sum()


@torch.no_grad()
def hard_live_counts(mask: torch.Tensor) -> Tuple[int, int]:
    """(rows, columns) of the boolean ``mask`` reshaped to (shape[0], rest) with at least one kept entry."""
    m = _matrix(mask.bool())
    return int(m.any(dim=1).sum()), int(m.any(dim=0).sum())


def rank_surrogate(masks: Iterable) -> torch.Tensor:
    """R_rank of the module docstring over the masks' ``last_psi`` (masks without one are skipped; 0 when none)."""
    num = den = None
    for m in masks:
        psi = m.last_psi
        if psi is None:
            continue
        rows, cols = soft_live_counts(psi)
        R, C = _matrix(psi).shape
        P = m.macs.to(psi.dtype)
        P = torch.where(P > 0, P, torch.ones_like(P))
        n, d = P * (C * rows + R * cols), 2.0 * P * R * C
        num, den = (n, d) if num is None else (num + n, den + d)
    if num is None:
        return torch.zeros(())
    return num / den
