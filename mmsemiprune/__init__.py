"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs for MMAction2.

``mmsemiprune.core`` is the method in plain PyTorch. In a process that does not use MMEngine, importing
this package or the core imports torch only: no OpenMMLab module, no registration, no patch.

The MMAction2 glue is registered

- by :func:`register_all` (what the project's tools call), or by importing :mod:`mmsemiprune.registry`,
  which every glue module imports (``mmsemiprune.models``, ``.engine``, ``.export``) and which registers
  all of them; ``type='mmsemiprune.X'`` in a config reaches it through MMEngine's scope import;
- by importing this package inside a process that already uses MMEngine (``mmengine`` imported): that is
  how a config's ``custom_imports=dict(imports=['mmsemiprune'])`` imports it, and the import then registers
  everything, so that plain type names (``type='CTRGCN'``) resolve as well.

Registration also applies the two MMEngine patches the plugin needs (:func:`apply_mmengine_patches`: the
weights-only-first checkpoint loader and ``pkg::`` config bases without ``pkg_resources``), so that a stock
``mmaction2/tools/train.py`` run with ``custom_imports`` resumes its checkpoints under torch >= 2.6. The
project's tools call :func:`apply_mmengine_patches` themselves, before they parse a config.
"""
import importlib.util as _ilu
import sys as _sys

__version__ = '0.1.0'

_LAZY = dict(SemiPruneHook='engine', SemiPruneRecognizerGCN='models')


def register_all() -> None:
    """Register every glue module with MMAction2's registries (idempotent); registering applies
    :func:`apply_mmengine_patches`."""
    from . import registry  # noqa: F401  (version check, patches, the plugin's registries)
    from . import datasets, engine, export, models  # noqa: F401


def apply_mmengine_patches() -> None:
    """Check the OpenMMLab versions and apply the MMEngine patches once per process (idempotent):
    MMEngine's local checkpoint loader becomes :func:`mmsemiprune.compat.load_checkpoint_file` (weights-only
    first, full unpickling only for trusted files) and ``mmengine.config`` resolves ``mmaction::`` bases
    with importlib (see :mod:`mmsemiprune.compat`)."""
    from .compat import apply_mmengine_patches as _apply
    _apply()


def __getattr__(name):  # mmsemiprune.SemiPruneHook / mmsemiprune.SemiPruneRecognizerGCN, imported on use
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _mmaction_installed() -> bool:
    try:
        return _ilu.find_spec('mmaction') is not None
    except (ImportError, ValueError):
        return False


if 'mmengine' in _sys.modules and _mmaction_installed():  # custom_imports: MMEngine is running
    register_all()
