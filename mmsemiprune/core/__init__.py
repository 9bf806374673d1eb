"""The method: differentiable semi-structured pruning in plain PyTorch (no mm* imports).

One concept per module:

- :mod:`.bandstop`  smooth magnitude mask  ψ_f(x) = σ((x−a)/τ) + σ((−x−a)/τ)
- :mod:`.groups`    weight sharing: which entries share one mask (entry / out / in / tap / row / col / block)
- :mod:`.gate`      per-group gate g ∈ [0, 1] between group-wise and entry-wise masks
- :mod:`.modes`     the pruning modes (semi / structured / unstructured / ctf), one class each: which masks a mode
                    uses, how they combine (soft and hard), how the search ranks entries, what the report counts
- :mod:`.cascade`   the mask module ψ(Ŵ) = g·ψ_group + (1−g)·ψ_entry  (or the coarse-to-fine product)
- :mod:`.reparam`   installs ψ on a module so that W = Ŵ ⊙ ψ(Ŵ) with stock parameter names
- :mod:`.budget`    cost model, budget regularizer λ((Σ cost·ψ − c)/N)², rate controller
- :mod:`.schedule`  temperature / rate / freeze schedule as a function of training progress
- :mod:`.topology`  channel sets (producers/consumers) for topological consistency and export
- :mod:`.compute`   MACs left after channel removal, MACs each channel frees, projection to a MAC budget
- :mod:`.scorers`   named scoring strategies (normalized / magnitude / l1 / magnitude_l1): what the thresholds cut
- :mod:`.config`    PruneConfig: the prune_cfg keys and groups, defaults, validation, deprecated spellings
- :mod:`.pruner`    ties everything to one model: install, step, budget loss, freeze
- :mod:`.finalize`  hardening to the exact rate, dead-channel removal, BatchNorm re-estimation
- :mod:`.report`    per-layer and total achieved rate (params, FLOPs, structural share)
- :mod:`.shrink`    bake masks into plain weights and physically remove pruned channels (used by the
                    :mod:`mmsemiprune.export` package, which writes the files)
- :mod:`.fused`     the fused fast path: flat index, batched masks, segment sums, selections, flat MAC count and
                    CUDA-graph search over all tensors at once, each tested against the per-tensor reference here
"""
from .bandstop import band_stop, band_stop_hard
from .budget import BudgetRegularizer, CostModel
from .cascade import SemiMask, MODES
from .gate import Gate
from .modes import PruneMode, get_mode, register_mode
from .groups import Grouping, parse_grouping
from .pruner import PruneSpec, SemiPruner
from .schedule import PruneSchedule
from .topology import ChannelSet, Slot

__all__ = [
    'band_stop', 'band_stop_hard', 'BudgetRegularizer', 'CostModel', 'SemiMask', 'MODES', 'Gate',
    'Grouping', 'parse_grouping', 'PruneSpec', 'SemiPruner', 'PruneSchedule', 'ChannelSet', 'Slot', 'PruneMode',
    'get_mode', 'register_mode'
]
