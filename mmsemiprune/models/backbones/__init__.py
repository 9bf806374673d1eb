"""Backbones registered in MMAction2's ``MODELS`` registry on import."""
from .ctrgcn import CTRGCN

__all__ = ['CTRGCN']
