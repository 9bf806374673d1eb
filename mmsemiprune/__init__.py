"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs for MMAction2.

``mmsemiprune.core`` is the method in plain PyTorch. Importing ``mmsemiprune`` also checks the
OpenMMLab versions, registers a weights-only-first checkpoint loader, makes ``mmaction::`` config
bases resolve in this stack, and registers the glue (recognizer, hooks, CTR-GCN, graph layouts,
datasets) with MMAction2's registries.
"""
__version__ = '0.1.0'

from .compat import check_versions, patch_mim_configs, _register_loader  # noqa: E402

check_versions()
_register_loader()
patch_mim_configs()

from . import datasets  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import models  # noqa: E402,F401
from .engine import SemiPruneHook  # noqa: E402,F401
from .models import SemiPruneRecognizerGCN  # noqa: E402,F401
