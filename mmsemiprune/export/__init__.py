"""Export glue: turn a trained pruned recognizer into a truly smaller plain MMAction2 model.

- :class:`CompactRecognizerGCN` (registered as ``mmsemiprune.CompactRecognizerGCN``): ``RecognizerGCN`` whose
  modules take the narrower shapes of an exported state dict; what ``tools/export.py``'s ``config.py`` builds.
- :func:`export_pruned`: load + check, bake, shrink, verify (PyTorch / onnxruntime / torch.export), count,
  write ``model.pth`` / ``config.py`` / ``report.json`` (+ ``model.onnx`` / ``model.pt2``).

``onnx`` / ``onnxruntime`` are imported only when ONNX is asked for.
"""
from .compact import CompactRecognizerGCN, LogitsModel, resize_to_shapes
from .exporter import ExportError, compact_state_dict, export_pruned, format_export_report, load_pruned_model

__all__ = ['CompactRecognizerGCN', 'LogitsModel', 'resize_to_shapes', 'ExportError', 'export_pruned',
           'compact_state_dict', 'format_export_report', 'load_pruned_model']
