"""CUDA-graph replay of the soft phase's threshold search (``SemiPruner(cuda_graphs=True)``, the default;
``prune_cfg.cuda_graphs=False`` runs it eagerly; issue "pruning at GPU speed").

With ``stats=False`` the search (:func:`~mmsemiprune.core.budget.solve_thresholds`) is a fixed sequence of device
operators (188 dispatched per step on the NTU ST-GCN: scores, three sorts for the selections, the floors, the level, the
threshold writes) with no host synchronisation. It reads only tensors whose storage stays put through the soft phase
(the latents, the gate logits, the cost buffers, cached index tensors) plus the rate, and writes the masks' threshold
buffers. Captured once into a ``torch.cuda.CUDAGraph``, a search is one replay (7 operators dispatched per step):

    rate_t.fill_(rate)        one kernel, no host sync (the only input that changes between replays)
    graph.replay()            its kernels, launched by the driver, not one by one from Python

which is what a host-bound training step pays for (H200, fp16 AMP, batch 32: the soft step is as host- as
device-bound, ~9 µs of ``cudaLaunchKernel`` per kernel plus the dispatch). Same kernels on the same inputs: the same
thresholds as the eager search. Measured (H200, torch 2.11, batch 32 NTU clips, one call, ``bench/gpu_check.sh speed
graphs``): ST-GCN soft step 1.27x -> 1.17x stock in fp32, 1.34x -> 1.28x in fp16 AMP; 905 -> 733 kernel launches.

The capture uses ``capture_error_mode='thread_local'``: another thread's CUDA calls during the capture (the
DataLoader's pin-memory thread allocates pinned host memory) neither break the capture nor fail in that thread.

Recaptured whenever something the captured sequence depends on changes on the host side: the mask list, the latents
(identity: a device move, re-created parameters), the floor, the cost buffers (identity, version: MAC profiling),
the gates' modes and frozen flags. A capture that fails falls back to the eager search for good (one warning), and
so does churn: recaptured at 4 consecutive steps (e.g. DDP with ``broadcast_buffers=True`` copies the mask buffers
in place before every forward).
On the CPU the search runs eagerly (``graph_cls`` lets tests stand in for ``torch.cuda.CUDAGraph``). The soft
projection (``target_macs``) is not graphed: its consistent masks read the host per probe.
"""
import warnings

import torch

from ..budget import solve_thresholds
from .flat import flat_for, unchanged, versions

__all__ = ['GraphedSearch']

# recaptured at this many consecutive steps: churn (inputs rewritten every step), not a change of phase or device
_CHURN = 4


class GraphedSearch:
    """``search(items, rate, floor)``: :func:`~mmsemiprune.core.budget.solve_thresholds` (``stats=False``) by graph
    replay.

    ``graph_cls``: None on CUDA (``torch.cuda.CUDAGraph`` with a warm-up on a side stream); tests pass a class
    ``G(fn)`` with ``G.replay()`` to check the replay logic on the CPU."""

    def __init__(self, graph_cls=None):
        self._graph_cls = graph_cls
        self._deps = None  # host-side state the capture depends on (strong references: identities stay valid)
        self._graph = self._rate = self._scale = None
        self.failed = False
        self._churn = self._replays_at = 0  # consecutive next-step recaptures; replays at the last capture
        self.captures = 0
        self.replays = 0

    def __deepcopy__(self, memo):  # a copied pruner captures its own graph
        return GraphedSearch(self._graph_cls)

    def __reduce__(self):
        return GraphedSearch, (None, )

    @staticmethod
    def _flags(items, floor):
        return float(floor), [(m.gate.mode, m.gate._is_frozen, m._is_frozen, m._hard_on, m.mode) for m, _ in items]

    def _same(self, items, floor) -> bool:
        """Whether the capture still describes the search of ``items`` at ``floor``: the same masks, latents and
        cost buffers (identities; costs not modified since), floor and host-side flags."""
        old = self._deps
        masks = [m for m, _ in items]
        return (old is not None and len(old[0]) == len(masks) and all(a is b for a, b in zip(old[0], masks))
                and all(a is w for a, (_, w) in zip(old[1], items)) and unchanged(old[2], [m.cost for m in masks])
                and old[3] == self._flags(items, floor))

    def usable(self, items) -> bool:
        return not self.failed and bool(items) and (self._graph_cls is not None or items[0][1].is_cuda)

    def __call__(self, items, rate: float, floor: float) -> None:
        if not self.usable(items):
            solve_thresholds(items, rate, floor, stats=False)
            return
        if self._graph is None or not self._same(items, floor):
            # a capture is followed by its own replay: 1 replay since the last capture = recaptured the next step
            self._churn = self._churn + 1 if self._graph is not None and self.replays - self._replays_at <= 1 else 0
            if self._churn >= _CHURN:
                # recaptured about every step: something rewrites the captured inputs each step (e.g. DDP with
                # broadcast_buffers=True copying the mask buffers in place); capturing costs more than it saves
                self._give_up(f'the threshold search had to be recaptured at {_CHURN} consecutive steps (its inputs '
                              'change between steps: e.g. DDP\'s broadcast_buffers=True rewrites the mask buffers; '
                              'MMEngine\'s default is False)', items, rate, floor)
                return
            try:
                self._capture(items, rate, floor)
            except Exception as e:  # noqa: BLE001 - any capture failure: eager from now on
                self._give_up(f'capturing the threshold search failed ({type(e).__name__}: {e})', items, rate, floor)
                return
            self._replays_at = self.replays
            self._deps = ([m for m, _ in items], [w for _, w in items], versions([m.cost for m, _ in items]),
                          self._flags(items, floor))
        self._rate.fill_(rate)
        self._graph.replay()
        self.replays += 1
        if self._scale is not None:  # the batched masks reuse the search's per-tensor scale (flat.flat_scores)
            flat = flat_for([m for m, _ in items], self._scale.device)
            flat.scale = (self._scale, versions([w for _, w in items]))

    def _give_up(self, why: str, items, rate: float, floor: float) -> None:
        """The eager search from now on, with one warning saying why; runs this step's search eagerly."""
        self.failed = True
        self._graph = None
        warnings.warn(f'SemiPruner(cuda_graphs=True): {why}; the search runs eagerly from now on '
                      '(prune_cfg.cuda_graphs=False says so up front)')
        solve_thresholds(items, rate, floor, stats=False)

    def _capture(self, items, rate, floor):
        self._graph = None
        dev = items[0][1].device
        masks = [m for m, _ in items]
        self._rate = torch.full((), float(rate), dtype=torch.float64, device=dev)
        # the per-tensor scale the search computes, copied into a buffer of its own: a graph's outputs are the
        # tensors it wrote at capture, refreshed by every replay
        self._scale = torch.empty(len(items), dtype=items[0][1].dtype, device=dev) if masks[0].normalize else None

        def search():
            solve_thresholds(items, rate, floor, stats=False, rate_t=self._rate)
            if self._scale is not None:
                self._scale.copy_(flat_for(masks, dev).scale[0])

        if self._graph_cls is not None:
            search()  # warm-up: caches, segment plans (their one host read happens here, not in the capture)
            graph = self._graph_cls(search)
        else:
            with torch.autocast('cuda', enabled=False):
                side = torch.cuda.Stream(dev)
                side.wait_stream(torch.cuda.current_stream(dev))
                with torch.cuda.stream(side):
                    for _ in range(2):
                        search()
                torch.cuda.current_stream(dev).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, capture_error_mode='thread_local'):
                    search()
        self._graph = graph
        self.captures += 1
