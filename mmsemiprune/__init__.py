"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs for MMAction2.

``mmsemiprune.core`` is the method in plain PyTorch; importing ``mmsemiprune`` itself also checks the
OpenMMLab versions and registers the MMAction2 glue (recognizer, hooks, backbones, graph layouts,
datasets).
"""
__version__ = '0.1.0'
