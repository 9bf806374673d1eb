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
- A set read by the classifier (``fixed_consumer`` with a ``head``) keeps every channel the classifier needs; with
  example inputs (``run``) the channels no producer writes, constants, are folded into the classifier's bias and
  removed too (:func:`shrink`).
- :func:`sparse_state_dict` stores the entry-wise zeros left inside kept groups compactly
  (CSR values + int32 indices) for the on-disk file; :func:`dense_state_dict` restores it.
"""
import math
from dataclasses import replace
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from .reparam import bake
from .topology import ChannelSet, Slot, channel_any

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
def shrink(model: nn.Module, sets: List[ChannelSet], round_to: int = 1,
           run: Optional[Callable[[], object]] = None) -> Dict[str, int]:
    """Physically remove unread channels (see module docstring). Returns {set name: channels removed}.
    Call after :func:`bake_model`. The sets' sizes are updated to describe the shrunk model (pass a deep
    copy to keep the originals, as ``tools/export.py`` does). ``round_to``: keep the lowest-index unread
    channels back until each width is a multiple of it (or the set's full size).

    ``run``: a callable that runs ``model`` once on a few example inputs. With it, a fixed-consumer set with a
    ``head`` (the classifier reading it after global pooling) also loses the channels no producer writes: such a
    channel is a constant κ_c whatever the input (biases and BatchNorm shifts through ReLUs and identity
    residuals), so the classifier's W[:, c]·κ_c is added to its bias and channel c removed, head column included:
    exact. κ is read at the head's input during ``run`` and must be the same for every example (else the channel
    stays); the exporter's exactness check covers the result."""
    if not isinstance(round_to, int) or isinstance(round_to, bool) or round_to < 1:
        raise ValueError(f'round_to must be an integer >= 1 (1: remove every unread channel; 8: widths in '
                         f'multiples of 8 for GPU kernels), got {round_to!r}')
    modules = dict(model.named_modules())
    consts = _head_constants(modules, sets, run) if run is not None else {}
    removed = {}
    for cs in sets:
        head = None
        if cs.fixed_consumer:
            if cs.name not in consts:
                continue
            head, kappa = modules[cs.head], consts[cs.name]
        reads = _any_nonzero(modules, cs.consumers, cs.size)
        if head is not None:  # the classifier reads every channel but the constant ones, which it gets in its bias
            writes = _any_nonzero(modules, [s for s in cs.producers if not s.gate], cs.size)
            const = ~writes & torch.isfinite(kappa) if writes is not None else torch.zeros_like(kappa, dtype=torch.bool)
            reads = (reads if reads is not None else torch.zeros_like(const)) | ~const
        if reads is None or reads.all():
            continue
        short = -int(reads.sum()) % round_to  # unread channels kept back for the alignment
        if short:
            reads = reads.clone()
            reads[torch.nonzero(~reads).flatten()[:short]] = True
            if reads.all():
                continue
        for o, n in cs.parts():  # a part (a branch of a concatenation) keeps one channel, read by nothing, at least
            if not reads[o:o + n].any():
                reads = reads.clone()
                reads[o] = True
        if reads.all():
            continue
        keep = torch.nonzero(reads).flatten()
        if keep.numel() == 0:  # keep one channel so shapes stay valid; it is read by nothing
            keep = torch.zeros(1, dtype=torch.long, device=reads.device)
        if head is not None:  # fold the removed constants into the classifier, then drop its columns
            gone = torch.ones(cs.size, dtype=torch.bool, device=reads.device)
            gone[keep] = False
            head.bias.data += head.weight.data[:, gone] @ kappa[gone].to(head.weight.dtype)
            _slice_param(head, 'weight', 1, keep)
            _set_channels(head, inp=len(keep))
            owner = modules.get(cs.head.rpartition('.')[0])
            if owner is not None and getattr(owner, 'in_channels', None) == cs.size:  # GCNHead checks its width
                owner.in_channels = len(keep)
        _slice_set(modules, cs, keep)
        removed[cs.name] = cs.size - len(keep)
        cs.size = len(keep)
    return removed


def _part(keep: torch.Tensor, slot: Slot, size: int):
    """(indices into the slot's own channels, the slot with its span in the shrunk set)."""
    o, n = slot.span(size)
    if n == size:
        return keep, slot
    inside = (keep >= o) & (keep < o + n)
    first = int((keep < o).sum())
    return keep[inside] - o, replace(slot, offset=first, length=int(inside.sum()))


def _slice_set(modules, cs: ChannelSet, keep: torch.Tensor) -> None:
    """Keep only the channels ``keep`` of ``cs`` in its producer rows (and their biases), consumer columns and
    norms; slots holding a part of the set get their shrunk span."""
    for side in ('producers', 'consumers'):
        slots = []
        for s in getattr(cs, side):
            mod = modules[s.module]
            own, s2 = _part(keep, s, cs.size)
            idx = _index(own, s.fold, s.span(cs.size)[1])
            _slice_param(mod, s.param, s.dim, idx)
            if side == 'producers' and s.param == 'weight' and s.dim == 0:
                _slice_param(mod, 'bias', 0, idx)
            _set_channels(mod, **({'out': len(idx)} if side == 'producers' else {'inp': len(idx)}))
            slots.append(s2)
        setattr(cs, side, slots)
    norms = []
    for nm in cs.norms:
        s = nm if isinstance(nm, Slot) else Slot(nm)
        own, s2 = _part(keep, s, cs.size)
        bn = modules[s.module]
        for p in ('weight', 'bias'):
            _slice_param(bn, p, 0, own)
        for b in ('running_mean', 'running_var'):
            if getattr(bn, b, None) is not None:
                setattr(bn, b, getattr(bn, b).index_select(0, own).clone())
        bn.num_features = len(own)
        norms.append(s2 if isinstance(nm, Slot) else nm)
    cs.norms = norms


def _head_constants(modules, sets: List[ChannelSet], run) -> Dict[str, torch.Tensor]:
    """{set name: (C,) value of each channel at its head's input, NaN where it differs between the examples} for
    the fixed-consumer sets with a linear ``head`` of matching width (others: not in the result). One ``run()``."""
    heads = {}
    for cs in sets:
        h = modules.get(cs.head) if cs.fixed_consumer and cs.head else None
        if isinstance(h, nn.Linear) and h.bias is not None and h.in_features == cs.size:  # folds into its bias
            heads[cs.name] = h
    if not heads:
        return {}
    seen, hooks = {}, []
    for n, h in heads.items():
        hooks.append(h.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, args[0].detach())))
    try:
        run()
    finally:
        for hk in hooks:
            hk.remove()
    out = {}
    for n, x in seen.items():
        x = x.reshape(-1, x.shape[-1]).double()
        kappa = x[0].clone()
        spread = (x - kappa).abs().amax(dim=0)
        ok = (x.shape[0] > 1) & (spread <= 1e-6 * (1.0 + kappa.abs()))
        out[n] = torch.where(ok, kappa, torch.full_like(kappa, math.nan))
    return out


def _any_nonzero(modules, slots, size: int) -> Optional[torch.Tensor]:
    """(C,) bool: channel c has a non-zero weight in some slot's slice (None: no slots)."""
    out = None
    for s in slots:
        r = channel_any(modules[s.module]._parameters[s.param].data, s, size)
        out = r if out is None else out | r
    return out


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
