"""``DistillRecognizerGCN``: a plain ``RecognizerGCN`` (any width) trained with distillation from a teacher
of another architecture or width, e.g. the full-width dense model.

Config::

    model = dict(type='mmsemiprune.DistillRecognizerGCN', backbone=..., cls_head=...,
                 distill=dict(teacher=dict(backbone=..., cls_head=...),   # the teacher's model parts
                              checkpoint='work_dirs/dense/epoch_50.pth',  # the teacher's weights
                              weight=1.0, temperature=4.0))

The loss adds ``loss_distill`` = :func:`mmsemiprune.core.distill.kd_loss` of the student's class scores
against the teacher's on the same clips. The teacher is built at the first training step, loaded from
``checkpoint`` (every teacher parameter must be found there), kept in eval mode and out of the state dict,
the optimizer and DDP. Without ``distill`` the model is exactly ``RecognizerGCN``.
"""
import copy
from typing import Dict, Optional

import torch
from mmaction.models.recognizers import RecognizerGCN

from ..core.distill import kd_loss
from ..registry import MODELS

__all__ = ['DistillRecognizerGCN', 'teacher_scores']


@torch.no_grad()
def teacher_scores(backbone, head, inputs: torch.Tensor) -> torch.Tensor:
    """A teacher's class scores of a GCN batch, flattened as ``RecognizerGCN.extract_feat`` does:
    (N, clips, M, T, V, C) -> (N·clips, M, T, V, C)."""
    return head(backbone(inputs.reshape((-1, ) + tuple(inputs.shape[2:]))))


def _check(distill: Optional[Dict]) -> Optional[Dict]:
    if distill is None:
        return None
    d = dict(distill)
    unknown = set(d) - {'teacher', 'checkpoint', 'weight', 'temperature'}
    if unknown:
        raise ValueError(f'DistillRecognizerGCN.distill: unknown keys {sorted(unknown)}; keys are teacher, '
                         'checkpoint, weight, temperature')
    teacher = d.get('teacher')
    if not isinstance(teacher, dict) or 'backbone' not in teacher or 'cls_head' not in teacher:
        raise ValueError('DistillRecognizerGCN.distill.teacher must be dict(backbone=..., cls_head=...), the '
                         "teacher's model parts")
    if not d.get('checkpoint'):
        raise ValueError("DistillRecognizerGCN.distill.checkpoint is required: the teacher's weights")
    d['weight'], d['temperature'] = float(d.get('weight', 1.0)), float(d.get('temperature', 4.0))
    if d['weight'] < 0 or d['temperature'] <= 0:
        raise ValueError(f'DistillRecognizerGCN.distill needs weight >= 0 and temperature > 0, got '
                         f'weight={d["weight"]}, temperature={d["temperature"]}')
    return d


@MODELS.register_module()
class DistillRecognizerGCN(RecognizerGCN):
    """RecognizerGCN + distillation from a teacher model (see the module docstring)."""

    def __init__(self, *args, distill: Optional[Dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.distill = _check(distill)
        self._teacher = None

    @torch.no_grad()
    def _make_teacher(self, device):
        from ..compat import load_checkpoint_file
        cfg = copy.deepcopy(self.distill['teacher'])
        teacher = MODELS.build(dict(type='RecognizerGCN', backbone=cfg['backbone'], cls_head=cfg['cls_head']))
        sd = load_checkpoint_file(self.distill['checkpoint'], map_location='cpu')
        sd = sd.get('state_dict', sd)
        sd = {k: v for k, v in sd.items() if k.startswith(('backbone.', 'cls_head.'))}
        missing, _ = teacher.load_state_dict(sd, strict=False)
        missing = [k for k in missing if k.startswith(('backbone.', 'cls_head.'))]
        if missing:
            raise ValueError(f'DistillRecognizerGCN.distill.checkpoint {self.distill["checkpoint"]!r} lacks '
                             f'{missing[0]} (and {len(missing) - 1} more): not a checkpoint of the teacher')
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, '_teacher', teacher)  # not a submodule: out of state dict / optimizer / DDP

    def loss(self, inputs, data_samples, **kwargs) -> dict:
        if self.distill is None:
            return super().loss(inputs, data_samples, **kwargs)
        if self._teacher is None:
            self._make_teacher(inputs.device)
        scores = []
        hook = self.cls_head.register_forward_hook(lambda m, i, o: scores.append(o))
        try:
            losses = super().loss(inputs, data_samples, **kwargs)
        finally:
            hook.remove()
        t_scores = teacher_scores(self._teacher.backbone, self._teacher.cls_head, inputs)
        losses['loss_distill'] = kd_loss(scores[-1], t_scores, self.distill['temperature'], self.distill['weight'])
        return losses
