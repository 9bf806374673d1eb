"""Schedule of the pruning run as a function of training progress p = iter / max_iters ∈ [0, 1].

Our choice (the paper's schedule is not public):

- ``[0, warmup)``: the target rate ramps from 0 to r with the cubic of Zhu & Gupta (2017),
  ``r(p) = r·(1 − (1 − p/warmup)³)``, at a fixed temperature τ₀ (measured: annealing while the budget
  is still moving freezes the rate before it is met).
- ``[warmup, freeze)``: τ decays geometrically from τ₀ to τ₁ (masks become binary).
- ``[hard, freeze)`` (our choice: the trained mask is the frozen mask): the forward pass uses
  the *hard*, topologically consistent masks at the exact rate (no surrogate gradient through the mask,
  see :mod:`.cascade`), so the network trains on the mask it will keep; the freeze then stores the last of
  these masks unchanged. ``hard=None`` places it at the last quarter of the anneal,
  ``warmup + 0.75·(freeze − warmup)``; ``hard=freeze`` switches the phase off. ``hard`` may also lie
  *inside* the warm-up (``hard < warmup``): the hard masks then follow the ramping rate, recomputed from
  the weights' magnitudes as the rate moves: with ``hard=0`` and ``warmup=freeze`` this is gradual magnitude
  pruning (Zhu & Gupta 2017: cubic ramp, magnitude masks, pruned weights get no gradient).
- ``[freeze, 1]``: masks are frozen binary at exactly r; the remaining iterations fine-tune the kept
  weights and re-estimate BatchNorm statistics under the final masks.
"""
from dataclasses import asdict, dataclass
from typing import Optional

__all__ = ['PruneSchedule', 'run_progress']


def run_progress(it: int, max_iters: int) -> float:
    """Progress p of training step ``it`` (0-based) of ``max_iters``: it / max_iters, and 1 at the last step
    (a run always ends with frozen masks)."""
    return 1.0 if it >= max_iters - 1 else it / max_iters


@dataclass
class PruneSchedule:
    warmup: float = 0.3
    freeze: float = 0.8
    tau_start: float = 0.2
    tau_end: float = 1e-3
    hard: Optional[float] = None

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise a ValueError naming the field when the schedule is inconsistent."""
        for k in ('warmup', 'freeze') + (('hard', ) if self.hard is not None else ()):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f'schedule.{k} must be a fraction of the run in [0, 1], got {v!r}; '
                                 'e.g. schedule=dict(warmup=0.3, freeze=0.8)')
        if self.warmup > self.freeze:
            raise ValueError(f'schedule.warmup ({self.warmup}) must not exceed schedule.freeze ({self.freeze}): '
                             'the rate must reach its target before the masks are frozen')
        if not (self.tau_start > 0 and self.tau_end > 0 and self.tau_end <= self.tau_start):
            raise ValueError(f'schedule needs 0 < tau_end <= tau_start, got tau_start={self.tau_start}, '
                             f'tau_end={self.tau_end}')
        if self.hard is not None and not self.hard <= self.freeze:
            raise ValueError(f'schedule.hard ({self.hard}) must not exceed schedule.freeze ({self.freeze}); '
                             'hard=freeze switches the hard phase off')

    @property
    def hard_start(self) -> float:
        """Progress at which the hard phase starts."""
        if self.hard is not None:
            return float(self.hard)
        return self.warmup + 0.75 * (self.freeze - self.warmup)

    def in_hard_phase(self, p: float) -> bool:
        """True in [hard_start, freeze) when that interval is not empty."""
        return self.hard_start <= float(p) < self.freeze

    def rate(self, p: float, target: float) -> float:
        """Scheduled pruning rate at progress p."""
        p = min(max(float(p), 0.0), 1.0)
        if self.warmup <= 0 or p >= self.warmup:
            return target
        return target * (1.0 - (1.0 - p / self.warmup) ** 3)

    def tau(self, p: float) -> float:
        """Band-stop temperature at progress p (normalised-latent units)."""
        p = min(max(float(p), 0.0), 1.0)
        if p <= self.warmup:
            return self.tau_start
        span = self.freeze - self.warmup
        f = 1.0 if span <= 0 else min((p - self.warmup) / span, 1.0)
        return self.tau_start * (self.tau_end / self.tau_start) ** f

    def frozen(self, p: float) -> bool:
        return float(p) >= self.freeze

    def to_dict(self):
        return asdict(self)
