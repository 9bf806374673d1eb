"""Validation splits carved from a training split, disjoint from it and from the test split.

Every choice the project makes (hyper-parameters, defaults, variants, checkpoints) is read on a validation
split; the test split only reports, once per finished run. The converters write, beside each training
split ``<name>_train`` (kept whole, as published), a *fit* split ``<name>_fit`` and a *validation* split
``<name>_val`` that partition it:

- :func:`stratified_holdout`: per class, ``round(fraction · n_c)`` sequences (at least 1 when the class has
  2 or more) go to validation; which ones is a fixed pseudo-random draw keyed by the sequence names, so
  the split depends only on the set of names, not on their order or on the machine (SBU: a part of each
  training fold; FPHA: a part of the 1:1 training half).
- :func:`group_holdout`: whole groups (e.g. subjects) go to validation, so that no subject is in both
  (MSR Action3D: one of the five training subjects).
"""
from __future__ import annotations

import hashlib
from typing import Dict, Hashable, List, Sequence, Tuple

__all__ = ['stratified_holdout', 'group_holdout', 'add_holdout_splits', 'VAL_FRACTION']

#: fraction of each class of a training split that goes to validation
VAL_FRACTION = 0.2


def _draw(name: str, seed: int) -> str:
    return hashlib.sha256(f'{seed}:{name}'.encode()).hexdigest()


def stratified_holdout(names: Sequence[str], labels: Sequence[int], fraction: float = VAL_FRACTION,
                       seed: int = 0) -> Tuple[List[str], List[str]]:
    """Split ``names`` into ``(fit, val)``, class-stratified; both keep the order of ``names``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f'fraction must be in (0, 1), got {fraction!r}')
    if len(names) != len(labels):
        raise ValueError(f'{len(names)} names but {len(labels)} labels')
    if len(set(names)) != len(names):
        raise ValueError('names must be unique')
    by_class: Dict[int, List[str]] = {}
    for n, c in zip(names, labels):
        by_class.setdefault(int(c), []).append(n)
    held = set()
    for members in by_class.values():
        k = int(round(fraction * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0
        held.update(sorted(members, key=lambda n: _draw(n, seed))[:k])
    return [n for n in names if n not in held], [n for n in names if n in held]


def group_holdout(names: Sequence[str], groups: Sequence[Hashable], held: Sequence[Hashable]
                  ) -> Tuple[List[str], List[str]]:
    """``(fit, val)``: the names whose group is in ``held`` go to validation."""
    if len(names) != len(groups):
        raise ValueError(f'{len(names)} names but {len(groups)} groups')
    held = set(held)
    missing = held - set(groups)
    if missing:
        raise ValueError(f'held-out groups {sorted(missing)} have no sequence')
    fit = [n for n, g in zip(names, groups) if g not in held]
    if not fit:
        raise ValueError('holding out these groups leaves no sequence to fit on')
    return fit, [n for n, g in zip(names, groups) if g in held]


def add_holdout_splits(split: Dict[str, List[str]], label_of: Dict[str, int], fraction: float = VAL_FRACTION,
                       seed: int = 0) -> Dict[str, List[str]]:
    """For every ``<p>_train`` (or ``train``) split add ``<p>_fit`` / ``<p>_val`` (``fit`` / ``val``) by
    :func:`stratified_holdout`; returns ``split`` (changed in place)."""
    for name in [n for n in split if n == 'train' or n.endswith('_train')]:
        prefix = name[:-len('train')]
        names = split[name]
        fit, val = stratified_holdout(names, [label_of[n] for n in names], fraction, seed)
        split[f'{prefix}fit'], split[f'{prefix}val'] = fit, val
    return split
