"""Pruning modes: how the group-wise mask ψ_G, the entry-wise mask ψ_e and the gate g make one mask.

A mode is a small stateless object registered by name: :data:`MODES` is the tuple of names (``prune_cfg.mode``),
:func:`get_mode` the object of a name. Every decision the code makes per mode is an attribute or a method of the
mode, so a new mode is one class decorated with :func:`register_mode`.

A mode must provide:

- ``name``: its name in ``prune_cfg.mode``;
- ``entries`` / ``groups``: whether it uses the entry band (a_e on |x|) / the group band (a_g on the group
  statistics). A mode with groups needs at least one coarse grouping per tensor; the threshold search places
  only the bands some mask uses, and the learned bands (:mod:`.learned_thresholds`) train only those;
- ``gated``: whether a per-group gate g (:class:`~.gate.Gate`: learned logits, or computed from the latent,
  :mod:`.latent_gate`) arbitrates between the two masks; only gated masks carry gate prices, a score
  initialisation of the gates and a share of group-decided gates of their own. ``gate_mode``: the
  :class:`~.gate.Gate` mode its masks are built with ('learned', or the fixed 'group' g ≡ 1 / 'entry' g ≡ 0);
- ``combine(group, entry, gate)``: the soft mask ψ from ψ_G, ψ_e (None for a part the mode does not use) and, for
  a gated mode, g per entry;
- ``keep(group, entry, group_decides)``: the hard mask from the boolean parts (score > threshold; None for a part
  the mode does not use) and, for a gated mode, the hard gate per entry (True: the group mask decides);
- ``ratio(group, entry, group_decides)``: the threshold search's ρ per entry from the parts score / α, combined so
  that ρ > t exactly where ``keep`` keeps at thresholds t·α;
- ``group_share(mask)``: the fraction of the mask's groups decided by the group mask (the report's gate column).

The parts are computed only for the bands a mode uses, every formula on the tensors it is given: the per-tensor
reference (:class:`~.cascade.SemiMask`) and the fused path (:mod:`.fused`) call the same methods.
"""
from typing import Dict, Optional

import torch

__all__ = ['PruneMode', 'MODES', 'get_mode', 'register_mode', 'Semi', 'Structured', 'Unstructured', 'CoarseToFine']

_REGISTRY: Dict[str, 'PruneMode'] = {}


class PruneMode:
    """Base class of the pruning modes (the contract is in the module docstring)."""

    name: str = ''
    entries: bool = False
    groups: bool = False
    gated: bool = False
    gate_mode: str = 'entry'

    def combine(self, group: Optional[torch.Tensor], entry: Optional[torch.Tensor],
                gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The soft mask ψ from ψ_G, ψ_e and (gated) g per entry."""
        raise NotImplementedError

    def keep(self, group: Optional[torch.Tensor], entry: Optional[torch.Tensor],
             group_decides: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The boolean hard mask from the boolean group / entry parts and (gated) the hard gate per entry."""
        raise NotImplementedError

    def ratio(self, group: Optional[torch.Tensor], entry: Optional[torch.Tensor],
              group_decides: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ρ per entry from the group / entry ratios score / α and (gated) the hard gate per entry."""
        raise NotImplementedError

    def group_share(self, mask) -> float:
        """Fraction of ``mask``'s groups whose hard gate picks the group-wise mask."""
        raise NotImplementedError

    def __reduce__(self):  # copies and pickles refer to the registered mode by name
        return get_mode, (self.name, )

    def __repr__(self):
        return f'{type(self).__name__}({self.name!r})'


def register_mode(cls):
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    mode = cls()
    if not mode.name or mode.name in _REGISTRY:
        raise ValueError(f'pruning mode name {mode.name!r} is empty or taken')
    _REGISTRY[mode.name] = mode
    return cls


def get_mode(name) -> PruneMode:
    """The registered mode of ``name`` (a mode object is returned as it is); ValueError naming the choices."""
    if isinstance(name, PruneMode):
        return name
    mode = _REGISTRY.get(name)
    if mode is None:
        raise ValueError(f'unknown pruning mode {name!r}; choose one of {", ".join(_REGISTRY)}')
    return mode


@register_mode
class Semi(PruneMode):
    """ψ = g ⊙ ψ_G + (1 − g) ⊙ ψ_e, g the per-group gate of the first grouping (learned, or from the latent)."""

    name, entries, groups, gated, gate_mode = 'semi', True, True, True, 'learned'

    def combine(self, group, entry, gate=None):
        return gate * group + (1 - gate) * entry

    def keep(self, group, entry, group_decides=None):
        return torch.where(group_decides, group, entry)

    def ratio(self, group, entry, group_decides=None):
        return torch.where(group_decides, group, entry)

    def group_share(self, mask) -> float:
        return float(mask.current_gates().float().mean())


@register_mode
class Structured(PruneMode):
    """ψ = ψ_G (the gate fixed to 1): groups are kept or removed whole."""

    name, entries, groups, gated, gate_mode = 'structured', False, True, False, 'group'

    def combine(self, group, entry, gate=None):
        return group

    def keep(self, group, entry, group_decides=None):
        return group

    def ratio(self, group, entry, group_decides=None):
        return group

    def group_share(self, mask) -> float:
        return 1.0


@register_mode
class Unstructured(PruneMode):
    """ψ = ψ_e (the gate fixed to 0): entries are kept or removed one by one; no grouping needed."""

    name, entries, groups, gated, gate_mode = 'unstructured', True, False, False, 'entry'

    def combine(self, group, entry, gate=None):
        return entry

    def keep(self, group, entry, group_decides=None):
        return entry

    def ratio(self, group, entry, group_decides=None):
        return entry

    def group_share(self, mask) -> float:
        return 0.0


@register_mode
class CoarseToFine(PruneMode):
    """ψ = ψ_G ⊙ ψ_e (the sibling paper's coarse-to-fine product): an entry is kept where its group and itself are."""

    name, entries, groups, gated, gate_mode = 'ctf', True, True, False, 'group'

    def combine(self, group, entry, gate=None):
        return group * entry

    def keep(self, group, entry, group_decides=None):
        return entry & group

    def ratio(self, group, entry, group_decides=None):
        return torch.minimum(entry, group)

    def group_share(self, mask) -> float:
        return 1.0


#: the names of the registered modes, in registration order
MODES = tuple(_REGISTRY)
