"""MMEngine hooks of the plugin (schedule-independent reporting, final freeze, fault guards)."""
from .hooks import SemiPruneHook

__all__ = ['SemiPruneHook']
