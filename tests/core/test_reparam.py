import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmsemiprune.core import PruneSpec, SemiPruner
from mmsemiprune.core.cascade import SemiMask
from mmsemiprune.core.reparam import bake, get_mask, install_mask, is_masked, masked_tensor


def _masked(module, pname='weight', groups=('out', ), mode='semi', te=0.8, tg=0.9):
    m = SemiMask(module._parameters[pname].shape, list(groups), mode)
    m.thr_entry.fill_(te)
    m.thr_group.fill_(tg)
    m.temperature.fill_(0.1)
    install_mask(module, pname, m)
    return m


@pytest.mark.parametrize('make, x, fn', [
    (lambda: nn.Conv1d(3, 4, 3), torch.randn(2, 3, 7), lambda mod, w, x: F.conv1d(x, w, mod.bias)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1), torch.randn(2, 3, 5, 5), lambda mod, w, x: F.conv2d(x, w, mod.bias, padding=1)),
    (lambda: nn.Conv3d(2, 4, 1), torch.randn(2, 2, 3, 3, 3), lambda mod, w, x: F.conv3d(x, w, mod.bias)),
    (lambda: nn.Linear(5, 4), torch.randn(2, 5), lambda mod, w, x: F.linear(x, w, mod.bias)),
])
def test_stock_weight_masked_forward_and_names(make, x, fn):
    mod = make()
    stock = type(mod)
    fresh_keys = set(mod.state_dict().keys())
    latent = mod.weight
    m = _masked(mod)
    assert isinstance(mod, stock) and type(mod) is not stock
    assert is_masked(mod, 'weight') and get_mask(mod, 'weight') is m
    assert mod.weight is latent and isinstance(mod.weight, nn.Parameter)  # stock name = the latent Ŵ
    keys = set(mod.state_dict().keys())
    assert fresh_keys <= keys and 'weight' in keys
    assert {k for k in keys - fresh_keys} == {k for k in keys if k.startswith('weight_psi.')}
    assert 'weight_psi.thr_entry' in keys and 'weight_psi.gate.logit' in keys
    y = mod(x)
    w_masked = latent * m(latent)
    assert not torch.allclose(w_masked, latent)  # the mask does something at these thresholds
    assert torch.allclose(y, fn(mod, w_masked, x), atol=1e-6)
    # gradient reaches the latent and the gate through ψ
    y.pow(2).sum().backward()
    assert latent.grad is not None and torch.isfinite(latent.grad).all() and latent.grad.abs().max() > 0
    assert m.gate.logit.grad is not None and m.gate.logit.grad.abs().max() > 0


def test_weight_init_after_masking_lands_on_latent():
    conv = nn.Conv2d(3, 4, 3)
    _masked(conv)
    nn.init.constant_(conv.weight, 0.5)
    assert torch.equal(conv._parameters['weight'].detach(), torch.full((4, 3, 3, 3), 0.5))
    nn.init.kaiming_normal_(conv.weight)
    assert conv._parameters['weight'].std() > 0.01


def test_dense_state_dict_loads_with_only_psi_missing():
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    SemiPruner(model, [PruneSpec('0'), PruneSpec('2')], 0.5)
    sd = model.state_dict()
    assert '0.weight' in sd and '2.weight' in sd and '0.weight_psi.mask' in sd
    res = model.load_state_dict(dense.state_dict(), strict=False)
    assert res.unexpected_keys == []
    assert res.missing_keys and all('_psi' in k for k in res.missing_keys)
    assert torch.equal(model[0]._parameters['weight'], dense[0].weight)
    # and the masked checkpoint round-trips strictly
    m2 = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    SemiPruner(m2, [PruneSpec('0'), PruneSpec('2')], 0.5)
    m2.load_state_dict(model.state_dict())


class Graph(nn.Module):
    """A GCN-like module whose adjacency is a parameter read as ``self.PA`` in forward."""

    def __init__(self, K=3, V=5):
        super().__init__()
        self.PA = nn.Parameter(torch.randn(K, V, V))
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):  # x: (N, C, T, V)
        return self.conv(torch.einsum('nctv,kvw->nctw', x, self.PA))


def test_property_masked_parameter():
    torch.manual_seed(0)
    g = Graph()
    fresh_keys = list(Graph().state_dict().keys())
    x = torch.randn(2, 4, 6, 5)
    latent = g._parameters['PA']
    m = _masked(g, 'PA', groups=('row', ), te=0.7, tg=0.9)
    assert type(g) is not Graph and isinstance(g, Graph)
    stored = torch.rand(3, 5, 5) > 0.4
    m.freeze(stored)
    assert torch.equal(g.PA, latent * stored)  # forward-visible value is masked
    expected = g.conv(torch.einsum('nctv,kvw->nctw', x, latent * stored))
    assert torch.allclose(g(x), expected, atol=1e-6)
    keys = list(g.state_dict().keys())
    assert 'PA' in keys and 'PA_psi.mask' in keys
    assert [k for k in keys if '_psi' not in k] == fresh_keys
    y = g(x)
    bake(g)
    assert type(g) is Graph
    assert list(g.state_dict().keys()) == fresh_keys
    assert not any('_psi' in n for n, _ in g.named_modules())
    assert isinstance(g.PA, nn.Parameter)
    assert torch.allclose(g(x), y, atol=1e-6)


def test_property_masked_soft_gradient():
    g = Graph()
    m = _masked(g, 'PA', groups=('row', 'col'), te=0.7, tg=0.9)
    g(torch.randn(2, 4, 6, 5)).pow(2).sum().backward()
    assert g._parameters['PA'].grad.abs().max() > 0 and m.gate.logit.grad.abs().max() > 0


def test_two_property_params_and_bake():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.A = nn.Parameter(torch.randn(4, 4))
            self.B = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x @ self.A @ self.B

    t = Two()
    ma = _masked(t, 'A', groups=('row', ))
    mb = _masked(t, 'B', groups=('col', ))
    ma.freeze(torch.eye(4, dtype=torch.bool))
    mb.freeze(torch.ones(4, 4, dtype=torch.bool).triu())
    x = torch.randn(3, 4)
    expected = x @ (t._parameters['A'] * torch.eye(4)) @ (t._parameters['B'] * torch.ones(4, 4).triu())
    assert torch.allclose(t(x), expected, atol=1e-6)
    bake(t)
    assert type(t) is Two and torch.allclose(t(x), expected, atol=1e-6)
    assert torch.equal(t.A.detach(), t.A.detach().diag().diag())


def test_bake_conv_restores_stock_class():
    conv = nn.Conv2d(3, 4, 3)
    m = _masked(conv)
    m.freeze(m.hard(conv.weight))
    x = torch.randn(2, 3, 6, 6)
    y = conv(x)
    bake(conv)
    assert type(conv) is nn.Conv2d
    assert list(conv.state_dict().keys()) == list(nn.Conv2d(3, 4, 3).state_dict().keys())
    assert (y - conv(x)).abs().max() <= 1e-6
    bake(conv)  # no-op on a plain module
    assert type(conv) is nn.Conv2d


def test_deepcopy_masked_module():
    conv = nn.Conv2d(3, 4, 3)
    _masked(conv)
    c2 = copy.deepcopy(conv)
    x = torch.randn(1, 3, 5, 5)
    assert torch.equal(conv(x), c2(x))
    assert c2.weight is c2._parameters['weight'] and c2.weight is not conv.weight


def test_masked_tensor_value():
    lin = nn.Linear(4, 3)
    m = _masked(lin)
    assert torch.allclose(masked_tensor(lin, 'weight'), lin.weight * m(lin.weight))


def test_install_errors():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError) as e:
        install_mask(conv, 'nope', SemiMask((4, ), ['out']), 'net.conv')
    assert "'nope'" in str(e.value) and 'net.conv.nope' in str(e.value) and 'weight' in str(e.value)
    with pytest.raises(ValueError) as e:
        install_mask(conv, 'weight', SemiMask((4, 3, 1, 1), ['out']), 'net.conv')
    assert '(4, 3, 1, 1)' in str(e.value) and '(4, 3, 3, 3)' in str(e.value)
    assert not is_masked(conv, 'weight') and type(conv) is nn.Conv2d  # failed installs leave no trace
    install_mask(conv, 'weight', SemiMask((4, 3, 3, 3), ['out']), 'net.conv')
    with pytest.raises(ValueError, match='already masked'):
        install_mask(conv, 'weight', SemiMask((4, 3, 3, 3), ['out']), 'net.conv')
    nobias = nn.Conv2d(3, 4, 3, bias=False)
    with pytest.raises(ValueError, match="'bias'"):
        install_mask(nobias, 'bias', SemiMask((4, ), ['out']))


def test_bias_then_weight_on_a_conv():
    conv = nn.Conv2d(3, 4, 3)
    mb = _masked(conv, 'bias', groups=('out', ))
    mw = _masked(conv, 'weight')
    mb.freeze(torch.tensor([True, False, True, False]))
    mw.freeze(torch.rand(4, 3, 3, 3) > 0.5)
    x = torch.randn(1, 3, 5, 5)
    w = conv._parameters['weight'] * mw.mask
    b = conv._parameters['bias'] * mb.mask
    assert torch.allclose(conv(x), F.conv2d(x, w, b), atol=1e-6)
    bake(conv)
    assert type(conv) is nn.Conv2d and torch.allclose(conv(x), F.conv2d(x, w, b), atol=1e-6)


def test_rejected_install_leaves_module_unchanged():
    conv = nn.Conv2d(3, 4, 3)
    _masked(conv)
    with pytest.raises(ValueError, match='only the weight'):
        install_mask(conv, 'bias', SemiMask((4, ), ['out']))
    assert not hasattr(conv, 'bias_psi')
    assert not any(k.startswith('bias_psi') for k in conv.state_dict())
