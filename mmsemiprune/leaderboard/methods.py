"""Leaderboard methods as edits of one dense model config.

=============  ===================================================================================
dense          the config as is (plain ``RecognizerGCN``): the reference row
semi           ``SemiPruneRecognizerGCN`` mode='semi' (learned band-stop / group / gate cascade)
structured     mode='structured' (learned group masks only)
unstructured   mode='unstructured' (learned entry masks only)
ctf            mode='ctf' (coarse-to-fine product of masks)
magnitude      classic one-shot global magnitude pruning of the dense checkpoint + fine-tuning:
               mode='unstructured', oneshot=True, normalize=False
l1_channel     L1-norm channel pruning of the dense checkpoint + fine-tuning:
               mode='structured', oneshot=True, group_stat='l1'
=============  ===================================================================================

Every pruning method starts from the same dense checkpoint of its dataset/backbone/fold (``load_from``)
and trains ``prune.epochs`` epochs at ``prune.lr`` (cosine); the learned methods follow
``prune.schedule`` (mask phase, then fine-tuning with frozen masks), the one-shot baselines fine-tune
for the whole run.
"""
import copy
from typing import Any, Dict, Optional

__all__ = ['METHODS', 'build_run_config', 'prune_cfg_for']

METHODS: Dict[str, Dict[str, Any]] = {
    'dense': {},
    'semi': dict(mode='semi'),
    'structured': dict(mode='structured'),
    'unstructured': dict(mode='unstructured'),
    'ctf': dict(mode='ctf'),
    'magnitude': dict(mode='unstructured', oneshot=True, normalize=False),
    'l1_channel': dict(mode='structured', oneshot=True, group_stat='l1'),
}

# keys of RunSpec.prune that are not prune_cfg keys
_RUN_KEYS = ('epochs', 'lr', 'val_interval', 'from_dense')


def prune_cfg_for(method: str, rate: float, prune: Optional[Dict] = None, extra: Optional[Dict] = None) -> Dict:
    """The ``prune_cfg`` of a method at a rate (``prune``: the group's pruning-run settings)."""
    if method not in METHODS or method == 'dense':
        raise ValueError(f'no prune_cfg for method {method!r}')
    cfg = dict(METHODS[method])
    cfg['target_rate'] = float(rate)
    prune = dict(prune or {})
    for k, v in prune.items():
        if k in _RUN_KEYS:
            continue
        if k == 'schedule' and cfg.get('oneshot'):
            continue  # one-shot baselines freeze at the first step
        cfg[k] = copy.deepcopy(v)
    cfg.update(copy.deepcopy(extra or {}))
    return cfg


def build_run_config(spec, dense_ckpt: Optional[str] = None):
    """An ``mmengine.Config`` for one run (``spec``: :class:`~.spec.RunSpec`)."""
    from mmengine.config import Config

    from ..datasets.folds import set_fold

    cfg = Config.fromfile(spec.config)
    if spec.cfg_options:
        cfg.merge_from_dict(copy.deepcopy(spec.cfg_options))
    if spec.fold is not None:
        set_fold(cfg, int(spec.fold))
    cfg.randomness = dict(seed=0, deterministic=False)
    if spec.method == 'dense':
        cfg.model['type'] = 'RecognizerGCN'  # also when the given config is a pruned one
        cfg.model.pop('prune_cfg', None)
        return cfg
    prune = dict(spec.prune or {})
    cfg.model['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
    cfg.model['prune_cfg'] = prune_cfg_for(spec.method, spec.rate, prune, spec.method_cfg)
    epochs = int(prune.get('epochs', cfg.train_cfg.get('max_epochs')))
    cfg.train_cfg['max_epochs'] = epochs
    cfg.train_cfg['val_interval'] = int(prune.get('val_interval', epochs))
    cfg.train_cfg['val_begin'] = 1
    for s in cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else [cfg.param_scheduler]:
        if s.get('type') == 'CosineAnnealingLR':
            s['T_max'] = epochs
        s.pop('end', None)
    if 'lr' in prune:
        cfg.optim_wrapper['optimizer']['lr'] = float(prune['lr'])
    if prune.get('from_dense', True):
        if dense_ckpt is None:
            raise ValueError(f'{spec.name}: needs the dense checkpoint of its fold')
        cfg.load_from = dense_ckpt
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') in ('mmsemiprune.SemiPruneHook', 'SemiPruneHook')]
    if not hooks:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='mmsemiprune.SemiPruneHook')]
    return cfg
