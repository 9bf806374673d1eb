"""MMAction2 glue: recognizer, backbones and per-backbone prunable declarations."""
from .backbones import *  # noqa: F401,F403  (registers CTRGCN in MMAction2's MODELS)
from .prunable import declare, supported_backbones
from .recognizer import SemiPruneRecognizerGCN

__all__ = ['SemiPruneRecognizerGCN', 'declare', 'supported_backbones']
