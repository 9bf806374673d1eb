"""Leaderboard methods as edits of one dense model config.

=============  ===================================================================================
dense          the config as is (plain ``RecognizerGCN``): the reference row
semi           ``SemiPruneRecognizerGCN`` mode='semi' (learned band-stop / group / gate cascade)
structured     mode='structured' (learned group masks only)
unstructured   mode='unstructured' (learned entry masks only)
ctf            mode='ctf' (coarse-to-fine product of masks)
magnitude      classic one-shot global magnitude pruning of the dense checkpoint + fine-tuning:
               mode='unstructured', schedule='oneshot', scorer='magnitude'
l1_channel     L1-norm channel pruning of the dense checkpoint + fine-tuning:
               mode='structured', schedule='oneshot', scorer='l1'
semi_oneshot   one-shot semi-structured pruning of the dense checkpoint + fine-tuning: global raw magnitude
               like ``magnitude``, gates decided from the group scores (weak half of each tensor's groups
               pruned or kept whole, the rest entry-wise), ``target_macs`` met by whole channels:
               mode='semi', schedule='oneshot', scorer='magnitude', ablation=dict(gate_init='score')
gmp            gradual magnitude pruning (Zhu & Gupta 2017): hard global-magnitude masks whose rate follows
               the cubic ramp over the whole mask phase (``schedule.warmup = freeze``, ``hard=0``), then the
               same fine-tune as the learned methods: mode='unstructured', scorer='magnitude'
random         a random one-shot mask under ``semi_oneshot``'s rules (rate, gate rule, ``target_macs``,
               consistency): gates and masks decided on random latents, then the same fine-tune:
               ``semi_oneshot`` with scorer='random'
dense_small    the dense model at a reduced width (``widths`` of the group: backbone ``base_channels``, the
               head's ``in_channels`` scaled alike), trained from scratch with the dense recipe
dense_small_ft the same narrow model with the budget of a learned pruning run (``mask_epochs +
               finetune_epochs`` epochs, the dense recipe's optimizer and cosine schedule over them),
               distilled from its fold's dense model (``prune.distill``; :class:`DistillRecognizerGCN`)
=============  ===================================================================================

Every pruning method starts from the dense checkpoint of its own dataset/backbone/fold/seed
(``load_from``); ``randomness.seed`` is the run's seed. Two schedules (keys of the sweep's ``prune``):

- ``epochs: E`` (and ``lr``): every method trains E epochs, lr cosine over the run; the learned methods
  follow ``prune.schedule`` (mask phase, then fine-tuning with frozen masks inside the same E epochs),
  the one-shot baselines fine-tune for all E epochs. The learned methods thus fine-tune *less*.
- ``mask_epochs: M, finetune_epochs: F`` (equal fine-tune): the one-shot baselines train F epochs, lr
  cosine from ``lr`` to 0 over them; the learned methods train M + F epochs: the mask phase at the
  constant ``lr`` for M epochs (``schedule.freeze`` = M / (M + F) unless given; ``schedule.warmup`` is
  a fraction of the whole run), then with frozen masks exactly the one-shot fine-tune (F epochs, cosine
  from ``lr`` to 0). Both groups get the same post-freeze fine-tune. ``mask_lr`` (``constant`` / ``cosine`` /
  ``rewind``) changes the learned methods' lr schedule (:func:`_equal_finetune_schedule`).

Every other key of ``prune`` (and of the per-method ``method_cfg``) goes into ``prune_cfg`` unchanged,
so new ``prune_cfg`` options need no change here.
"""
import copy
from typing import Any, Dict, Optional

__all__ = ['METHODS', 'DENSE_METHODS', 'build_run_config', 'prune_cfg_for', 'run_epochs', 'needs_dense', 'is_oneshot']

METHODS: Dict[str, Dict[str, Any]] = {
    'dense': {},
    'semi': dict(mode='semi'),
    'structured': dict(mode='structured'),
    'unstructured': dict(mode='unstructured'),
    'ctf': dict(mode='ctf'),
    'magnitude': dict(mode='unstructured', schedule='oneshot', scorer='magnitude'),
    'l1_channel': dict(mode='structured', schedule='oneshot', scorer='l1'),
    'semi_oneshot': dict(mode='semi', schedule='oneshot', scorer='magnitude', ablation=dict(gate_init='score')),
    'gmp': dict(mode='unstructured', scorer='magnitude'),
    'random': dict(mode='semi', schedule='oneshot', scorer='random', ablation=dict(gate_init='score')),
    'dense_small': {},
    'dense_small_ft': {},
}
#: methods without masks: a dense model (at its config's width or at a run's ``width``)
DENSE_METHODS = ('dense', 'dense_small', 'dense_small_ft')

# keys of RunSpec.prune that are not prune_cfg keys
_RUN_KEYS = ('epochs', 'lr', 'val_interval', 'from_dense', 'mask_epochs', 'finetune_epochs', 'mask_lr')


def is_oneshot(method: str) -> bool:
    """Whether a method decides its masks at the first step (``schedule='oneshot'``)."""
    return METHODS.get(method, {}).get('schedule') == 'oneshot'


def run_epochs(method: str, prune: Dict, default: int) -> Dict[str, Optional[int]]:
    """``dict(epochs=total, mask=mask-phase epochs or None, finetune=F or None)`` of a pruning run."""
    oneshot = is_oneshot(method)
    if prune.get('finetune_epochs') is not None:
        f = int(prune['finetune_epochs'])
        m = 0 if oneshot else int(prune.get('mask_epochs', 0))
        if f < 1 or m < 0 or (not oneshot and m < 1):
            raise ValueError(f'finetune_epochs must be >= 1 and mask_epochs >= 1 (learned methods), got '
                             f'finetune_epochs={f}, mask_epochs={prune.get("mask_epochs")}')
        return dict(epochs=m + f, mask=m, finetune=f)
    return dict(epochs=int(prune.get('epochs', default)), mask=None, finetune=None)


def prune_cfg_for(method: str, rate: float, prune: Optional[Dict] = None, extra: Optional[Dict] = None) -> Dict:
    """The ``prune_cfg`` of a method at a rate (``prune``: the group's pruning-run settings)."""
    if method not in METHODS or method in DENSE_METHODS:
        raise ValueError(f'no prune_cfg for method {method!r}')
    cfg = dict(METHODS[method])
    cfg['target_rate'] = float(rate)
    prune = dict(prune or {})
    for k, v in prune.items():
        if k in _RUN_KEYS:
            continue
        if k == 'schedule' and cfg.get('schedule') == 'oneshot':
            continue  # one-shot baselines freeze at the first step
        cfg[k] = copy.deepcopy(v)
    if prune.get('finetune_epochs') is not None and cfg.get('schedule') != 'oneshot':
        ep = run_epochs(method, prune, 0)
        sched = dict(cfg.get('schedule') or {})
        sched.setdefault('freeze', ep['mask'] / ep['epochs'])
        cfg['schedule'] = sched
    if method == 'gmp':  # the cubic ramp spans the mask phase, on hard magnitude masks from the first step
        sched = dict(cfg.get('schedule') or {})
        sched.update(warmup=sched.get('freeze', 0.8), hard=0.0)
        cfg['schedule'] = sched
    for k, v in copy.deepcopy(extra or {}).items():  # method_cfg: the ablation sub-dict merged key by key
        cfg[k] = dict(cfg[k], **v) if k == 'ablation' and isinstance(cfg.get(k), dict) and isinstance(v, dict) else v
    return cfg


def needs_dense(spec) -> bool:
    """Whether a run needs the dense checkpoint of its fold and seed (start point or teacher)."""
    return spec.method not in ('dense', 'dense_small') and spec.prune.get('from_dense', True)


def _set_width(model, width: int) -> None:
    """Backbone ``base_channels`` = width; the head's ``in_channels`` scaled by the same factor."""
    base = int(model['backbone'].get('base_channels', 64))
    head = model.get('cls_head')
    model['backbone']['base_channels'] = int(width)
    if head is not None and head.get('in_channels') is not None:
        scale = int(head['in_channels']) // base
        if scale * base != int(head['in_channels']):
            raise ValueError(f'cls_head.in_channels {head["in_channels"]} is not a multiple of base_channels {base}: '
                             'cannot derive the narrow head')
        head['in_channels'] = scale * int(width)


def _set_epochs(cfg, epochs: int, prune: Dict) -> None:
    """A run of ``epochs`` epochs, validated at the end (or every ``prune.val_interval``)."""
    cfg.train_cfg['max_epochs'] = epochs
    cfg.train_cfg['val_interval'] = int(prune.get('val_interval', epochs))
    cfg.train_cfg['val_begin'] = 1


def _cosine_over_run(cfg, epochs: int) -> None:
    """The config's cosine schedule stretched over the whole run of ``epochs`` epochs."""
    for s in cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else [cfg.param_scheduler]:
        if s.get('type') == 'CosineAnnealingLR':
            s['T_max'] = epochs
        s.pop('end', None)


def _dense_config(cfg, spec, dense_ckpt):
    """dense / dense_small / dense_small_ft: a plain (or distilled) RecognizerGCN."""
    teacher = copy.deepcopy(dict(backbone=cfg.model['backbone'], cls_head=cfg.model.get('cls_head')))
    cfg.model['type'] = 'RecognizerGCN'  # also when the given config is a pruned one
    cfg.model.pop('prune_cfg', None)
    if spec.method == 'dense':
        return cfg
    if spec.width is None:
        raise ValueError(f'{spec.rel_dir()}: {spec.method} needs a width')
    _set_width(cfg.model, spec.width)
    if spec.method == 'dense_small':
        return cfg
    prune = dict(spec.prune or {})
    if prune.get('finetune_epochs') is None:
        raise ValueError(f'{spec.rel_dir()}: dense_small_ft takes the budget of a learned pruning run: set '
                         'prune.mask_epochs and prune.finetune_epochs')
    if dense_ckpt is None:
        raise ValueError(f'{spec.rel_dir()}: dense_small_ft distils from the dense checkpoint of its fold and seed')
    epochs = int(prune.get('mask_epochs', 0)) + int(prune['finetune_epochs'])
    _set_epochs(cfg, epochs, prune)
    _cosine_over_run(cfg, epochs)
    distill = dict(prune.get('distill') or dict(weight=1.0, temperature=4.0))
    distill.pop('checkpoint', None)
    cfg.model['type'] = 'mmsemiprune.DistillRecognizerGCN'
    cfg.model['distill'] = dict(distill, teacher=teacher, checkpoint=dense_ckpt)
    return cfg


#: the mask phase's learning-rate schedules of an equal-fine-tune run (``prune.mask_lr``)
MASK_LR = ('constant', 'cosine', 'rewind')


def _equal_finetune_schedule(cfg, spec, prune: Dict, ep: Dict, dense_lr: float) -> None:
    """The lr schedule of a ``mask_epochs`` / ``finetune_epochs`` run (M + F epochs). Learned methods by
    ``prune.mask_lr``: ``constant`` (the default): ``lr`` for M epochs, then the F-epoch cosine from ``lr`` to 0 that
    the one-shot baselines get; ``cosine``: the mask phase anneals from ``lr`` to 0 too, and the fine-tune restarts
    at ``lr`` (cosine with one restart); ``rewind``: the mask phase at ``lr``, then the fine-tune rewinds to the
    dense recipe's lr (the config's) and anneals it to 0 (learning-rate rewinding, Renda et al. 2020). One-shot
    methods (M = 0) get the F-epoch cosine whatever ``mask_lr`` says."""
    m, f, epochs = ep['mask'], ep['finetune'], ep['epochs']
    lr = float(cfg.optim_wrapper['optimizer']['lr'])
    mode = prune.get('mask_lr', 'constant')
    if mode not in MASK_LR:
        raise ValueError(f'{spec.rel_dir()}: unknown prune.mask_lr {mode!r}; choose one of {", ".join(MASK_LR)}')
    it = dict(by_epoch=True, convert_to_iter_based=True)
    finetune = dict(type='CosineAnnealingLR', eta_min=0, T_max=f, begin=m, end=epochs, **it)
    if m == 0 or mode == 'constant':
        cfg.param_scheduler = [finetune]
    elif mode == 'cosine':
        cfg.param_scheduler = [dict(type='CosineRestartLR', periods=[m, f], restart_weights=[1.0, 1.0], eta_min=0,
                                    begin=0, end=epochs, **it)]
    else:
        if not 0.0 < lr <= dense_lr:
            raise ValueError(f'{spec.rel_dir()}: prune.mask_lr=rewind rewinds the fine-tune to the dense lr '
                             f'{dense_lr:g}, which must be >= the mask phase lr {lr:g}')
        # lr for M epochs, multiplied up to the dense lr at the first fine-tune step, then annealed
        cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[m], gamma=dense_lr / lr, begin=0, end=epochs,
                                    **it), finetune]


def build_run_config(spec, dense_ckpt: Optional[str] = None):
    """An ``mmengine.Config`` for one run (``spec``: :class:`~.spec.RunSpec`)."""
    from mmengine.config import Config

    from ..datasets.folds import set_fold

    cfg = Config.fromfile(spec.config)
    if spec.cfg_options:
        cfg.merge_from_dict(copy.deepcopy(spec.cfg_options))
    if spec.fold is not None:
        set_fold(cfg, int(spec.fold))
    cfg.randomness = dict(seed=int(getattr(spec, 'seed', 0) or 0), deterministic=False)
    if spec.method in DENSE_METHODS:
        return _dense_config(cfg, spec, dense_ckpt)
    prune = dict(spec.prune or {})
    cfg.model['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
    cfg.model['prune_cfg'] = prune_cfg_for(spec.method, spec.rate, prune, spec.method_cfg)
    ep = run_epochs(spec.method, prune, cfg.train_cfg.get('max_epochs'))
    epochs = ep['epochs']
    _set_epochs(cfg, epochs, prune)
    dense_lr = float(cfg.optim_wrapper['optimizer']['lr'])
    if 'lr' in prune:
        cfg.optim_wrapper['optimizer']['lr'] = float(prune['lr'])
    if ep['finetune'] is not None:
        _equal_finetune_schedule(cfg, spec, prune, ep, dense_lr)
    else:
        _cosine_over_run(cfg, epochs)
    if prune.get('from_dense', True):
        if dense_ckpt is None:
            raise ValueError(f'{spec.rel_dir()}: needs the dense checkpoint of its fold and seed')
        cfg.load_from = dense_ckpt
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') in ('mmsemiprune.SemiPruneHook', 'SemiPruneHook')]
    if not hooks:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='mmsemiprune.SemiPruneHook')]
    return cfg
