"""Switch cross-validation folds in an MMEngine config (e.g. SBU).

Dataset configs with folds use split names ``fold{k}_train`` /
``fold{k}_test``. MMEngine evaluates config variables only at parse time,
so changing a top-level ``fold`` variable later does not change the split
names; :func:`set_fold` rewrites them in the train/val/test dataloaders
(also inside wrappers such as ``RepeatDataset``/``ConcatDataset``).
"""
from __future__ import annotations

import re
from typing import List

__all__ = ['set_fold']

_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(ds):
    """Yield every dataset dict nested in a dataset config."""
    if not isinstance(ds, dict):
        return
    yield ds
    yield from _datasets(ds.get('dataset'))
    for sub in ds.get('datasets', None) or []:
        yield from _datasets(sub)


def set_fold(cfg, fold: int, prefix: str = 'fold') -> List[str]:
    """Point every ``{prefix}N_*`` split of ``cfg``'s dataloaders to ``fold``.

    Args:
        cfg: an ``mmengine.Config`` (or nested dict) with dataloaders.
        fold: the fold number, e.g. 3 -> ``fold3_train`` / ``fold3_test``.
        prefix: split-name prefix (default ``'fold'``).

    Returns:
        ``['train_dataloader: fold3_train', ...]``, what was changed.

    Raises:
        ValueError: if ``fold`` is not a positive int or no split matched.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1:
        raise ValueError(f'fold must be a positive int, got {fold!r}')
    pat = re.compile(rf'^{re.escape(prefix)}\d+_')
    changed = []
    for key in _LOADERS:
        loader = cfg.get(key) if hasattr(cfg, 'get') else None
        if not isinstance(loader, dict):
            continue
        for ds in _datasets(loader.get('dataset')):
            split = ds.get('split')
            if isinstance(split, str) and pat.match(split):
                ds['split'] = pat.sub(f'{prefix}{fold}_', split)
                changed.append(f'{key}: {ds["split"]}')
    if not changed:
        raise ValueError(f'no dataloader split named {prefix}<N>_... found; '
                         'this config has no folds')
    if 'fold' in cfg:
        cfg['fold'] = fold
    info = cfg.get('dataset_info') if hasattr(cfg, 'get') else None
    if isinstance(info, dict) and 'fold' in info:
        info['fold'] = fold
    return changed
