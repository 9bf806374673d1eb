"""CTR-GCN backbone (Chen et al., ICCV 2021) for MMAction2 1.1.0.

The MMAction2 1.1.0 wheel ships CTR-GCN only as the out-of-package project
``projects/ctrgcn``.  This module is an independent implementation that keeps
the constructor arguments, module tree and therefore the ``state_dict`` keys
of that project, so its checkpoints load with ``strict=True``.

Shapes use ``N`` batch, ``M`` persons, ``C`` channels, ``T`` frames and
``V`` joints.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleList, Sequential

from mmaction.models.utils import Graph, unit_tcn
from mmaction.registry import MODELS

_CONV_BN_INIT = [
    dict(type='Constant', layer='BatchNorm2d', val=1),
    dict(type='Kaiming', layer='Conv2d', mode='fan_out'),
]


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1):
    """Plain 1x1 ``nn.Conv2d`` (with bias), temporal stride only."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=1, stride=(stride, 1))


class CTRGC(BaseModule):
    """Channel-wise topology refinement graph convolution for one subset.

    ``conv1``/``conv2`` embed the input into ``rel_channels`` and, averaged
    over time, give joint features whose pairwise differences pass through
    ``tanh``; ``conv4`` lifts these correlations to one topology per output
    channel.  Scaled by ``alpha`` and added to the shared topology ``A``
    (V, V), it aggregates the ``conv3`` features over joints.

    Input (N, C_in, T, V) -> output (N, C_out, T, V).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 rel_reduction: int = 8,
                 init_cfg: Union[Dict, List[Dict]] = _CONV_BN_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.rel_channels = (8 if in_channels <= 16 else in_channels //
                             rel_reduction)
        self.conv1 = _conv1x1(in_channels, self.rel_channels)
        self.conv2 = _conv1x1(in_channels, self.rel_channels)
        self.conv3 = _conv1x1(in_channels, out_channels)
        self.conv4 = _conv1x1(self.rel_channels, out_channels)
        self.tanh = nn.Tanh()

    def forward(self,
                x: torch.Tensor,
                A: Optional[torch.Tensor] = None,
                alpha: Union[torch.Tensor, float] = 1) -> torch.Tensor:
        """x (N, C_in, T, V), A (V, V) -> (N, C_out, T, V)."""
        q = self.conv1(x).mean(dim=2)  # N, R, V
        k = self.conv2(x).mean(dim=2)  # N, R, V
        value = self.conv3(x)  # N, C_out, T, V
        # correlation between joint u (rows) and joint v (columns)
        rel = self.tanh(q[..., :, None] - k[..., None, :])  # N, R, V, V
        topo = self.conv4(rel) * alpha  # N, C_out, V, V
        if A is not None:
            topo = topo + A[None, None]
        # same orientation as mmaction's Graph: A[u, v] sends u -> v
        return torch.einsum('ncuv,nctu->nctv', topo, value)


class unit_ctrgcn(BaseModule):
    """Spatial unit: a sum of ``CTRGC`` over the K adjacency subsets.

    ``A`` (K, V, V) is a learnable copy of the graph shared by all channels,
    ``alpha`` (1,) scales the channel-wise refinement (starts at 0).  Output
    is ``relu(bn(sum_k CTRGC_k(x)) + down(x))``.

    Input (N, C_in, T, V) -> output (N, C_out, T, V).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        A: torch.Tensor,
        init_cfg: Union[Dict, List[Dict]] = [
            dict(
                type='Constant',
                layer='BatchNorm2d',
                val=1,
                override=dict(type='Constant', name='bn', val=1e-6)),
            dict(type='Kaiming', layer='Conv2d', mode='fan_out')
        ]
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_c = in_channels
        self.out_c = out_channels
        self.inter_c = out_channels // 4
        self.num_subset = A.shape[0]
        self.convs = ModuleList(
            [CTRGC(in_channels, out_channels) for _ in range(self.num_subset)])
        if in_channels != out_channels:
            self.down = Sequential(
                _conv1x1(in_channels, out_channels),
                nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()
        self.A = nn.Parameter(A.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, V) -> (N, C_out, T, V)."""
        y = 0
        for i, conv in enumerate(self.convs):
            y = y + conv(x, self.A[i], self.alpha)
        return self.relu(self.bn(y) + self.down(x))


class MSTCN(BaseModule):
    """Multi-scale temporal convolution of CTR-GCN.

    Branches (each ``Sequential``, indices are state-dict key parts):
    one per dilation ``[1x1 conv, BN, ReLU, unit_tcn(k, dilation)]``, a
    max-pool branch ``[1x1 conv, BN, ReLU, MaxPool(3,1), BN]`` and a strided
    ``[1x1 conv, BN]`` branch taking the remaining channels.  The
    concatenation (+ optional residual) goes through ReLU and dropout, as in
    MMAction2's port.

    Input (N, C_in, T, V) -> output (N, C_out, T // stride, V).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Sequence[int]] = 3,
                 stride: int = 1,
                 dilations: Sequence[int] = (1, 2, 3, 4),
                 residual: bool = True,
                 tcn_dropout: float = 0.,
                 init_cfg: Union[Dict, List[Dict]] = _CONV_BN_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        dilations = list(dilations)
        self.num_branches = len(dilations) + 2
        mid = out_channels // self.num_branches
        rem = out_channels - mid * (self.num_branches - 1)
        if isinstance(kernel_size, (list, tuple)):
            assert len(kernel_size) == len(dilations)
            kernel_sizes = list(kernel_size)
        else:
            kernel_sizes = [kernel_size] * len(dilations)

        branches = [
            Sequential(
                _conv1x1(in_channels, mid), nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
                unit_tcn(mid, mid, kernel_size=ks, stride=stride, dilation=d))
            for ks, d in zip(kernel_sizes, dilations)
        ]
        branches.append(
            Sequential(
                _conv1x1(in_channels, mid), nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(
                    kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0)),
                nn.BatchNorm2d(mid)))
        branches.append(
            Sequential(
                _conv1x1(in_channels, rem, stride=stride),
                nn.BatchNorm2d(rem)))
        self.branches = ModuleList(branches)

        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = unit_tcn(
                in_channels, out_channels, kernel_size=1, stride=stride)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(tcn_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, V) -> (N, C_out, T // stride, V)."""
        res = 0 if self.residual is None else self.residual(x)
        out = torch.cat([branch(x) for branch in self.branches], dim=1) + res
        return self.drop(self.act(out))


class CTRGCNBlock(BaseModule):
    """``relu(tcn1(gcn1(x)) + residual(x))``.

    ``residual`` is ``None`` (no residual), ``nn.Identity`` or a strided 1x1
    ``unit_tcn`` when channels or stride change.

    Input (N, C_in, T, V) -> output (N, C_out, T // stride, V).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 A: torch.Tensor,
                 stride: int = 1,
                 residual: bool = True,
                 kernel_size: Union[int, Sequence[int]] = 5,
                 dilations: Sequence[int] = (1, 2),
                 tcn_dropout: float = 0.) -> None:
        super().__init__()
        self.gcn1 = unit_ctrgcn(in_channels, out_channels, A)
        self.tcn1 = MSTCN(
            out_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            dilations=dilations,
            residual=False,
            tcn_dropout=tcn_dropout)
        self.relu = nn.ReLU(inplace=True)
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = unit_tcn(
                in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, V) -> (N, C_out, T // stride, V)."""
        res = 0 if self.residual is None else self.residual(x)
        # ``+ res`` also gives the in-place ReLU a fresh tensor when res = 0
        return self.relu(self.tcn1(self.gcn1(x)) + res)


class CTRGCN(BaseModule):
    """CTR-GCN backbone, state-dict compatible with MMAction2's
    ``projects/ctrgcn`` ``CTRGCN``.

    Args:
        graph_cfg (dict): Kwargs of ``mmaction.models.utils.Graph``.
        in_channels (int): Input channels C. Defaults to 3.
        base_channels (int): Channels of the first stage. Defaults to 64.
        num_stages (int): Number of ``CTRGCNBlock``. Defaults to 10.
        inflate_stages (list[int]): 1-based stages doubling the channels.
            Defaults to ``[5, 8]``.
        down_stages (list[int]): 1-based stages with temporal stride 2.
            Defaults to ``[5, 8]``.
        pretrained (str, optional): Checkpoint loaded by ``init_weights``
            (the upstream project accepts and ignores it).
        num_person (int): Persons M; ``data_bn`` is BN1d(M * V * C).
            Defaults to 2.
        init_cfg (dict or list[dict], optional): Extra, not in upstream;
            ``None`` keeps upstream behaviour.
        **kwargs: Forwarded to every block: ``kernel_size`` (5),
            ``dilations`` ([1, 2]) and ``tcn_dropout`` (0, not used by the
            first block).

    Input (N, M, T, V, C) -> output (N, M, C_out, T', V), with
    ``C_out = base_channels * 2 ** len(inflate_stages)`` (256) and
    ``T' = T / 2 ** len(down_stages)`` (T / 4).

    Attributes for pruning / export:
        graph (Graph): The graph; ``A`` (K, V, V) is also a persistent buffer
            (state-dict key ``A``).
        net (ModuleList): Blocks ``net.i``, each with ``gcn1``
            (``unit_ctrgcn``), ``tcn1`` (``MSTCN``) and ``residual``.
        num_person, in_channels, base_channels (first stage),
        out_channels (last stage): ints.

        Every weight layer is a plain ``nn.Conv2d`` (1x1 in the graph
        convolutions, branch inputs and residuals; (k, 1) in the temporal
        branches) or ``nn.BatchNorm2d``/``nn.BatchNorm1d`` (``data_bn``),
        so a generic masker can class-swap them.  The only other parameters
        are the adjacency ``net.i.gcn1.A`` (K, V, V) and the refinement
        scale ``net.i.gcn1.alpha`` (1,).  Identity / absent residuals are
        ``nn.Identity`` / ``None`` and hold no parameters.
    """

    _block_kwargs = ('kernel_size', 'dilations', 'tcn_dropout')

    def __init__(self,
                 graph_cfg: Dict,
                 in_channels: int = 3,
                 base_channels: int = 64,
                 num_stages: int = 10,
                 inflate_stages: Sequence[int] = [5, 8],
                 down_stages: Sequence[int] = [5, 8],
                 pretrained: Optional[str] = None,
                 num_person: int = 2,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None,
                 **kwargs) -> None:
        if init_cfg is None and pretrained is not None:
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        unknown = set(kwargs) - set(self._block_kwargs)
        if unknown:
            raise TypeError(f'CTRGCN got unexpected arguments {unknown}')

        self.graph = Graph(**graph_cfg)
        A = torch.tensor(self.graph.A, dtype=torch.float32)
        self.register_buffer('A', A)

        self.num_person = num_person
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * A.size(1))

        first_kwargs = {k: v for k, v in kwargs.items() if k != 'tcn_dropout'}
        blocks = [
            CTRGCNBlock(
                in_channels, base_channels, A, residual=False, **first_kwargs)
        ]
        channels = base_channels
        for stage in range(2, num_stages + 1):
            out_channels = channels * (2 if stage in inflate_stages else 1)
            stride = 2 if stage in down_stages else 1
            blocks.append(
                CTRGCNBlock(
                    channels, out_channels, A, stride=stride, **kwargs))
            channels = out_channels
        self.out_channels = channels
        self.net = ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M, T, V, C) -> (N, M, C_out, T', V)."""
        N, M, T, V, C = x.size()
        x = x.permute(0, 1, 3, 4, 2).reshape(N, M * V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2)
        x = x.reshape(N * M, C, T, V)
        for block in self.net:
            x = block(x)
        return x.reshape((N, M) + x.shape[1:])


def _register() -> None:
    """Register ``CTRGCN`` in MMAction2's MODELS, safe on re-import."""
    existing = MODELS.module_dict.get('CTRGCN')
    if existing is not None and existing.__module__ != __name__:
        warnings.warn(f'Replacing MODELS["CTRGCN"] ({existing.__module__}) '
                      f'with {__name__}.CTRGCN (same state-dict layout).')
    MODELS.register_module(name='CTRGCN', module=CTRGCN, force=True)


_register()
