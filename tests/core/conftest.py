"""Shared fixtures for the core tests: a tiny two-conv toy net with channel sets and a training loop.

The toy net's layers have different output spatial sizes (c1: 8x8, c2: 4x4 via stride 2, fc: 1), so the
FLOPs-weighted rate differs from the parameter rate.
"""
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmsemiprune.core import ChannelSet, PruneSpec, SemiPruner, Slot


C = 96  # wide enough that one channel (its producer row + consumer column) is ~1 % of the cost


class Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, C, 3, padding=1)
        self.b1 = nn.BatchNorm2d(C)
        self.c2 = nn.Conv2d(C, C, 1, stride=2)  # GCN-like 1x1 conv
        self.b2 = nn.BatchNorm2d(C)
        self.fc = nn.Linear(C, 4)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.relu(self.b2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


def toy_sets():
    return [ChannelSet('c1', C, producers=[Slot('c1')], consumers=[Slot('c2', dim=1)], norms=['b1']),
            ChannelSet('c2', C, producers=[Slot('c2')], consumers=[Slot('fc', dim=1)], norms=['b2'])]


def toy_specs():
    return [PruneSpec('c1'), PruneSpec('c2', groups=['out', 'in']), PruneSpec('fc', groups=['in'])]


def toy_data(n=256, seed=1):
    """4 classes from the signs of the means of input channels 0 and 1 (chance = 0.25)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long() + 2 * (x[:, 1].mean((1, 2)) > 0).long()
    return x, y


def make_pruner(mode='semi', cost='params', rate=0.8, seed=0, **kw):
    torch.manual_seed(seed)
    net = Toy()
    pr = SemiPruner(net, toy_specs(), rate, mode=mode, cost=cost, channel_sets=toy_sets(), **kw)
    x, _ = toy_data()
    pr.profile(lambda: net(x[:2]))
    return net, pr


def train_toy(mode="semi", cost="params", rate=0.8, iters=40, seed=0, batch=32, **kw):
    """Train the toy net with the regularizer for ``iters`` steps; the default schedule freezes at 80 %."""
    net, pr = make_pruner(mode, cost, rate, seed, **kw)
    x, y = toy_data()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for it in range(iters):
        pr.set_progress(it / iters)
        idx = torch.randint(0, len(x), (batch, ), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx]) + pr.budget_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, pr


def random_gates(pr, g):
    """Distinct learned gate logits, N(0, 1) drawn from generator ``g``, so that the gates are not trivial."""
    with torch.no_grad():
        for m in pr.masks:
            if m.gate.mode == 'learned':
                m.gate.logit.copy_(torch.randn(m.gate.logit.shape, generator=g))


def accuracy(net, n=256, seed=2):
    x, y = toy_data(n, seed)
    was = net.training
    net.eval()
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    net.train(was)
    return acc


@pytest.fixture
def toy():
    return types.SimpleNamespace(Toy=Toy, sets=toy_sets, specs=toy_specs, data=toy_data, make_pruner=make_pruner,
                                 train=train_toy, accuracy=accuracy, random_gates=random_gates)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # tiny tensors: one thread is faster and does not fight over the 2 shared cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
