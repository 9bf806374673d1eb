"""Registries of the plugin, children of MMAction2's: ``type='mmsemiprune.X'`` auto-imports the
plugin (MMEngine imports ``mmsemiprune.registry`` for the scope, whose ``locations`` import the rest).

Importing this module is registering the plugin: it checks the OpenMMLab versions, applies
:func:`mmsemiprune.compat.apply_mmengine_patches` (once per process), which a stock MMAction2 run with
``custom_imports`` or a ``type='mmsemiprune.X'`` needs, and imports every glue module (models, datasets,
engine, export). The glue modules import it; the core never does.
"""
from mmaction.registry import HOOKS as MMA_HOOKS
from mmaction.registry import MODELS as MMA_MODELS
from mmengine.registry import Registry

from .compat import apply_mmengine_patches

apply_mmengine_patches()

MODELS = Registry('model', parent=MMA_MODELS, scope='mmsemiprune',
                  locations=['mmsemiprune.models', 'mmsemiprune.datasets', 'mmsemiprune.export'])
HOOKS = Registry('hook', parent=MMA_HOOKS, scope='mmsemiprune', locations=['mmsemiprune.engine'])


def _register_the_glue() -> None:
    """Registering is all or nothing: whichever glue module is imported first, every one is registered
    (the others import this module, which is already in ``sys.modules``)."""
    import importlib
    for name in ('models', 'datasets', 'engine', 'export'):
        importlib.import_module(f'mmsemiprune.{name}')


_register_the_glue()
