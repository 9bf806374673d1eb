"""Registries of the plugin, children of MMAction2's: ``type='mmsemiprune.X'`` auto-imports the
plugin (MMEngine imports ``mmsemiprune.registry`` for the scope, whose ``locations`` import the rest).

Importing this module also sets up the OpenMMLab stack once (:func:`mmsemiprune.compat.setup_stack`:
version check, weights-only-first checkpoint loader, ``mmaction::`` config bases); every glue module
imports it, the core never does.
"""
from mmaction.registry import HOOKS as MMA_HOOKS
from mmaction.registry import MODELS as MMA_MODELS
from mmengine.registry import Registry

from .compat import setup_stack

setup_stack()

MODELS = Registry('model', parent=MMA_MODELS, scope='mmsemiprune',
                  locations=['mmsemiprune.models', 'mmsemiprune.datasets', 'mmsemiprune.export'])
HOOKS = Registry('hook', parent=MMA_HOOKS, scope='mmsemiprune', locations=['mmsemiprune.engine'])
