"""count_traffic (mmsemiprune/export/exporter.py): bytes written by all operators of one eager forward, the
CPU-countable proxy of a memory-bound GPU batch; and the export report that carries it."""
import torch
from torch import nn

from mmsemiprune.export.exporter import count_traffic


class _Recognizer(nn.Module):
    """The (backbone, cls_head) pair LogitsModel wraps."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.cls_head = nn.Identity()


class _Toy(nn.Module):
    def forward(self, x):
        y = x * 2  # writes 24 floats
        y = y.view(6, 4).t()  # views: nothing
        y.relu_()  # in place: writes 24 floats
        return y.contiguous()  # a copy of the transposed view: 24 floats


def test_every_write_counts_and_no_view():
    assert count_traffic(_Recognizer(_Toy()), torch.randn(4, 6)) == 3 * 24 * 4
    assert count_traffic(_Recognizer(_Toy()), torch.randn(4, 6, dtype=torch.float64)) == 3 * 24 * 8


def test_a_narrower_layer_writes_less():
    """Physically removed channels shrink the activations: the traffic of a conv + BN + ReLU stack falls with the
    width it keeps (exactly: the same ops on fewer channels)."""
    def stack(c):
        return _Recognizer(nn.Sequential(nn.Conv2d(3, c, 1), nn.BatchNorm2d(c), nn.ReLU()).eval())
    x = torch.randn(2, 3, 5, 5)
    wide, narrow = count_traffic(stack(16), x), count_traffic(stack(4), x)
    assert wide == 4 * narrow == 3 * 16 * 2 * 25 * 4  # conv, BN and ReLU each write (2, C, 5, 5) floats
