import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmsemiprune.core import ChannelSet, Slot
from mmsemiprune.core.shrink import bake_model, dense_state_dict, shrink, sparse_state_dict
from mmsemiprune.core.reparam import is_masked


@pytest.fixture
def frozen(toy):
    def make(mode='semi', rate=0.8, train=True):
        if train:
            net, pr = toy.train(mode, 'params', rate, iters=20)
        else:
            net, pr = toy.make_pruner(mode, 'params', rate)
            net(toy.data(16)[0])
            pr.freeze()
        assert pr.frozen
        net.eval()
        return net, pr
    return make


@pytest.mark.parametrize('mode', ['semi', 'structured', 'unstructured'])
def test_bake_gives_plain_module(toy, frozen, mode):
    net, pr = frozen(mode)
    x = toy.data(32, seed=3)[0]
    with torch.no_grad():
        y = net(x)
    assert bake_model(net) == 3
    assert type(net.c1) is nn.Conv2d and type(net.c2) is nn.Conv2d and type(net.fc) is nn.Linear
    assert not any(is_masked(m, 'weight') for m in net.modules())
    assert not any('_psi' in n for n, _ in net.named_modules())
    fresh = toy.Toy()
    assert list(net.state_dict()) == list(fresh.state_dict())
    with torch.no_grad():
        assert (net(x) - y).abs().max().item() <= 1e-6
    fresh.load_state_dict(net.state_dict())  # a stock module loads it strictly
    fresh.eval()
    with torch.no_grad():
        assert (fresh(x) - y).abs().max().item() <= 1e-6
    kept = sum(int((p != 0).sum()) for p in (net.c1.weight, net.c2.weight, net.fc.weight))
    assert kept <= pr.report()['kept']


def test_bake_requires_frozen_masks(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    with pytest.raises(ValueError) as e:
        bake_model(net)
    assert 'not frozen' in str(e.value) and 'c1.weight_psi' in str(e.value)
    assert is_masked(net.c1, 'weight')  # nothing baked


@pytest.mark.parametrize('mode', ['semi', 'structured'])
def test_shrink_removes_channels_exactly(toy, frozen, mode):
    net, pr = frozen(mode)
    x = toy.data(32, seed=3)[0]
    with torch.no_grad():
        y = net(x)
    bake_model(net)
    C = net.c1.out_channels
    reads1 = (net.c2.weight != 0).flatten(2).any(2).any(0)
    reads2 = (net.fc.weight != 0).any(0)
    removed = shrink(net, pr.channel_sets)
    expected = {'c1': int((~reads1).sum()), 'c2': int((~reads2).sum())}
    assert removed == {k: v for k, v in expected.items() if v}  # sets read in full are not listed
    assert expected['c2'] > 0 and (expected['c1'] > 0 or mode != 'structured')
    k1, k2 = C - expected['c1'], C - expected['c2']
    assert net.c1.weight.shape == (k1, 3, 3, 3) and net.c1.bias.shape == (k1, ) and net.c1.out_channels == k1
    assert net.b1.num_features == k1 and net.b1.running_mean.shape == (k1, ) and net.b1.weight.shape == (k1, )
    assert net.c2.weight.shape == (k2, k1, 1, 1) and net.c2.in_channels == k1 and net.c2.out_channels == k2
    assert net.b2.running_var.shape == (k2, ) and net.fc.weight.shape == (4, k2) and net.fc.in_features == k2
    assert [cs.size for cs in pr.channel_sets] == [k1, k2]
    with torch.no_grad():
        assert (net(x) - y).abs().max().item() <= 1e-5
    assert shrink(net, pr.channel_sets) == {}  # nothing left to remove
    net.train()
    F.cross_entropy(net(x), torch.zeros(32, dtype=torch.long)).backward()  # still a working module
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize('k', [8, 5])
def test_shrink_round_to_keeps_aligned_widths_and_outputs(toy, frozen, k):
    """round_to=k: every shrunk width is a multiple of k (or the full width), the extra channels are unread ones
    (zero consumer weights), the outputs are the masked model's, and fewer channels are removed than without."""
    net, pr = frozen('structured', rate=0.9)
    x = toy.data(32, seed=3)[0]
    with torch.no_grad():
        y = net(x)
    bake_model(net)
    full = {cs.name: cs.size for cs in pr.channel_sets}
    ref_net = copy.deepcopy(net)
    ref_sets = copy.deepcopy(pr.channel_sets)
    plain = shrink(ref_net, ref_sets)
    assert plain and all(cs.size % k for cs in ref_sets)  # the plain widths are not aligned: the test can fail
    removed = shrink(net, pr.channel_sets, round_to=k)
    for cs, ref in zip(pr.channel_sets, ref_sets):
        assert cs.size % k == 0 or cs.size == full[cs.name]
        assert ref.size <= cs.size < ref.size + k
        assert removed[cs.name] == plain[cs.name] - (cs.size - ref.size)
    with torch.no_grad():
        assert (net(x) - y).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match='round_to must be an integer >= 1'):
        shrink(copy.deepcopy(ref_net), copy.deepcopy(ref_sets), round_to=0)


class Spatial(nn.Module):
    """ST-GCN-like: a 1x1 conv writes K·C rows that are summed over the K adjacency subsets."""

    def __init__(self, K=3, C=6, D=5):
        super().__init__()
        self.K, self.C = K, C
        self.gcn = nn.Conv2d(4, K * C, 1)
        self.bn = nn.BatchNorm2d(C)
        self.tcn = nn.Conv2d(C, D, (3, 1), padding=(1, 0))
        self.A = torch.rand(K, 5, 5)

    def forward(self, x):  # (N, 4, T, V)
        n, _, t, v = x.shape
        h = self.gcn(x).view(n, self.K, self.C, t, v)
        h = torch.einsum('nkctv,kvw->nctw', h, self.A)
        return self.tcn(torch.relu(self.bn(h)))


def test_shrink_folded_producer():
    torch.manual_seed(0)
    net = Spatial()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
        net.tcn.weight[:, [1, 4]] = 0  # channels 1 and 4 are read by nothing
    net.eval()
    x = torch.randn(2, 4, 7, 5)
    y = net(x)
    sets = [ChannelSet('s', 6, producers=[Slot('gcn', fold=3)], consumers=[Slot('tcn', dim=1)], norms=['bn'])]
    assert shrink(net, sets) == {'s': 2}
    net.C = 4
    assert net.gcn.weight.shape == (12, 4, 1, 1) and net.gcn.bias.shape == (12, ) and net.gcn.out_channels == 12
    assert net.tcn.weight.shape == (5, 4, 3, 1) and net.bn.num_features == 4
    assert (net(x) - y).abs().max().item() <= 1e-5


def test_sparse_state_dict_round_trip(toy, frozen):
    net, pr = frozen('unstructured', 0.95, train=False)
    bake_model(net)
    sd = net.state_dict()
    sp = sparse_state_dict(sd)
    assert isinstance(sp['c2.weight'], dict) and sp['c2.weight']['__sparse_csr__']
    assert sp['c2.weight']['col'].dtype == torch.int32 and sp['c2.weight']['crow'].dtype == torch.int32
    assert torch.is_tensor(sp['c2.bias']) and torch.is_tensor(sp['b1.num_batches_tracked'])
    back = dense_state_dict(sp)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].shape == sd[k].shape and back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), k
    buf = io.BytesIO()
    torch.save(sp, buf)
    sparse_size = buf.tell()
    buf.seek(0)
    loaded = dense_state_dict(torch.load(buf, weights_only=True))
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    dense_buf = io.BytesIO()
    torch.save(sd, dense_buf)
    assert sparse_size < dense_buf.tell()
    fresh = toy.Toy()
    fresh.load_state_dict(loaded)


def test_sparse_state_dict_threshold():
    t = torch.randn(10, 10)
    t[:3] = 0  # 30 % zeros
    sd = {'a': t, 'b': torch.zeros(4, 4), 'c': torch.zeros(100)}
    sp = sparse_state_dict(sd)
    assert torch.is_tensor(sp['a']) and torch.is_tensor(sp['b']) and torch.is_tensor(sp['c'])  # dense, small, 1-D
    sp = sparse_state_dict(sd, min_sparsity=0.25)
    assert isinstance(sp['a'], dict)
    assert torch.equal(dense_state_dict(sp)['a'], t)


class _PoolHead(nn.Module):
    """conv (the set's producer) → ReLU → global average pool → linear classifier (the set's head)."""

    def __init__(self, bias=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4, bias=bias)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _head_set():
    return ChannelSet('feat', 6, producers=[Slot('conv', dim=0)], fixed_consumer=True, head='fc')


@torch.no_grad()
def test_shrink_folds_constant_classifier_inputs_into_its_bias():
    torch.manual_seed(0)
    net = _PoolHead()
    net.conv.weight[[1, 3]] = 0  # channels 1 and 3: conv bias only, a constant after ReLU and pooling
    x = torch.randn(5, 3, 8, 8)
    orig = copy.deepcopy(net)
    sets = [_head_set()]
    assert shrink(copy.deepcopy(net), [_head_set()]) == {}  # no example run: the classifier keeps its inputs
    removed = shrink(net, sets, run=lambda: net(x))
    assert removed == {'feat': 2} and sets[0].size == 4
    assert net.conv.weight.shape[0] == 4 and net.fc.weight.shape == (4, 4) and net.fc.in_features == 4
    other = torch.randn(3, 3, 8, 8) * 5  # inputs the constants were not read on
    for inp in (x, other):
        assert torch.allclose(net(inp), orig(inp), atol=1e-5)  # W[:, c]·κ_c now in the bias: exact


@torch.no_grad()
def test_shrink_keeps_classifier_inputs_it_cannot_fold():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 8, 8)
    nobias = _PoolHead(bias=False)
    nobias.conv.weight[[1, 3]] = 0
    assert shrink(nobias, [_head_set()], run=lambda: nobias(x)) == {}  # nothing to fold the constant into
    one = _PoolHead()
    one.conv.weight[[1, 3]] = 0
    assert shrink(one, [_head_set()], run=lambda: one(x[:1])) == {}  # one example cannot show it is constant


class _Concat(nn.Module):
    """z → h (3 ch); y = cat(bn0(p0(h)), p1(h)) + r(h) (6 ch), scaled per channel by σ(gt(x)); n reads relu(y)."""

    def __init__(self):
        super().__init__()
        self.z, self.p0, self.p1 = nn.Conv2d(5, 3, 1), nn.Conv2d(3, 2, (3, 1), padding=(1, 0)), nn.Conv2d(3, 4, 1)
        self.bn0, self.r = nn.BatchNorm2d(2), nn.Conv2d(3, 6, 1)
        self.gt, self.n = nn.Conv2d(5, 6, 1), nn.Conv2d(6, 4, 1)

    def forward(self, x):
        h = F.relu(self.z(x))
        y = torch.cat([self.bn0(self.p0(h)), self.p1(h)], dim=1) + self.r(h)
        return self.n(F.relu(y * torch.sigmoid(self.gt(x))))


def _concat_sets():
    return [ChannelSet('in', 3, producers=[Slot('z')], consumers=[Slot('p0', dim=1), Slot('p1', dim=1),
                                                                      Slot('r', dim=1)]),
            ChannelSet('cat', 6, producers=[Slot('p0', length=2), Slot('p1', offset=2, length=4), Slot('r'),
                                            Slot('gt', gate=True)], consumers=[Slot('n', dim=1)],
                       norms=[Slot('bn0', length=2)])]


@torch.no_grad()
def test_shrink_concatenation_parts_and_gates_exactly():
    """Unread channels of a concatenation go from the branch that writes them (its rows, bias and norm), from the
    shortcut and the gate rows; a branch none of whose channels is read keeps one; outputs unchanged."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 4)
    for unread, widths in (([1, 3, 5], (1, 2)), ([0, 1, 4], (1, 3))):  # (p0, p1) widths; [0, 1]: all of p0
        net = _Concat().eval()
        net.bn0.running_mean.uniform_(-1, 1)
        net.n.weight[:, unread] = 0
        net.z.weight[1] = 0  # 'in' channel 1 still read (by p0, p1, r): kept
        ref = net(x)
        sets = _concat_sets()
        removed = shrink(net, sets)
        kept = sum(widths)  # [0, 1, 4]: p0 keeps its channel 0, read by nothing
        assert removed == {'cat': 6 - kept} and sets[1].size == kept
        assert (net.p0.out_channels, net.p1.out_channels) == widths and net.bn0.num_features == widths[0]
        assert net.p0.bias.shape == (widths[0], ) and net.r.weight.shape[0] == net.gt.weight.shape[0] == kept
        assert net.n.weight.shape == (4, kept, 1, 1)
        assert [s.span(kept) for s in sets[1].producers[:2]] == [(0, widths[0]), (widths[0], widths[1])]
        assert torch.allclose(net(x), ref, atol=1e-6)
