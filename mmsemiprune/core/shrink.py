"""Export: bake the binary masks into plain weights, then physically remove pruned channels.

- :func:`bake_model` replaces every Ŵ by Ŵ ⊙ ψ(Ŵ) (ψ must be frozen binary) and restores stock
  classes: outputs are unchanged to float precision.
- :func:`shrink` removes, for every :class:`~.topology.ChannelSet`, the channels none of whose
  consumer slices holds a non-zero weight: producer rows (and their biases), the norm entries, and
  consumer columns are sliced away and the modules' ``in_channels``/``out_channels``/
  ``num_features`` updated. Removing a channel that nothing reads is exact. ``round_to=k`` keeps a few
  unread channels back so that every shrunk width is a multiple of k (as Torch-Pruning's ``round_to``):
  GPU kernels (tensor cores, vector loads) prefer aligned widths; such a channel is read by zero weights only,
  so the outputs stay those of the masked model.
- :func:`sparse_state_dict` stores the entry-wise zeros left inside kept groups compactly
  (CSR values + int32 indices) for the on-disk file; :func:`dense_state_dict` restores it.
"""
from typing import Dict, List

import torch
from torch import nn

from .reparam import bake
from .topology import ChannelSet, channel_any

__all__ = ['bake_model', 'shrink', 'sparse_state_dict', 'dense_state_dict']


@torch.no_grad()
def bake_model(model: nn.Module) -> int:
    """Bake every masked parameter in ``model``; returns the number of baked modules. Raises if a mask
    is not frozen (a soft mask cannot be baked without changing the function)."""
    from .cascade import SemiMask
    soft = [n for n, m in model.named_modules() if isinstance(m, SemiMask) and not bool(m.frozen)]
    if soft:
        raise ValueError(f'{len(soft)} masks are not frozen (e.g. {soft[0]}); train until the schedule '
                         'freezes them or call pruner.freeze() before exporting')
    n = 0
    for mod in list(model.modules()):
        before = type(mod)
        bake(mod)
        n += type(mod) is not before
    return n


def _index(keep: torch.Tensor, fold: int, size: int) -> torch.Tensor:
    return torch.cat([keep + k * size for k in range(fold)])


def _slice_param(mod: nn.Module, pname: str, dim: int, idx: torch.Tensor):
    p = mod._parameters.get(pname)
    if p is None:
        return
    mod._parameters[pname] = nn.Parameter(p.data.index_select(dim, idx).clone(), requires_grad=p.requires_grad)


@torch.no_grad()
def shrink(model: nn.Module, sets: List[ChannelSet], round_to: int = 1) -> Dict[str, int]:
    """Physically remove unread channels (see module docstring). Returns {set name: channels removed}.
    Call after :func:`bake_model`. The sets' sizes are updated to describe the shrunk model (pass a deep
    copy to keep the originals, as ``tools/export.py`` does). ``round_to``: keep the lowest-index unread
    channels back until each width is a multiple of it (or the set's full size)."""
    if not isinstance(round_to, int) or isinstance(round_to, bool) or round_to < 1:
        raise ValueError(f'round_to must be an integer >= 1 (1: remove every unread channel; 8: widths in '
                         f'multiples of 8 for GPU kernels), got {round_to!r}')
    modules = dict(model.named_modules())
    removed = {}
    for cs in sets:
        if cs.fixed_consumer:
            continue
        reads = None
        for s in cs.consumers:
            w = modules[s.module]._parameters[s.param]
            r = channel_any(w.data, s, cs.size)
            reads = r if reads is None else reads | r
        if reads is None or reads.all():
            continue
        short = -int(reads.sum()) % round_to  # unread channels kept back for the alignment
        if short:
            reads = reads.clone()
            reads[torch.nonzero(~reads).flatten()[:short]] = True
            if reads.all():
                continue
        keep = torch.nonzero(reads).flatten()
        if keep.numel() == 0:  # keep one channel so shapes stay valid; it is read by nothing
            keep = torch.zeros(1, dtype=torch.long, device=reads.device)
        for s in cs.producers:
            mod = modules[s.module]
            idx = _index(keep, s.fold, cs.size)
            _slice_param(mod, s.param, s.dim, idx)
            if s.param == 'weight' and s.dim == 0:
                _slice_param(mod, 'bias', 0, idx)
            _set_channels(mod, out=len(idx))
        for s in cs.consumers:
            mod = modules[s.module]
            idx = _index(keep, s.fold, cs.size)
            _slice_param(mod, s.param, s.dim, idx)
            _set_channels(mod, inp=len(idx))
        for name in cs.norms:
            bn = modules[name]
            for p in ('weight', 'bias'):
                _slice_param(bn, p, 0, keep)
            for b in ('running_mean', 'running_var'):
                if getattr(bn, b, None) is not None:
                    setattr(bn, b, getattr(bn, b).index_select(0, keep).clone())
            bn.num_features = len(keep)
        removed[cs.name] = cs.size - len(keep)
        cs.size = len(keep)
    return removed


def _set_channels(mod, out=None, inp=None):
    if isinstance(mod, nn.modules.conv._ConvNd):
        if out is not None:
            mod.out_channels = out
        if inp is not None:
            mod.in_channels = inp
    elif isinstance(mod, nn.Linear):
        if out is not None:
            mod.out_features = out
        if inp is not None:
            mod.in_features = inp


def sparse_state_dict(sd: Dict[str, torch.Tensor], min_sparsity: float = 0.5) -> Dict[str, object]:
    """Tensors with at least ``min_sparsity`` zeros become dict(shape, crow, col, values) (2-D CSR of
    the tensor viewed as (rows, -1), int32 indices); others stay dense. Plain tensors only: loads with
    ``torch.load(weights_only=True)``."""
    out = {}
    for k, v in sd.items():
        if torch.is_tensor(v) and v.is_floating_point() and v.dim() >= 2 and v.numel() > 64:
            zeros = float((v == 0).sum()) / v.numel()
            if zeros >= min_sparsity:
                csr = v.reshape(v.shape[0], -1).to_sparse_csr()
                out[k] = dict(__sparse_csr__=True, shape=list(v.shape), crow=csr.crow_indices().int(),
                              col=csr.col_indices().int(), values=csr.values().clone())
                continue
        out[k] = v
    return out


def dense_state_dict(sd: Dict[str, object]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`sparse_state_dict`."""
    out = {}
    for k, v in sd.items():
        if isinstance(v, dict) and v.get('__sparse_csr__'):
            shape = v['shape']
            rows = shape[0]
            cols = 1
            for s in shape[1:]:
                cols *= s
            t = torch.sparse_csr_tensor(v['crow'].long(), v['col'].long(), v['values'], size=(rows, cols))
            out[k] = t.to_dense().reshape(shape)
        else:
            out[k] = v
    return out
