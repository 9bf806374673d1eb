"""``SemiPruneRecognizerGCN``: MMAction2's ``RecognizerGCN`` with cascaded semi-structured masks.

One-line enabling on any MMAction2 skeleton config::

    model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode='semi'))

The config merge keeps the stock ``backbone`` / ``cls_head`` / ``data_preprocessor``. Masks are created
here, in ``__init__`` (before MMEngine builds the optimizer, wraps DDP, initialises weights or loads a
checkpoint — all measured necessary, see README "The method and our design choices"). The schedule follows the run's
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
from ..core.config import PruneConfig
from ..core.distill import kd_loss
from ..core.pruner import SemiPruner
from ..core.schedule import run_progress
from ..registry import MODELS
from .distill_recognizer import teacher_scores
from .prunable import declare

__all__ = ['SemiPruneRecognizerGCN', 'PRUNE_CFG_KEYS']

#: prune_cfg key → documentation (owned by :class:`~mmsemiprune.core.config.PruneConfig`)
PRUNE_CFG_KEYS = PruneConfig.keys()


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


def bf16_scores_to_float(module, inputs, output):
    """Forward hook of the head: bf16 class scores (``--amp`` with bf16) are returned as float32, which
    ``BaseHead.loss_by_feat``'s ``top_k_accuracy`` (NumPy) needs; other dtypes pass unchanged."""
    if torch.is_tensor(output) and output.dtype == torch.bfloat16:
        return output.float()
    return None


@_config_errors
def precheck_prune_cfg(prune_cfg) -> PruneConfig:
    """Validate ``prune_cfg`` without building anything (:meth:`PruneConfig.from_dict`), so that tools can fail
    before MMEngine builds the runner (and prints the whole config)."""
    return PruneConfig.from_dict(prune_cfg)


@MODELS.register_module()
class SemiPruneRecognizerGCN(RecognizerGCN):
    """RecognizerGCN + :class:`~mmsemiprune.core.SemiPruner` on its backbone (see module docstring).

    Args:
        prune_cfg (dict): the keys of :class:`~mmsemiprune.core.config.PruneConfig` (:data:`PRUNE_CFG_KEYS`),
            validated once here; the pruner receives the validated object.
        Other args as ``RecognizerGCN``.
    """

    @_config_errors
    def __init__(self, backbone, cls_head=None, neck=None, train_cfg=None, test_cfg=None,
                 data_preprocessor=None, prune_cfg: Optional[Dict] = None, **kwargs):
        cfg = PruneConfig.from_dict(prune_cfg)
        super().__init__(backbone=backbone, cls_head=cls_head, neck=neck, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor, **kwargs)
        self.prune_cfg = dict(prune_cfg)
        self.config = cfg
        specs, sets = declare(self.backbone, 'backbone.', cfg.targets, cfg.groups)
        self.pruner = SemiPruner(self, specs, cfg, channel_sets=sets)
        self.distill = cfg.distill
        self._teacher = None
        self._schedule_checked = False
        self._warned_no_progress = False
        if self.cls_head is not None:  # bf16 AMP: MMAction2 1.1.0's top_k_accuracy cannot read bf16 scores
            self.cls_head.register_forward_hook(bf16_scores_to_float)

    # -- schedule ------------------------------------------------------------------------------------
    @_config_errors
    def _resolve_schedule(self, max_iters: int):
        """Turn warmup/freeze/hard iterations or epochs into fractions; reject schedules longer than the run,
        before the first training step."""
        if not self._schedule_checked:
            self.config.resolve_schedule(self.pruner.schedule, max_iters,
                                         MessageHub.get_current_instance().get_info('max_epochs'))
            self.pruner.set_run_length(max_iters)  # update_every='auto'
            self._schedule_checked = True

    def update_schedule(self, inputs: Optional[torch.Tensor] = None):
        """Read the run's progress from the MessageHub and move the pruner there (called in ``loss``)."""
        hub = MessageHub.get_current_instance()
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        if not self.pruner._is_profiled and inputs is not None:
            self.profile(inputs)
        if it is None or not max_iters:
            if not self._warned_no_progress:
                warnings.warn('SemiPruneRecognizerGCN: no iter/max_iters in the MessageHub (not run by MMEngine\'s '
                              'Runner?): the pruning schedule does not advance; call model.pruner.set_progress(p)')
                self._warned_no_progress = True
            return
        self._resolve_schedule(max_iters)
        self.pruner.set_progress(run_progress(it, max_iters))

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
        t_scores = teacher_scores(*self._teacher, inputs)
        return kd_loss(student_scores, t_scores, self.distill['temperature'], self.distill['weight'])

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
        losses['prune_rate'] = self.pruner.rate_now.detach().clone().to(dev)  # no host read (sync) per step
        losses['prune_tau'] = self.pruner.masks[0].temperature.detach().clone().to(dev)
        return losses

    def prune_report(self) -> dict:
        return self.pruner.report()
