"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs for MMAction2.

``mmsemiprune.core`` is the method in plain PyTorch. Importing ``mmsemiprune`` also checks the
OpenMMLab versions, registers a weights-only-first checkpoint loader, makes ``mmaction::`` config
bases resolve in this stack, and registers the glue (recognizer, hooks, CTR-GCN, graph layouts,
datasets) with MMAction2's registries.
"""
__version__ = '0.1.0'

import importlib.util as _ilu

if _ilu.find_spec('mmaction') is not None:  # the core (mmsemiprune.core) needs only torch
    from .compat import check_versions, patch_mim_configs, _register_loader

    check_versions()
    _register_loader()
    patch_mim_configs()

    from . import datasets  # noqa: F401
    from . import engine  # noqa: F401
    from . import export  # noqa: F401  (CompactRecognizerGCN)
    from . import models  # noqa: F401
    from .engine import SemiPruneHook  # noqa: F401
    from .models import SemiPruneRecognizerGCN  # noqa: F401
