"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs for MMAction2.

``mmsemiprune.core`` is the method in plain PyTorch: ``import mmsemiprune.core`` (or any module under it)
imports torch only, and this file then does nothing else (no OpenMMLab import, no registration, no patch).

``import mmsemiprune`` (the package itself: ``custom_imports=dict(imports=['mmsemiprune'])``, the tools) and
the import of any other subpackage call :func:`register_all` when MMAction2 is installed: the stack set-up of
:mod:`mmsemiprune.registry` (version check, weights-only-first checkpoint loader, ``mmaction::`` config
bases; see :mod:`mmsemiprune.compat`) and the registration of the glue (recognizer, hooks, CTR-GCN, graph
layouts, datasets, compact export model). ``type='mmsemiprune.X'`` in a config reaches the same through
MMEngine's scope import of :mod:`mmsemiprune.registry`. Python imports a package once: after a first
``import mmsemiprune.core``, call :func:`register_all` (idempotent) before relying on plain-name types.
"""
import importlib.util as _ilu
import sys as _sys

__version__ = '0.1.0'

_LAZY = dict(SemiPruneHook='engine', SemiPruneRecognizerGCN='models')


def register_all() -> None:
    """Set up the OpenMMLab stack and register every glue module with MMAction2's registries (idempotent)."""
    from . import registry  # noqa: F401  (stack set-up)
    from . import datasets, engine, export, models  # noqa: F401


def __getattr__(name):  # mmsemiprune.SemiPruneHook / mmsemiprune.SemiPruneRecognizerGCN, imported on use
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _importing_the_core() -> bool:
    """True while this file runs as the parent of an ``import mmsemiprune.core[...]``: importlib's frames
    below us then hold the name being imported (CPython's ``_find_and_load(name, ...)``; pinned by
    tests/test_core_imports.py)."""
    frame = _sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith('<frozen importlib'):
            name = frame.f_locals.get('name')
            if isinstance(name, str) and (name == f'{__name__}.core' or name.startswith(f'{__name__}.core.')):
                return True
        frame = frame.f_back
    return False


def _mmaction_installed() -> bool:
    try:
        return _ilu.find_spec('mmaction') is not None
    except (ImportError, ValueError):
        return False


if not _importing_the_core() and _mmaction_installed():
    register_all()
