"""``SemiPruneRecognizerGCN``: MMAction2's ``RecognizerGCN`` with cascaded semi-structured masks.

One-line enabling on any MMAction2 skeleton config::

    model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode='semi'))

The config merge keeps the stock ``backbone`` / ``cls_head`` / ``data_preprocessor``. Masks are created
here, in ``__init__`` (before MMEngine builds the optimizer, wraps DDP, initialises weights or loads a
checkpoint — all measured necessary, see README "Design choices"). The schedule follows the run's
progress read from MMEngine's MessageHub (``iter`` / ``max_iters``), so no hook is required; the budget
regularizer is added as ``loss_prune`` and the achieved rate is logged as ``prune_rate``.
"""
import functools
import warnings
from typing import Dict, Optional

import torch
from mmaction.models.recognizers import RecognizerGCN
from mmengine.logging import MessageHub

from ..compat import ConfigError, check_state_dict
from ..core.budget import COSTS
from ..core.cascade import MODES
from ..core.groups import parse_grouping
from ..core.pruner import SemiPruner, check_rate
from ..core.schedule import PruneSchedule
from ..registry import MODELS
from .prunable import declare

__all__ = ['SemiPruneRecognizerGCN', 'PRUNE_CFG_KEYS']

PRUNE_CFG_KEYS = dict(
    target_rate='fraction of the prunable cost to remove, in (0, 1)  [required]',
    mode="'semi' | 'structured' | 'unstructured' | 'ctf'  ['semi']",
    cost="'params' | 'flops': what the rate counts  ['params']",
    budget_weight='λ of the budget regularizer  [5.0]',
    layer_floor='minimum kept fraction of every tensor  [0.01]',
    schedule='dict(warmup=0.3, freeze=0.8, tau_start=0.2, tau_end=1e-3) as fractions of the run, '
    'or warmup_iters/freeze_iters, warmup_epochs/freeze_epochs',
    targets='dict(gcn=True, tcn=True, residual=True, adjacency=False, attention=False) or a list of '
    'dict(pattern=regex, groups=[...])',
    groups="per-role group specs, e.g. dict(tcn=['out', 'in'])",
    oneshot='True: freeze the masks at the first step from the loaded (pretrained) weights, then fine-tune: '
    'one-shot magnitude / L1-channel baselines  [False]',
    normalize='score by |w|/rms per tensor (True) or raw global |w| (False)  [True]',
    group_stat="'rms' | 'l1' group aggregation  ['rms']",
    gate_init='initial gate logit (0 undecided, >0 structure first)  [0.0]',
    gate_price='constant shadow price of kept cost seen by the gates (more structure when > 0)  [1.0]',
    gate_price_by="'params' | 'macs' | 'both': what the gate price counts (macs: the compute a group frees "
    "when removed whole)  ['both']",
    hard_phase='train the last quarter of the anneal on the hard, consistent masks (straight-through); '
    'the freeze keeps them exactly  [True]',
    mask_bias="mask each conv bias with its output row  [True]",
    target_macs='compute budget: MACs after channel removal <= target_macs x dense (ST-GCN / ST-GCN++)  [None]',
    distill='dict(weight=1.0, temperature=4.0, checkpoint=None): distil from the dense model (the weights at '
    'the first training step, or checkpoint)  [None]',
    prune_head='never: the head and BatchNorms are not pruned (reserved, must be False)',
)


def _parse_schedule(cfg):
    cfg = dict(cfg or {})
    abs_keys = {k: cfg.pop(k) for k in ('warmup_iters', 'freeze_iters', 'hard_iters', 'warmup_epochs', 'freeze_epochs', 'hard_epochs')
                if k in cfg}
    for k, v in abs_keys.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f'prune_cfg.schedule.{k} must be a non-negative integer, got {v!r}')
    try:
        sched = PruneSchedule(**cfg)
    except TypeError as e:
        raise ValueError(f'bad prune_cfg.schedule {cfg!r}: {e}; keys are warmup, freeze, hard, tau_start, tau_end, '
                         'warmup_iters, freeze_iters, hard_iters, warmup_epochs, freeze_epochs, hard_epochs') from None
    return sched, abs_keys


def _check_groups(groups):
    """Name the field in group-spec errors (the core only sees the spec, e.g. "unknown group kind 'x'")."""
    if groups is None:
        return
    if not isinstance(groups, dict):
        raise ValueError(f"prune_cfg.groups must be a dict role -> list of group specs, e.g. dict(tcn=['out', 'in']), "
                         f'got {groups!r}')
    for role, specs in groups.items():
        if isinstance(specs, (str, dict)) or not isinstance(specs, (list, tuple)):
            raise ValueError(f"prune_cfg.groups.{role} must be a list of group specs such as ['out'], got {specs!r}")
        for spec in specs:
            try:
                parse_grouping(spec)
            except ValueError as e:
                raise ValueError(f'prune_cfg.groups.{role}: {e}') from None


def _config_errors(fn):
    """Re-raise the ValueErrors of config validation as :class:`~mmsemiprune.compat.ConfigError`, which
    tools/train.py and tools/test.py print as one ``error: <message>`` line (exit 2) instead of a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(str(e)) from e
    return wrapper


def _bf16_scores_to_float(module, inputs, output):
    """Forward hook of the head: bf16 class scores (``--amp`` with bf16) are returned as float32, which
    ``BaseHead.loss_by_feat``'s ``top_k_accuracy`` (NumPy) needs; other dtypes pass unchanged."""
    if torch.is_tensor(output) and output.dtype == torch.bfloat16:
        return output.float()
    return None


@_config_errors
def precheck_prune_cfg(prune_cfg) -> None:
    """Validate ``prune_cfg`` without building anything, so that tools can fail before MMEngine builds the
    runner (and prints the whole config). The recognizer validates again, with the backbone at hand."""
    if prune_cfg is None or 'target_rate' not in dict(prune_cfg):
        raise ValueError('SemiPruneRecognizerGCN needs prune_cfg with a target_rate, e.g. '
                         "model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', "
                         "prune_cfg=dict(target_rate=0.9, mode='semi'))")
    prune_cfg = dict(prune_cfg)
    check_rate(prune_cfg['target_rate'], 'prune_cfg.target_rate')
    unknown = sorted(set(prune_cfg) - set(PRUNE_CFG_KEYS))
    if unknown:
        raise ValueError(f'unknown prune_cfg key(s) {unknown}; valid keys: {", ".join(PRUNE_CFG_KEYS)} '
                         '(see README "prune_cfg keys")')
    mode = prune_cfg.get('mode', 'semi')
    if mode not in MODES:
        raise ValueError(f'unknown pruning mode {mode!r}; choose one of {", ".join(MODES)} '
                         "(e.g. prune_cfg=dict(mode='semi'))")
    cost = prune_cfg.get('cost', 'params')
    if cost not in COSTS:
        raise ValueError(f'unknown prune_cfg.cost {cost!r}; choose one of {", ".join(COSTS)}')
    if not prune_cfg.get('oneshot'):
        _parse_schedule(prune_cfg.get('schedule'))
    _check_groups(prune_cfg.get('groups'))


def _check_distill(cfg):
    """``distill=dict(weight=1.0, temperature=4.0, checkpoint=None)`` → validated dict, or None."""
    if cfg is None or cfg is False:
        return None
    if not isinstance(cfg, dict):
        raise ValueError(f'prune_cfg.distill must be a dict such as dict(weight=1.0, temperature=4.0), got {cfg!r}')
    unknown = sorted(set(cfg) - {'weight', 'temperature', 'checkpoint'})
    if unknown:
        raise ValueError(f'unknown prune_cfg.distill key(s) {unknown}; keys are weight, temperature, checkpoint')
    out = dict(weight=1.0, temperature=4.0, checkpoint=None)
    out.update(cfg)
    for k in ('weight', 'temperature'):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f'prune_cfg.distill.{k} must be a positive number, got {v!r}')
    return out


@MODELS.register_module()
class SemiPruneRecognizerGCN(RecognizerGCN):
    """RecognizerGCN + :class:`~mmsemiprune.core.SemiPruner` on its backbone (see module docstring).

    Args:
        prune_cfg (dict): see :data:`PRUNE_CFG_KEYS`.
        Other args as ``RecognizerGCN``.
    """

    @_config_errors
    def __init__(self, backbone, cls_head=None, neck=None, train_cfg=None, test_cfg=None,
                 data_preprocessor=None, prune_cfg: Optional[Dict] = None, **kwargs):
        precheck_prune_cfg(prune_cfg)
        prune_cfg = dict(prune_cfg)
        if prune_cfg.get('prune_head'):
            raise ValueError('prune_cfg.prune_head=True is not supported: the classifier is never pruned')
        super().__init__(backbone=backbone, cls_head=cls_head, neck=neck, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor, **kwargs)
        self.prune_cfg = prune_cfg
        if prune_cfg.get('oneshot'):
            if prune_cfg.get('schedule'):
                raise ValueError('prune_cfg.oneshot=True freezes the masks at the first step; drop prune_cfg.schedule')
            prune_cfg['schedule'] = dict(warmup=0.0, freeze=0.0)
        schedule, self._abs_schedule = _parse_schedule(prune_cfg.get('schedule'))
        _check_groups(prune_cfg.get('groups'))
        specs, sets = declare(self.backbone, 'backbone.', prune_cfg.get('targets'), prune_cfg.get('groups'))
        self.pruner = SemiPruner(self, specs, target_rate=prune_cfg['target_rate'],
                                 mode=prune_cfg.get('mode', 'semi'), cost=prune_cfg.get('cost', 'params'),
                                 budget_weight=prune_cfg.get('budget_weight', 5.0),
                                 layer_floor=prune_cfg.get('layer_floor', 0.01), schedule=schedule,
                                 channel_sets=sets, normalize=prune_cfg.get('normalize', True),
                                 group_stat=prune_cfg.get('group_stat', 'rms'),
                                 gate_init=prune_cfg.get('gate_init', 0.0), gate_price=prune_cfg.get('gate_price', 1.0),
                                 gate_price_by=prune_cfg.get('gate_price_by', 'both'),
                                 hard_phase=prune_cfg.get('hard_phase', True), mask_bias=prune_cfg.get('mask_bias', True),
                                 target_macs=prune_cfg.get('target_macs'))
        self.distill = _check_distill(prune_cfg.get('distill'))
        self._teacher = None
        self._schedule_checked = False
        self._warned_no_progress = False
        if self.cls_head is not None:  # bf16 AMP: MMAction2 1.1.0's top_k_accuracy cannot read bf16 scores
            self.cls_head.register_forward_hook(_bf16_scores_to_float)

    # -- schedule ------------------------------------------------------------------------------------
    @_config_errors
    def _resolve_schedule(self, max_iters: int):
        """Turn absolute warmup/freeze iterations or epochs into fractions; reject schedules longer than
        the run, before the first training step."""
        if self._schedule_checked or not self._abs_schedule:
            self._schedule_checked = True
            return
        hub = MessageHub.get_current_instance()
        max_epochs = hub.get_info('max_epochs')
        s = self.pruner.schedule
        for k, v in self._abs_schedule.items():
            field, unit = k.split('_')
            if unit == 'epochs':
                if not max_epochs:
                    raise ValueError(f'prune_cfg.schedule.{k} needs an epoch-based run; use {field}_iters or a fraction')
                if v > max_epochs:
                    raise ValueError(f'prune_cfg.schedule.{k}={v} is longer than the run (max_epochs={max_epochs}); '
                                     f'lower it or train longer')
                frac = v / max_epochs
            else:
                if v > max_iters:
                    raise ValueError(f'prune_cfg.schedule.{k}={v} is longer than the run (max_iters={max_iters}); '
                                     f'lower it or train longer')
                frac = v / max_iters
            setattr(s, field, frac)
        s.validate()
        self._schedule_checked = True

    def update_schedule(self, inputs: Optional[torch.Tensor] = None):
        """Read the run's progress from the MessageHub and move the pruner there (called in ``loss``)."""
        hub = MessageHub.get_current_instance()
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        if not bool(self.pruner.profiled) and inputs is not None:
            self.profile(inputs)
        if it is None or not max_iters:
            if not self._warned_no_progress:
                warnings.warn('SemiPruneRecognizerGCN: no iter/max_iters in the MessageHub (not run by MMEngine\'s '
                              'Runner?): the pruning schedule does not advance; call model.pruner.set_progress(p)')
                self._warned_no_progress = True
            return
        self._resolve_schedule(max_iters)
        p = it / max_iters
        if it >= max_iters - 1:
            p = 1.0  # the last step always ends frozen
        self.pruner.set_progress(p)

    @torch.no_grad()
    def profile(self, inputs: torch.Tensor):
        """Record per-entry MACs of each pruned tensor with one eval-mode forward of one sample."""
        was = self.training
        self.eval()
        try:
            x = inputs[:1]
            self.pruner.profile(lambda: self.extract_feat(x))
        finally:
            self.train(was)

    # -- checkpoints ---------------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Called first, with the whole state dict, by torch's and MMEngine's load_state_dict: refuse another
        # architecture / width here, before any tensor is copied (MMEngine's non-strict load only logs it).
        check_state_dict(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- losses --------------------------------------------------------------------------------------
    # -- distillation --------------------------------------------------------------------------------
    @torch.no_grad()
    def _make_teacher(self, device):
        """The dense teacher: an unmasked copy of backbone + head, from ``distill.checkpoint`` or from the
        weights at the first training step (the loaded dense checkpoint, before any mask bites). Kept out of
        the state dict, the optimizer and DDP; eval mode (the dense BatchNorm statistics)."""
        import copy
        from ..core.reparam import strip_masks
        backbone, head = copy.deepcopy(self.backbone), copy.deepcopy(self.cls_head)
        strip_masks(backbone)
        ckpt = self.distill.get('checkpoint')
        if ckpt:
            from ..compat import load_checkpoint_file
            sd = load_checkpoint_file(ckpt, map_location='cpu')
            sd = sd.get('state_dict', sd)
            for prefix, mod in (('backbone.', backbone), ('cls_head.', head)):
                part = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and '_psi.' not in k}
                missing, unexpected = mod.load_state_dict(part, strict=False)
                if missing:
                    raise ValueError(f'prune_cfg.distill.checkpoint {ckpt!r} lacks {prefix}{missing[0]} '
                                     f'(and {len(missing) - 1} more): it is not a checkpoint of this architecture')
        elif MessageHub.get_current_instance().get_info('iter') not in (None, 0):
            warnings.warn('prune_cfg.distill without a checkpoint after a resume: the teacher is the resumed '
                          'student; set prune_cfg.distill.checkpoint to the dense checkpoint')
        for mod in (backbone, head):
            mod.to(device).eval()
            for p in mod.parameters():
                p.requires_grad_(False)
        object.__setattr__(self, '_teacher', (backbone, head))

    def _distill_loss(self, inputs, student_scores):
        if self._teacher is None:
            self._make_teacher(inputs.device)
        backbone, head = self._teacher
        with torch.no_grad():  # as RecognizerGCN.extract_feat: (N, clips, M, T, V, C) → (N·clips, M, T, V, C)
            x = inputs.reshape((-1, ) + tuple(inputs.shape[2:]))
            t_scores = head(backbone(x)).float()
        T = float(self.distill['temperature'])
        log_p = torch.log_softmax(student_scores.float() / T, dim=1)
        q = torch.softmax(t_scores / T, dim=1)
        return float(self.distill['weight']) * T * T * torch.nn.functional.kl_div(log_p, q, reduction='batchmean')

    def loss(self, inputs, data_samples, **kwargs) -> dict:
        if self.distill is not None and self._teacher is None:
            self._make_teacher(inputs.device)  # before the first schedule step can bite (one-shot freezes at once)
        self.update_schedule(inputs)
        scores = []
        hook = self.cls_head.register_forward_hook(lambda m, i, o: scores.append(o)) if self.distill else None
        try:
            losses = super().loss(inputs, data_samples, **kwargs)
        finally:
            if hook is not None:
                hook.remove()
        if self.distill is not None and scores:
            losses['loss_distill'] = self._distill_loss(inputs, scores[-1])
        loss_prune = self.pruner.budget_loss().to(inputs.device)
        losses['loss_prune'] = loss_prune
        dev = inputs.device
        losses['prune_rate'] = torch.tensor(float(self.pruner.rate_now), device=dev)
        losses['prune_tau'] = self.pruner.masks[0].temperature.detach().clone().to(dev)
        return losses

    def prune_report(self) -> dict:
        return self.pruner.report()
