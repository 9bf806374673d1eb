"""Test-only modules for tests/reliability, imported by the test configs (``custom_imports``) and in-process.

- ``RelTinyBackbone``: a backbone registered in MMAction2 that the plugin has no declaration for.
- ``RelNaNAtIter``: makes the loss NaN at a given (1-based) iteration by filling ``data_bn.weight`` with NaN.
- ``RelNaNGradAtIter``: makes one parameter's gradient NaN at a given iteration (finite loss).
- ``RelKillAtIter``: SIGKILLs the training process before a given (1-based) iteration, once per work dir
  (a marker file ``KILLED`` keeps the resumed run alive) — a real kill, not a clean stop.
"""
import os
import os.path as osp
import signal

from mmaction.registry import HOOKS, MODELS
from mmengine.hooks import Hook
import torch
from torch import nn


@MODELS.register_module(force=True)
class RelTinyBackbone(nn.Module):

    def __init__(self, in_channels=3, out_channels=16):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        n, m, t, v, c = x.shape
        x = x.permute(0, 1, 4, 2, 3).reshape(n * m, c, t, v)
        return self.conv(x).reshape(n, m, -1, t, v)


def _model(runner):
    return runner.model.module if hasattr(runner.model, 'module') else runner.model


@HOOKS.register_module(force=True)
class RelNaNAtIter(Hook):

    def __init__(self, iter):
        self.at = iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            _model(runner).backbone.data_bn.weight.data.fill_(float('nan'))


@HOOKS.register_module(force=True)
class RelKillAtIter(Hook):

    def __init__(self, iter):
        self.at = iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        flag = osp.join(runner.work_dir, 'KILLED')
        if runner.iter + 1 == self.at and not osp.exists(flag):
            open(flag, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class RelNaNGradAtIter(Hook):
    """Makes the gradient of one parameter NaN at a given (1-based) iteration; the loss stays finite."""

    def __init__(self, iter, param='cls_head.fc.weight'):
        self.at, self.param, self.handle = iter, param, None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            p = dict(_model(runner).named_parameters())[self.param]
            self.handle = p.register_hook(lambda g: torch.full_like(g, float('nan')))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
