"""MMAction2 glue: recognizer, backbones and per-backbone prunable declarations."""
from .backbones import *  # noqa: F401,F403  (registers CTRGCN in MMAction2's MODELS)
from .prunable import declare, supported_backbones
from .distill_recognizer import DistillRecognizerGCN
from .recognizer import SemiPruneRecognizerGCN

__all__ = ['SemiPruneRecognizerGCN', 'DistillRecognizerGCN', 'declare', 'supported_backbones']
