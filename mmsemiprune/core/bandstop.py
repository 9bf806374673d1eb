"""Band-stop magnitude mask.

Our choice (the paper's abstract names a band-stop; its formula is not public, see README
"Design choices"): the symmetrized shifted sigmoid

    ψ_f(x; a, τ) = σ((x − a)/τ) + σ((−x − a)/τ)

of a (normalised) latent value x. It is ≈0 for |x| < a, ≈1 for |x| > a, 1 everywhere (to float rounding) for
a = 0 (σ(u) + σ(−u) = 1, a clean dense start), and tends to the step 1[|x| > a] as τ → 0.
"""
import torch

__all__ = ['band_stop', 'band_stop_hard']


def band_stop(x: torch.Tensor, a, tau) -> torch.Tensor:
    """Smooth band-stop ψ_f(x; a, τ), same shape as ``x``; differentiable in x, a and τ."""
    return torch.sigmoid((x - a) / tau) + torch.sigmoid((-x - a) / tau)


def band_stop_hard(x: torch.Tensor, a) -> torch.Tensor:
    """The τ → 0 limit: boolean 1[|x| > a], same shape as ``x``."""
    return x.abs() > a
