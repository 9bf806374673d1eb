"""Report: achieved pruning rate per tensor and in total, in parameters and FLOPs, and how much of
it is structural (physically removable by :mod:`.shrink`) versus entry-wise.

An entry counts as *structural* when it lies in a channel slice that export removes (a channel of a
:class:`~.topology.ChannelSet` without surviving consumers or producers) or, for tensors outside any
channel set, in a fully pruned group of its first grouping.
"""
from typing import Dict, List

import torch

from .compute import removed_entries

__all__ = ['prune_report', 'format_report']


@torch.no_grad()
def _structural(pruner, masks: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    # the export rule (consistency makes producer-dead channels consumer-dead too), see compute.removed_entries
    removed, covered = removed_entries(masks, pruner.channel_sets)
    for key, m, w in pruner.items():
        if key in covered or not m.groupings:
            continue
        gid = m.gid0
        kept_g = torch.zeros(m.num_groups[0], dtype=torch.long, device=gid.device).index_add_(0, gid.reshape(-1), masks[key].reshape(-1).long())
        removed[key] = (kept_g == 0)[gid]
    return removed


@torch.no_grad()
def prune_report(pruner) -> Dict:
    """Dict with ``layers`` (list of per-tensor dicts) and totals: ``rate_params``, ``rate_flops``
    (when profiled), ``structural_share`` (of the pruned params), ``flops_dense`` / ``flops_kept`` /
    ``flops_compact`` (MACs per sample over the prunable tensors), ``target_rate``, ``frozen``."""
    items = pruner.items()
    masks = {k: m.current(w) for k, m, w in items}
    removed = _structural(pruner, masks)
    layers: List[Dict] = []
    n = kept = struct = 0
    f_dense = f_kept = f_compact = 0.0
    profiled = all(float(m.macs) > 0 for _, m, _ in items)
    for key, m, w in items:
        k = int(masks[key].sum())
        numel = w.numel()
        r = int((removed[key] & ~masks[key]).sum())
        rm_all = int(removed[key].sum())
        macs = float(m.macs)
        layers.append(dict(name=key, shape=tuple(w.shape), numel=numel, kept=k, rate=1 - k / numel,
                           structural=(r / (numel - k)) if numel > k else 0.0, gate_group_share=_gate_share(m),
                           macs_per_entry=macs))
        n += numel
        kept += k
        struct += r
        f_dense += macs * numel
        f_kept += macs * k
        f_compact += macs * (numel - rm_all)
    out = dict(layers=layers, numel=n, kept=kept, rate_params=1 - kept / max(n, 1),
               structural_share=struct / max(n - kept, 1), target_rate=pruner.target_rate, mode=pruner.mode,
               frozen=pruner.frozen)
    if profiled:
        out.update(flops_dense=f_dense, flops_kept=f_kept, flops_compact=f_compact,
                   rate_flops=1 - f_kept / max(f_dense, 1e-9), compact_flops_ratio=f_compact / max(f_dense, 1e-9))
    return out


def _gate_share(m) -> float:
    """Fraction of groups whose hard gate picks the group-wise mask."""
    return m.prune_mode.group_share(m)


def format_report(rep: Dict, max_layers: int = 200) -> str:
    """A plain-text table of :func:`prune_report`."""
    lines = [f'{"tensor":<48} {"shape":<18} {"kept/numel":>16} {"rate":>7} {"struct":>7} {"gate→grp":>8}']
    for L in rep['layers'][:max_layers]:
        lines.append(f'{L["name"]:<48} {str(L["shape"]):<18} {L["kept"]:>8}/{L["numel"]:<7} '
                     f'{L["rate"]:>7.3f} {L["structural"]:>7.3f} {L["gate_group_share"]:>8.2f}')
    tail = (f'prune_rate (params): {rep["rate_params"]:.4f}  target: {rep["target_rate"]:.4f}  mode: {rep["mode"]}  '
            f'structural share: {rep["structural_share"]:.3f}  frozen: {rep["frozen"]}')
    if 'rate_flops' in rep:
        tail += (f'\nprune_rate (flops): {rep["rate_flops"]:.4f}  MACs dense {rep["flops_dense"]/1e6:.2f}M  '
                 f'kept {rep["flops_kept"]/1e6:.2f}M  after removal {rep["flops_compact"]/1e6:.2f}M  (prunable convs, one '
                 'person; export\'s "MACs / clip" counts every operator of a whole clip)')
    lines.append(tail)
    return '\n'.join(lines)
