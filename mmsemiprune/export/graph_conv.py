"""The graph convolution of MMAction2's ``unit_gcn`` as two matrix products, without layout copies.

MMAction2 1.1.0's ``unit_gcn`` (``conv_pos='pre'``: ST-GCN, ST-GCN++) computes, for x of shape (N, C, T, V),

    h = conv1x1(x)                      (N, K·O, T, V), rows ordered (k, o)
    y = einsum('nkctv,kvw->nctw', h, A)  (N, O, T, V)

with A (K, V, V) the (adaptive) adjacency. ``torch.einsum`` contracts over (k, v), which are not adjacent
in h's memory, so it first copies h into a (N·O·T, K·V) layout: one copy of the layer's widest activation
per layer, plus a memory-format conversion before the next convolution when the model runs channels-last.
On a GPU those layout copies were measured to be 37 % of the dense ST-GCN's kernel time at batch 64
(bench/README.md); on the CPU the 1×1 convolution itself runs slower through oneDNN in NCHW
than as a matrix product.

:class:`MatmulUnitGCN` computes the same sum in a channels-last order, where the contracted indices are
adjacent and nothing is copied:

    h = x_l · Wᵀ + b                    x_l = x viewed (N·T·V, C)         → h (N·T·V, K·O) ≡ (N·T, V·K, O)
    y = A₂ · h                          A₂[w, v·K + k] = A[k, v, w]  (V, V·K), batched over N·T → (N·T, V, O)

and returns y viewed as (N, O, T, V) in channels-last strides (no copy), followed by MMAction2's own
``act(bn(y) + res)``. The conv bias goes through the aggregation exactly as in the stock order. Only the
summation order differs (|Δ| ~1e-7 relative in float32). The input is read in channels-last order: a
contiguous (N, C, T, V) input costs one copy of x (K times smaller than h); the output is channels-last, so
the following temporal convolution and every later graph convolution see channels-last tensors.

It is a forward-only change of formulation: same parameters and buffers, same state-dict keys, same
gradients up to rounding; :func:`set_graph_conv` switches the modules of a model in place, both ways. It
serves inference (exported configs set ``graph_conv='matmul'``): a dense training step (forward + backward,
batch 4) was slower with it on the CPU, 1.86 → 2.01 s, so training keeps MMAction2's forward.
``conv_pos='post'`` units (and every other graph convolution: AAGCN's, CTR-GCN's) are left as they are.

The product with A₂ is a ``bmm`` over A₂ expanded with batch stride 0 (no copy) rather than a broadcast
``matmul``: mmengine's ``FlopAnalyzer`` counts the former right (the same total as the stock graph's conv +
einsum) and the latter as one batch's. The exporter still counts MACs on the stock formulation
(:func:`using_graph_conv`: its per-conv forward hooks need the 1×1 conv module to be called, and its
by-operator names stay 'conv' / 'einsum'), and traces ONNX from it (onnxruntime ran the stock graph faster
on the CPU: 2.02 vs 2.12 s at batch 16, NTU ST-GCN, one thread).

Measured on a GPU (NVIDIA H200, ``bench/bench_export.py --graph-conv matmul``, NTU ST-GCN, batch 64):
eager, 1.30× faster than the stock unit in float32 and 2.11× in float16 channels-last (no layout copy left in
the kernel table). **Compiled** (``torch.compile``), Inductor already fuses einsum's layout copies, and the stock
graph compiled better: the matmul one was 0.83× as fast in float32 (dense and exported structured 0.9) and
0.98-1.07× in float16. So a ``MatmulUnitGCN`` being compiled by dynamo traces MMAction2's stock forward (same
parameters, same result): eager runs get the matmul products, compiled runs the stock graph, with nothing to set.
``torch.export`` keeps the matmul products (its program is what the exporter checks for exactness).
"""
import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from mmaction.models.utils.gcn_utils import unit_gcn
from torch import nn

__all__ = ['MatmulUnitGCN', 'set_graph_conv', 'graph_conv_of', 'using_graph_conv', 'GRAPH_CONVS']

GRAPH_CONVS = ('stock', 'matmul')


class MatmulUnitGCN(unit_gcn):
    """``unit_gcn`` (``conv_pos='pre'``) whose aggregation is two matrix products (module docstring).
    Built by :func:`set_graph_conv`, never directly: it has no parameters of its own."""

    def adjacency(self) -> torch.Tensor:
        """The effective A (K, V, V) of the stock forward (``A``, ``A·PA`` or ``A + PA``)."""
        if self.adaptive == 'importance':
            return self.A * self.PA
        if self.adaptive == 'offset':
            return self.A + self.PA
        return self.A

    def aggregation_matrix(self) -> torch.Tensor:
        """A₂ (V, V·K), A₂[w, v·K + k] = A[k, v, w]. Without autograd (inference) it is kept between calls
        while A / PA are the same tensors at the same versions (two kernel launches fewer per unit and call);
        with autograd, with an adjacency masked by the pruner, or while being compiled / traced, it is recomputed
        at every call (a compiled graph computes it once anyway)."""
        raw = [self._buffers.get('A', self._parameters.get('A')), self._parameters.get('PA')]
        key = None
        if not (torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
                or torch.jit.is_tracing() or any(hasattr(self, n + '_psi') for n in ('A', 'PA'))):
            try:  # a traced (fake / functional) tensor has no storage: no cache then
                key = tuple((r.data_ptr(), r._version, r.device, r.dtype) for r in raw if r is not None)
            except RuntimeError:
                pass
        hit = self.__dict__.get('_a2_cache')
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        A = self.adjacency()
        k, v = A.shape[0], A.shape[-1]
        a2 = A.permute(2, 1, 0).reshape(v, v * k)
        self.__dict__['_a2_cache'] = None if key is None else (key, a2)
        return a2

    def __getstate__(self):  # copies and pickles carry no cached A₂ (it may be an inference-mode tensor)
        state = dict(super().__getstate__())  # a copy: the default returns the live __dict__
        state.pop('_a2_cache', None)
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
            return super().forward(x)  # torch.compile: the stock graph (module docstring, "Compiled")
        n, c, t, v = x.shape
        res = self.down(x) if self.with_res else 0
        a2 = self.aggregation_matrix()  # (V, V·K): a few hundred entries
        k = a2.shape[1] // v
        w, b = _conv_params(self.conv)  # (K·O, C, 1, 1), rows (k, o); (K·O,)
        o = w.shape[0] // k
        h = F.linear(x.permute(0, 2, 3, 1).reshape(n * t * v, c), w.reshape(w.shape[0], c), b)
        # (N·T, V, O); bmm over A₂ expanded with batch stride 0 (no copy), which FLOP counters read right
        y = torch.bmm(a2.expand(n * t, v, v * k), h.view(n * t, v * k, o))
        y = y.view(n, t, v, o).permute(0, 3, 1, 2)  # (N, O, T, V), channels-last strides
        return self.act(self.bn(y) + res)


def _conv_params(conv: nn.Module):
    """The (weight, bias) the conv's own forward would use: a conv masked by :mod:`mmsemiprune.core.reparam`
    computes with Ŵ ⊙ ψ (and its masked bias), given by its ``masked_params()``."""
    masked = getattr(conv, 'masked_params', None)
    return masked() if masked is not None else (conv.weight, conv.bias)


def _units(model: nn.Module) -> Iterator[unit_gcn]:
    for m in model.modules():
        if isinstance(m, unit_gcn) and m.conv_pos == 'pre':
            yield m


def set_graph_conv(model: nn.Module, kind: str = 'matmul') -> int:
    """Switch every ``unit_gcn`` (``conv_pos='pre'``) of ``model`` in place to the ``'matmul'`` formulation
    (:class:`MatmulUnitGCN`) or back to MMAction2's ``'stock'`` one. Returns the number of units of that
    kind afterwards (0: the model has none, e.g. AAGCN or CTR-GCN)."""
    if kind not in GRAPH_CONVS:
        raise ValueError(f'graph_conv={kind!r}: choose one of {", ".join(map(repr, GRAPH_CONVS))} ("matmul": '
                         'the graph convolution as two matrix products without layout copies; "stock": '
                         "MMAction2's einsum)")
    cls = MatmulUnitGCN if kind == 'matmul' else unit_gcn
    n = 0
    for m in _units(model):
        if type(m) in (unit_gcn, MatmulUnitGCN):  # a subclass with its own forward is not ours to replace
            m.__class__ = cls
            m.__dict__.pop('_a2_cache', None)
            n += 1
    return n


def graph_conv_of(model: nn.Module) -> str:
    """'matmul', 'stock', 'mixed' or 'none' (no ``unit_gcn`` with ``conv_pos='pre'``)."""
    kinds = {'matmul' if type(m) is MatmulUnitGCN else 'stock' for m in _units(model)}
    return kinds.pop() if len(kinds) == 1 else ('mixed' if kinds else 'none')


@contextlib.contextmanager
def using_graph_conv(model: nn.Module, kind: str):
    """``with using_graph_conv(model, 'stock'): ...``: the model in ``kind`` inside, as it was after (per unit)."""
    before = [(m, m.__class__) for m in _units(model)]
    set_graph_conv(model, kind)
    try:
        yield model
    finally:
        for m, cls in before:
            m.__class__ = cls
