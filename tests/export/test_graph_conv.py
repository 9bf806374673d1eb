"""The matmul formulation of ``unit_gcn`` (mmsemiprune.export.graph_conv): the stock unit's outputs and
gradients for every adaptive mode, with and without the unit's residual, in either memory format; in place
and reversible on whole models (masked ones included); MACs and ONNX stay on the stock graph."""
import copy

import pytest
import torch
from mmaction.models.utils.gcn_utils import unit_gcn
from mmengine.analysis import FlopAnalyzer
from torch import nn

import mmsemiprune  # noqa: F401
from mmsemiprune.export import LogitsModel
from mmsemiprune.export.exporter import build_model, conv_positions, count_flops, logits, synthetic_skeletons
from mmsemiprune.export.graph_conv import MatmulUnitGCN, graph_conv_of, set_graph_conv, using_graph_conv

from tests.export.test_compact_export import SHAPE, make_pruned


pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py


def make_unit(adaptive, with_res, cin=6, cout=8, k=3, v=5, seed=0):
    torch.manual_seed(seed)
    u = unit_gcn(cin, cout, torch.rand(k, v, v), adaptive=adaptive, with_res=with_res)
    with torch.no_grad():
        if hasattr(u, 'PA'):
            u.PA.uniform_(0.5, 1.5) if adaptive == 'importance' else u.PA.uniform_(-0.2, 0.2)
        for m in u.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return u


def _grads(mod):
    return {n: p.grad.clone() for n, p in mod.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('adaptive', [None, 'init', 'offset', 'importance'])
@pytest.mark.parametrize('with_res,cin', [(False, 6), (True, 6), (True, 8)])
@pytest.mark.parametrize('train', [False, True])
def test_unit_matches_the_stock_forward_and_backward(adaptive, with_res, cin, train):
    stock = make_unit(adaptive, with_res, cin=cin).train(train)
    mine = copy.deepcopy(stock)
    assert set_graph_conv(mine, 'matmul') == 1 and type(mine) is MatmulUnitGCN
    assert mine.state_dict().keys() == stock.state_dict().keys()
    x = torch.randn(3, cin, 7, 5)
    for inp in (x, x.to(memory_format=torch.channels_last)):
        a = stock(inp.clone().requires_grad_())
        xb = inp.clone().requires_grad_()
        b = mine(xb)
        assert b.shape == a.shape == (3, 8, 7, 5)
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())
        assert b.is_contiguous(memory_format=torch.channels_last)  # what the next conv gets
        g = torch.randn_like(a)
        stock.zero_grad()
        mine.zero_grad()
        a.backward(g)
        b.backward(g)
        ga, gb = _grads(stock), _grads(mine)
        assert ga.keys() == gb.keys() and len(ga) >= 3  # conv weight + bias, BN (+ PA / A)
        for n in ga:
            assert torch.allclose(ga[n], gb[n], atol=1e-4, rtol=1e-4), n
    if train:  # BN's running statistics were updated the same way
        assert torch.allclose(stock.bn.running_mean, mine.bn.running_mean, atol=1e-6)


def test_models_switch_in_place_both_ways():
    _, model = make_pruned('stgcn', 'structured')  # a masked model: the conv's weight is parametrized
    x = synthetic_skeletons(SHAPE, seed=1)
    ref = logits(model, x)
    n_units = sum(isinstance(m, unit_gcn) for m in model.modules())
    assert graph_conv_of(model) == 'stock'
    assert set_graph_conv(model, 'matmul') == n_units == 4
    assert graph_conv_of(model) == 'matmul'
    out = logits(model, x)
    # the masked weight is what is multiplied: the scores of the pruned model, not of its latents
    assert (out - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
    with using_graph_conv(model, 'stock'):
        assert graph_conv_of(model) == 'stock'
        assert torch.equal(logits(model, x), ref)
    assert graph_conv_of(model) == 'matmul'
    set_graph_conv(model, 'stock')
    assert torch.equal(logits(model, x), ref)


def test_models_without_unit_gcn_and_bad_kinds():
    _, ctr = make_pruned('ctrgcn', 'semi')
    assert set_graph_conv(ctr, 'matmul') == 0 and graph_conv_of(ctr) == 'none'
    with pytest.raises(ValueError, match=r"graph_conv='einsum'.*'stock', 'matmul'"):
        set_graph_conv(nn.Sequential(), 'einsum')


def test_counters_see_the_stock_graph():
    cfg = dict(type='RecognizerGCN', backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'),
                                                   base_channels=8, num_stages=4, inflate_stages=[3], down_stages=[3]),
               cls_head=dict(type='GCNHead', num_classes=5, in_channels=16))
    model = build_model(cfg).eval()
    x1 = synthetic_skeletons((1, ) + SHAPE[1:], seed=1)
    flops, pos = count_flops(model, x1), conv_positions(model, x1)
    set_graph_conv(model, 'matmul')
    assert count_flops(model, x1) == flops and 'einsum' in flops['by_operator']
    # a user's own FlopAnalyzer on the matmul formulation: the same total (bmm, not a broadcast matmul)
    fa = FlopAnalyzer(LogitsModel(model), (x1, ))
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    assert fa.total() == flops['total'] and fa.by_operator()['bmm'] == flops['by_operator']['einsum']
    assert conv_positions(model, x1) == pos and any(k.endswith('gcn.conv') for k in pos)
    assert graph_conv_of(model) == 'matmul'


def test_inference_keeps_the_aggregation_matrix_while_the_adjacency_is_unchanged():
    u = make_unit('importance', False).eval()
    set_graph_conv(u, 'matmul')
    x = torch.randn(2, 6, 4, 5)
    with torch.inference_mode():
        a = u(x)
        a2 = u.aggregation_matrix()
        assert u.aggregation_matrix() is a2  # kept
        with torch.no_grad():
            u.PA.mul_(2.0)  # an in-place change (version bump): recomputed
        b = u(x)
        assert u.aggregation_matrix() is not a2
    ref = copy.deepcopy(u)  # the copy carries no cached inference tensor, and computes the same
    assert '_a2_cache' not in ref.__dict__
    set_graph_conv(ref, 'stock')
    with torch.no_grad():
        assert torch.allclose(ref(x), b, atol=1e-5) and not torch.allclose(a, b, atol=1e-3)
    with torch.enable_grad():  # with autograd: never kept, gradients reach PA
        u.zero_grad()
        u(x).sum().backward()
        assert u.PA.grad is not None and u.PA.grad.abs().sum() > 0
        assert u.__dict__.get('_a2_cache') is None


def _activation_copies(mod, x):
    """Names of the copy operators (clone, copy_, _to_copy, contiguous's copies) a no-grad forward of ``mod`` on
    ``x`` dispatches whose output is at least as large as ``x`` (an activation, not the adjacency)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    aten = torch.ops.aten
    copies = {aten.clone.default, aten.copy_.default, aten._to_copy.default, aten.copy.default}
    seen = []

    class _Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in copies and isinstance(out, torch.Tensor) and out.numel() >= x.numel():
                seen.append(str(func))
            return out

    with torch.no_grad(), _Watch():
        mod(x)
    return seen


@pytest.mark.parametrize('with_res,cin', [(False, 6), (True, 8)])
def test_matmul_unit_copies_no_activation_in_channels_last(with_res, cin):
    """The GPU finding behind the formulation (a profile: layout copies around einsum were 37 % of a
    dense ST-GCN's kernel time at batch 64; with it none left, 2.1x faster in float16) guarded on the CPU: on a
    channels-last input — what the previous tcn hands on — the matmul unit dispatches no copy of an activation;
    MMAction2's einsum unit does (so this check can fail)."""
    stock = make_unit(None, with_res, cin=cin).eval()
    mine = copy.deepcopy(stock)
    set_graph_conv(mine, 'matmul')
    x = torch.randn(4, cin, 7, 5).to(memory_format=torch.channels_last)
    assert _activation_copies(stock, x)
    assert _activation_copies(mine, x) == []
    assert _activation_copies(mine, x) == []  # with the cached aggregation matrix too


def test_compiling_traces_the_stock_graph_and_eager_the_matmul_one():
    """Compiled, the stock einsum graph ran faster than the matmul products on the H200 (0.83x in
    float32 at batch 64): a compiled MatmulUnitGCN traces MMAction2's forward, with the same outputs; torch.export
    and eager keep the matmul products."""
    stock = make_unit('importance', True, cin=8).eval()
    mine = copy.deepcopy(stock)
    set_graph_conv(mine, 'matmul')
    graphs = []

    def record(gm, example_inputs):  # a dynamo backend that keeps the traced FX graph and runs it as is
        graphs.append({str(n.target) for n in gm.graph.nodes if n.op == 'call_function'})
        return gm.forward

    import torch._dynamo
    torch._dynamo.reset()
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        got = torch.compile(mine, backend=record)(x)
        assert torch.allclose(got, stock(x), atol=1e-5)
    ops = set().union(*graphs)
    assert any('einsum' in o for o in ops) and not any('bmm' in o for o in ops), ops
    ep = torch.export.export(mine, (x, ))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == 'call_function'}
    assert any('bmm' in t for t in targets) and not any('einsum' in t for t in targets), targets
    torch._dynamo.reset()
