"""Scorers: how the entries and the groups of a pruned tensor are ranked (``prune_cfg.scorer``).

A scorer names the magnitude that the thresholds cut, in the manner of an importance criterion:

=================  ===========================================  ==============================
name               entry score                                  group score
=================  ===========================================  ==============================
``normalized``     |Ŵ| / rms(Ŵ) per tensor (the default)        RMS of the entry scores
``magnitude``      raw |Ŵ|, one global scale (classic global    RMS of the entry scores
                   magnitude pruning)
``l1``             |Ŵ| / rms(Ŵ) per tensor                      mean of the entry scores (the
                                                                L1-norm channel criterion)
``magnitude_l1``   raw |Ŵ|                                      mean of the entry scores
``random``         standard normal draws of the run's seed in       RMS of the entry scores
                   place of Ŵ (one-shot only: the ``random``
                   baseline, :meth:`SemiPruner._scored_latents`)
=================  ===========================================  ==============================

With a schedule (the learned methods) the scores are what the soft masks and thresholds follow during
training; with ``schedule='oneshot'`` they decide the masks once, from the loaded weights. The baselines
are a mode and a scorer: global magnitude pruning is ``mode='unstructured', scorer='magnitude'``, L1-norm
channel pruning ``mode='structured', scorer='l1'``, each with ``schedule='oneshot'``.

Every scorer is described by two attributes, ``normalize`` and ``group_stat``, which the masks'
batched paths (:mod:`.fused.batch`, :mod:`.budget`, :mod:`.fused.cudagraph`) evaluate directly;
:meth:`Scorer.entry_scores` and :meth:`Scorer.group_scores` are the reference definitions (tests check
both paths give the same numbers). A new scorer is a subclass registered with :func:`register_scorer`.
"""
from typing import Dict, Type, Union

import torch

from .groups import group_mean, group_rms

__all__ = ['Scorer', 'NormalizedMagnitude', 'Magnitude', 'L1', 'MagnitudeL1', 'RandomScores', 'SCORERS', 'register_scorer',
           'build_scorer', 'scorer_for_flags']

_EPS = 1e-12

#: scorer name -> class (the one table of scoring strategies)
SCORERS: Dict[str, Type['Scorer']] = {}


def register_scorer(cls: Type['Scorer']) -> Type['Scorer']:
    """Class decorator: make ``cls`` available as ``prune_cfg.scorer=cls.name``."""
    if not cls.name or cls.name in SCORERS:
        raise ValueError(f'scorer name {cls.name!r} is empty or already registered')
    SCORERS[cls.name] = cls
    return cls


class Scorer:
    """Base class: ranks the entries and the groups of one tensor by magnitude.

    Attributes:
        name: the ``prune_cfg.scorer`` name.
        normalize: divide each tensor by its RMS before ranking (per-tensor scale), or rank raw |Ŵ|
            across all tensors (one global scale).
        group_stat: ``'rms'`` or ``'l1'``: how a group's entry scores are aggregated.
    """
    name: str = ''
    normalize: bool = True
    group_stat: str = 'rms'
    random: bool = False  # the masks are decided on random draws in place of the latents (one-shot only)

    def scale(self, latent: torch.Tensor) -> torch.Tensor:
        """x = Ŵ / rms(Ŵ) (scale detached) or x = Ŵ: the signed values whose magnitude is ranked."""
        if not self.normalize:
            return latent
        return latent / latent.detach().pow(2).mean().sqrt().clamp_min(_EPS)

    def entry_scores(self, latent: torch.Tensor) -> torch.Tensor:
        """Score of every entry, the shape of ``latent``."""
        return self.scale(latent).abs()

    def group_scores(self, latent: torch.Tensor, gid: torch.Tensor, num_groups: int, sizes=None) -> torch.Tensor:
        """(num_groups,) score of each group of ``gid`` (the group id of every entry)."""
        x = self.scale(latent)
        if self.group_stat == 'l1':
            return group_mean(x.abs(), gid, num_groups, sizes)
        return group_rms(x, gid, num_groups, sizes)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r})'


@register_scorer
class NormalizedMagnitude(Scorer):
    """|Ŵ| / rms(Ŵ) per tensor, groups by RMS (the method's default)."""
    name = 'normalized'


@register_scorer
class Magnitude(Scorer):
    """Raw global |Ŵ|, groups by RMS (classic global magnitude pruning)."""
    name = 'magnitude'
    normalize = False


@register_scorer
class L1(Scorer):
    """|Ŵ| / rms(Ŵ) per tensor, groups by their mean |·| (the L1-norm channel criterion, Li et al. 2017)."""
    name = 'l1'
    group_stat = 'l1'


@register_scorer
class MagnitudeL1(Scorer):
    """Raw global |Ŵ|, groups by their mean |·|."""
    name = 'magnitude_l1'
    normalize = False
    group_stat = 'l1'


@register_scorer
class RandomScores(Scorer):
    """A random mask under the magnitude masks' rules: the pruner decides gates and masks once (one-shot) on
    standard normal draws in place of the latents, then restores the latents; raw scale, groups by RMS."""
    name = 'random'
    normalize = False
    random = True


def build_scorer(scorer: Union[str, Scorer, None]) -> Scorer:
    """A :class:`Scorer` from its name (or the scorer itself; None: the default)."""
    if scorer is None:
        scorer = 'normalized'
    if isinstance(scorer, Scorer):
        return scorer
    if isinstance(scorer, type) and issubclass(scorer, Scorer):
        return scorer()
    if scorer not in SCORERS:
        raise ValueError(f'unknown prune_cfg.scorer {scorer!r}; choose one of {", ".join(SCORERS)} '
                         "(e.g. prune_cfg=dict(scorer='magnitude'))")
    return SCORERS[scorer]()


def scorer_for_flags(normalize: bool = True, group_stat: str = 'rms') -> str:
    """The scorer name of the flag pair ``normalize`` / ``group_stat``."""
    for name, cls in SCORERS.items():
        if not cls.random and cls.normalize == bool(normalize) and cls.group_stat == group_stat:
            return name
    raise ValueError(f"unknown group_stat {group_stat!r}; choose 'rms' (default) or 'l1' (mean |w|, "
                     'the L1-norm channel criterion of Li et al. 2017)')
