"""``CompactRecognizerGCN``: a plain MMAction2 ``RecognizerGCN`` whose convs / norms / linears take the
(smaller) shapes of an exported state dict.

An exported model (``tools/export.py``) has the stock architecture with pruned channels physically
removed, so its tensors are narrower than what the backbone config builds. This recognizer

- resizes its modules to ``compact_shapes`` (``{'backbone.gcn.0.tcn.conv.weight': '11x5x9x1', ...}``,
  written into the exported config) at construction time, so init, optimizers and hooks see the
  compact model;
- before loading a state dict, densifies entries stored sparsely by
  :func:`mmsemiprune.core.shrink.sparse_state_dict` and resizes any module whose tensors in the state
  dict are smaller than its own (so a config without ``compact_shapes`` also loads an exported file).

Resizing only ever *narrows* a dimension of a tensor of the same rank (a different rank or a larger
size is left alone and reported by the normal size-mismatch error of ``load_state_dict``). After a
resize, ``in_channels``/``out_channels`` (convs), ``in_features``/``out_features`` (linears) and
``num_features`` (norms) follow the new tensors. There is no pruner and no mask: the forward pass is
MMAction2's own, except that ``graph_conv='matmul'`` (what ``tools/export.py`` writes) computes
``unit_gcn``'s graph convolution as two matrix products without layout copies (:mod:`.graph_conv`; same
parameters, same state dict, same scores up to rounding).
"""
import warnings
from typing import Dict, Mapping, Optional, Sequence, Union

import torch
from mmaction.models.recognizers import RecognizerGCN
from torch import nn

from ..core.shrink import dense_state_dict
from ..registry import MODELS
from .graph_conv import set_graph_conv

__all__ = ['CompactRecognizerGCN', 'LogitsModel', 'resize_to_shapes', 'state_dict_shapes', 'is_sparse_entry',
           'format_shape', 'parse_shape']


def is_sparse_entry(v) -> bool:
    return isinstance(v, Mapping) and bool(v.get('__sparse_csr__'))


def format_shape(shape: Sequence[int]) -> str:
    return 'x'.join(str(int(s)) for s in shape)


def parse_shape(s: Union[str, Sequence[int]]):
    if isinstance(s, str):
        return tuple(int(v) for v in s.split('x')) if s else ()
    return tuple(int(v) for v in s)


def state_dict_shapes(sd: Mapping) -> Dict[str, tuple]:
    """Shapes of the entries of a (possibly sparse) state dict."""
    out = {}
    for k, v in sd.items():
        if is_sparse_entry(v):
            out[k] = tuple(int(s) for s in v['shape'])
        elif torch.is_tensor(v):
            out[k] = tuple(v.shape)
    return out


def _narrows(old: tuple, new: tuple) -> bool:
    return len(old) == len(new) and old != new and all(0 < n <= o for o, n in zip(old, new))


@torch.no_grad()
def resize_to_shapes(root: nn.Module, shapes: Mapping[str, object], prefix: str = '') -> int:
    """Replace, in place, every parameter / buffer of ``root`` named ``prefix + name`` in ``shapes`` by an
    uninitialised tensor of that (narrower) shape and update the modules' channel attributes. Values are
    *not* kept (call before loading weights or initialising). Returns the number of tensors resized."""
    n = 0
    for mname, mod in root.named_modules():
        base = prefix + (mname + '.' if mname else '')
        changed = False
        for table in (mod._parameters, mod._buffers):
            for tname, t in list(table.items()):
                key = base + tname
                if t is None or key not in shapes:
                    continue
                new = parse_shape(shapes[key])
                if not _narrows(tuple(t.shape), new):
                    continue
                fresh = t.new_empty(new)
                table[tname] = nn.Parameter(fresh, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) \
                    else fresh
                changed = True
                n += 1
        if changed:
            _sync_attributes(mod)
    for mod in root.modules():  # a head that checks its input width (MMAction2's GCNHead.in_channels) follows its fc
        fc = getattr(mod, 'fc', None)
        if isinstance(fc, nn.Linear) and isinstance(getattr(mod, 'in_channels', None), int) \
                and not isinstance(mod, nn.modules.conv._ConvNd):
            mod.in_channels = fc.in_features
    return n


def _sync_attributes(mod: nn.Module):
    if isinstance(mod, nn.modules.conv._ConvNd) and mod.weight is not None:
        mod.out_channels = mod.weight.shape[0]
        mod.in_channels = mod.weight.shape[1] * mod.groups
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape
    elif isinstance(mod, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        ref = getattr(mod, 'weight', None)
        if ref is None:
            ref = getattr(mod, 'running_mean', None)
        if ref is not None and hasattr(mod, 'num_features'):
            mod.num_features = ref.shape[0]


@MODELS.register_module()
class CompactRecognizerGCN(RecognizerGCN):
    """``RecognizerGCN`` with pruned channels physically removed (see module docstring).

    Args:
        compact_shapes (dict, optional): ``{tensor name: 'AxBx...'}`` for every tensor narrower than the
            stock build (written by ``tools/export.py``).
        export_meta (dict, optional): free-form provenance written by the exporter (ignored).
        graph_conv (str): ``'stock'`` (MMAction2's einsum) or ``'matmul'`` (:mod:`.graph_conv`).
        Other args as ``RecognizerGCN``.
    """

    def __init__(self, backbone, cls_head=None, neck=None, train_cfg=None, test_cfg=None,
                 data_preprocessor=None, compact_shapes: Optional[Mapping[str, object]] = None,
                 export_meta: Optional[dict] = None, graph_conv: str = 'stock', **kwargs):
        super().__init__(backbone=backbone, cls_head=cls_head, neck=neck, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, **kwargs)
        self.export_meta = dict(export_meta or {})
        if compact_shapes:
            own = dict(self.named_parameters())
            own.update(dict(self.named_buffers()))
            unknown = sorted(set(compact_shapes) - set(own))
            if unknown:
                raise ValueError(f'compact_shapes names {len(unknown)} tensor(s) this model does not have '
                                 f'(e.g. {unknown[0]}); the backbone / head config does not match the exported '
                                 'model')
            resize_to_shapes(self, compact_shapes)
        set_graph_conv(self, graph_conv)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Children are loaded from this (mutable, already copied) dict after this call.
        mine = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
        sparse = {k: v for k, v in mine.items() if is_sparse_entry(v)}
        if sparse:
            with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
                warnings.simplefilter('ignore')
                state_dict.update(dense_state_dict(sparse))
        resize_to_shapes(self, state_dict_shapes(mine), prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class LogitsModel(nn.Module):
    """``(N, M, T, V, C)`` skeletons → ``(N, num_classes)`` class scores (pre-softmax) of a recognizer:
    ``cls_head(backbone(x))``, one clip per row. The module traced for ONNX / torch.export."""

    def __init__(self, recognizer: nn.Module):
        super().__init__()
        self.backbone = recognizer.backbone
        self.cls_head = recognizer.cls_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))
