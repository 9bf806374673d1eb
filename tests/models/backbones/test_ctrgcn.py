"""Tests for the CTR-GCN backbone (mmsemiprune.models.backbones.ctrgcn).

State-dict compatibility is checked against a key -> shape table that is
rebuilt here, independently of the implementation, from the module tree of
MMAction2's ``projects/ctrgcn`` (``ctrgcn.py`` + ``ctrgcn_utils.py``), and
numerically against a functional re-statement of its forward pass.
"""
import importlib

import pytest
import torch
import torch.nn.functional as F

import mmsemiprune.models.backbones  # noqa: F401  (registers CTRGCN)
from mmaction.registry import MODELS
from mmengine.registry import DefaultScope
from mmsemiprune.models.backbones import ctrgcn as ctrgcn_mod
from mmsemiprune.models.backbones.ctrgcn import CTRGCN

NTU = dict(layout='nturgb+d', mode='spatial')
BACKBONE_PARAMS_NTU = 1_431_252  # notes §4.1, 60-class head excluded
HEAD_PARAMS_60 = 256 * 60 + 60


# ---------------------------------------------------------------------------
# Upstream layout, rebuilt from projects/ctrgcn (no import of the model code)
# ---------------------------------------------------------------------------
def _upstream_blocks(in_channels=3, base=64, num_stages=10, inflate=(5, 8),
                     down=(5, 8)):
    """(cin, cout, stride, residual) per ``net.i`` as in upstream CTRGCN."""
    blocks = [(in_channels, base, 1, False)]
    c = base
    for i in range(2, num_stages + 1):
        cout = c * (1 + (i in inflate))
        blocks.append((c, cout, 1 + (i in down), True))
        c = cout
    return blocks


def upstream_state_dict_spec(in_channels=3, V=25, K=3, M=2, kernel_size=5,
                             dilations=(1, 2)):
    """Ordered {key: (shape, kind)} of upstream ``CTRGCN.state_dict()``.

    kind is 'param', 'buffer' or 'count' (BN ``num_batches_tracked``).
    """
    spec = {}

    def conv(p, cout, cin, kt=1):
        spec[f'{p}.weight'] = ((cout, cin, kt, 1), 'param')
        spec[f'{p}.bias'] = ((cout, ), 'param')

    def bn(p, c):
        spec[f'{p}.weight'] = ((c, ), 'param')
        spec[f'{p}.bias'] = ((c, ), 'param')
        spec[f'{p}.running_mean'] = ((c, ), 'buffer')
        spec[f'{p}.running_var'] = ((c, ), 'buffer')
        spec[f'{p}.num_batches_tracked'] = ((), 'count')

    spec['A'] = ((K, V, V), 'buffer')  # CTRGCN.register_buffer('A', ...)
    bn('data_bn', M * in_channels * V)
    for i, (cin, cout, stride, residual) in enumerate(
            _upstream_blocks(in_channels)):
        g = f'net.{i}.gcn1'  # unit_ctrgcn
        rel = 8 if cin <= 16 else cin // 8
        for s in range(K):  # convs: ModuleList of CTRGC
            conv(f'{g}.convs.{s}.conv1', rel, cin)
            conv(f'{g}.convs.{s}.conv2', rel, cin)
            conv(f'{g}.convs.{s}.conv3', cout, cin)
            conv(f'{g}.convs.{s}.conv4', cout, rel)
        if cin != cout:  # down = Sequential(Conv2d, BN2d)
            conv(f'{g}.down.0', cout, cin)
            bn(f'{g}.down.1', cout)
        spec[f'{g}.A'] = ((K, V, V), 'param')
        spec[f'{g}.alpha'] = ((1, ), 'param')
        bn(f'{g}.bn', cout)
        t = f'net.{i}.tcn1'  # MSTCN(cout, cout, residual=False)
        nb = len(dilations) + 2
        mid = cout // nb
        rem = cout - mid * (nb - 1)
        for b in range(len(dilations)):  # [Conv, BN, ReLU, unit_tcn]
            conv(f'{t}.branches.{b}.0', mid, cout)
            bn(f'{t}.branches.{b}.1', mid)
            conv(f'{t}.branches.{b}.3.conv', mid, mid, kernel_size)
            bn(f'{t}.branches.{b}.3.bn', mid)
        b = len(dilations)  # [Conv, BN, ReLU, MaxPool, BN]
        conv(f'{t}.branches.{b}.0', mid, cout)
        bn(f'{t}.branches.{b}.1', mid)
        bn(f'{t}.branches.{b}.4', mid)
        conv(f'{t}.branches.{b + 1}.0', rem, cout)  # [Conv(stride), BN]
        bn(f'{t}.branches.{b + 1}.1', rem)
        if residual and not (cin == cout and stride == 1):
            conv(f'net.{i}.residual.conv', cout, cin)  # unit_tcn, k=1
            bn(f'net.{i}.residual.bn', cout)
    return spec


def random_state_dict(spec, A, seed=0):
    """Random upstream-layout weights (positive running_var, A from graph)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, (shape, kind) in spec.items():
        if kind == 'count':
            sd[k] = torch.tensor(7)
        elif k.endswith('running_var') or k.endswith('bn.weight'):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k == 'A' or k.endswith('gcn1.A'):
            sd[k] = A + 0.05 * torch.rand(shape, generator=g)
        else:
            sd[k] = 0.2 * torch.randn(shape, generator=g)
    return sd


def reference_forward(sd, x, dilations=(1, 2), kernel_size=5):
    """Eval-mode forward of upstream CTRGCN written functionally on ``sd``.

    x (N, M, T, V, C) -> (N, M, 256, T / 4, V).
    """

    def bn(p, y):
        return F.batch_norm(y, sd[f'{p}.running_mean'],
                            sd[f'{p}.running_var'], sd[f'{p}.weight'],
                            sd[f'{p}.bias'], False, 0., 1e-5)

    def conv(p, y, stride=1, dilation=1):
        w = sd[f'{p}.weight']
        kt = w.shape[2]
        pad = (kt + (kt - 1) * (dilation - 1) - 1) // 2
        return F.conv2d(y, w, sd[f'{p}.bias'], (stride, 1), (pad, 0),
                        (dilation, 1))

    N, M, T, V, C = x.shape
    y = x.permute(0, 1, 3, 4, 2).reshape(N, M * V * C, T)
    y = bn('data_bn', y).view(N, M, V, C, T).permute(0, 1, 3, 4, 2)
    y = y.reshape(N * M, C, T, V)
    for i, (cin, cout, stride, residual) in enumerate(_upstream_blocks(C)):
        g, t = f'net.{i}.gcn1', f'net.{i}.tcn1'
        # unit_ctrgcn
        z = 0
        for s in range(sd[f'{g}.A'].shape[0]):
            c = f'{g}.convs.{s}'
            x1 = conv(f'{c}.conv1', y).mean(-2)
            x2 = conv(f'{c}.conv2', y).mean(-2)
            x3 = conv(f'{c}.conv3', y)
            rel = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2))
            adj = conv(f'{c}.conv4', rel) * sd[f'{g}.alpha'] + \
                sd[f'{g}.A'][s][None, None]
            z = z + torch.einsum('ncuv,nctu->nctv', adj, x3)
        down = bn(f'{g}.down.1', conv(f'{g}.down.0', y)) if cin != cout \
            else y
        h = F.relu(bn(f'{g}.bn', z) + down)
        # MSTCN (residual=False) + act
        outs = []
        for b, d in enumerate(dilations):
            p = f'{t}.branches.{b}'
            u = F.relu(bn(f'{p}.1', conv(f'{p}.0', h)))
            outs.append(bn(f'{p}.3.bn', conv(f'{p}.3.conv', u, stride, d)))
        p = f'{t}.branches.{len(dilations)}'
        u = F.relu(bn(f'{p}.1', conv(f'{p}.0', h)))
        u = F.max_pool2d(u, (3, 1), (stride, 1), (1, 0))
        outs.append(bn(f'{p}.4', u))
        p = f'{t}.branches.{len(dilations) + 1}'
        outs.append(bn(f'{p}.1', conv(f'{p}.0', h, stride)))
        h = F.relu(torch.cat(outs, 1))
        # block residual
        if not residual:
            res = 0
        elif cin == cout and stride == 1:
            res = y
        else:
            res = bn(f'net.{i}.residual.bn',
                     conv(f'net.{i}.residual.conv', y, stride))
        y = F.relu(h + res)
    return y.reshape((N, M) + y.shape[1:])


# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = CTRGCN(graph_cfg=NTU)
    m.init_weights()
    return m


def test_forward_shape(model):
    x = torch.randn(1, 2, 32, 25, 3)
    y = model(x)
    assert y.shape == (1, 2, 256, 8, 25)
    assert torch.isfinite(y).all()


def test_forward_other_graph_and_kwargs():
    """coco (V=17) graph, one person, custom TCN kwargs."""
    m = CTRGCN(
        graph_cfg=dict(layout='coco', mode='spatial'),
        num_person=1,
        num_stages=4,
        inflate_stages=[3],
        down_stages=[3],
        kernel_size=3,
        dilations=[1, 2, 3],
        tcn_dropout=0.1)
    assert m.data_bn.num_features == 1 * 17 * 3
    assert m.out_channels == 128
    assert m(torch.randn(2, 1, 16, 17, 3)).shape == (2, 1, 128, 8, 17)
    with pytest.raises(TypeError):
        CTRGCN(graph_cfg=NTU, not_an_arg=1)


def test_backward(model):
    model.train()
    model.zero_grad()
    x = torch.randn(1, 2, 32, 25, 3)
    model(x).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    # alpha starts at 0 and gets gradient; the refinement convs only start
    # learning once alpha != 0 (same as upstream)
    gcn = model.net[1].gcn1
    assert gcn.alpha.grad.abs().item() > 0
    assert gcn.convs[0].conv3.weight.grad.abs().sum() > 0
    assert gcn.convs[0].conv4.weight.grad.abs().sum() == 0
    model.zero_grad()


def test_param_count_and_layers(model):
    n = sum(p.numel() for p in model.parameters())
    assert n == BACKBONE_PARAMS_NTU
    spec = upstream_state_dict_spec()
    n_spec = sum(
        torch.Size(s).numel() for s, kind in spec.values() if kind == 'param')
    assert n_spec == BACKBONE_PARAMS_NTU
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(type(m) is torch.nn.Conv2d for m in convs)
    one = [m for m in convs if m.kernel_size == (1, 1)]
    five = [m for m in convs if m.kernel_size == (5, 1)]
    assert (len(one), len(five), len(convs)) == (165, 20, 185)
    assert sum(m.weight.numel() for m in one) == 1_226_640
    assert sum(m.weight.numel() for m in five) == 163_840
    bns = [m for m in model.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert {type(m) for m in bns} == {torch.nn.BatchNorm1d,
                                      torch.nn.BatchNorm2d}
    assert model.data_bn.num_features == 150
    # init: unit bn starts at 1e-6 (upstream override), alpha at 0
    assert torch.allclose(model.net[0].gcn1.bn.weight,
                          torch.full((64, ), 1e-6))
    assert model.net[0].gcn1.alpha.item() == 0


def test_state_dict_keys_match_upstream(model):
    spec = upstream_state_dict_spec()
    sd = model.state_dict()
    assert set(sd) == set(spec), (set(sd) ^ set(spec))
    for k, (shape, _) in spec.items():
        assert tuple(sd[k].shape) == shape, k
    assert len(spec) == 821


def test_load_upstream_state_dict_and_numerics():
    m = CTRGCN(graph_cfg=NTU).eval()
    spec = upstream_state_dict_spec()
    sd = random_state_dict(spec, m.A)
    result = m.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 2, 16, 25, 3)
    with torch.no_grad():
        ours = m(x)
        ref = reference_forward(sd, x)
    assert ours.shape == ref.shape == (2, 2, 256, 4, 25)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # round trip
    m2 = CTRGCN(graph_cfg=NTU)
    m2.load_state_dict(m.state_dict(), strict=True)


def test_ctrgc_formula():
    """CTRGC with alpha = 0 is a plain graph conv on conv3 features."""
    gc = ctrgcn_mod.CTRGC(4, 6)
    assert gc.rel_channels == 8
    assert ctrgcn_mod.CTRGC(64, 6).rel_channels == 8
    assert ctrgcn_mod.CTRGC(256, 6).rel_channels == 32
    x = torch.randn(2, 4, 5, 7)
    A = torch.rand(7, 7)
    expected = torch.einsum('nctu,uv->nctv', gc.conv3(x), A)
    torch.testing.assert_close(gc(x, A, alpha=0.), expected)
    # refinement is channel-wise: conv4 yields one (V, V) per out channel
    x1, x2 = gc.conv1(x).mean(2), gc.conv2(x).mean(2)
    topo = gc.conv4(torch.tanh(x1[..., None] - x2[..., None, :]))
    assert topo.shape == (2, 6, 7, 7)
    expected = torch.einsum('nctu,ncuv->nctv', gc.conv3(x), 0.5 * topo + A)
    torch.testing.assert_close(gc(x, A, alpha=0.5), expected)
    gc(x, A, alpha=0.5).sum().backward()
    assert gc.conv1.weight.grad.abs().sum() > 0
    assert gc.conv4.weight.grad.abs().sum() > 0


def test_recognizer_gcn_builds_through_registry():
    assert MODELS.get('CTRGCN') is CTRGCN
    cfg = dict(
        type='RecognizerGCN',
        backbone=dict(type='CTRGCN', graph_cfg=NTU),
        cls_head=dict(type='GCNHead', num_classes=60, in_channels=256))
    # RecognizerGCN builds its ActionDataPreprocessor in the default scope
    with DefaultScope.overwrite_default_scope('mmaction'):
        rec = MODELS.build(cfg)
    assert isinstance(rec.backbone, CTRGCN)
    n = sum(p.numel() for p in rec.parameters())
    assert n == BACKBONE_PARAMS_NTU + HEAD_PARAMS_60 == 1_446_672
    rec.init_weights()
    rec.eval()
    inputs = torch.randn(1, 1, 2, 32, 25, 3)  # N, clips, M, T, V, C
    with torch.no_grad():
        feats = rec(inputs, mode='tensor')
        scores = rec(inputs, mode='tensor', stage='head')
    assert feats.shape == (1, 2, 256, 8, 25)
    assert scores.shape == (1, 60)


def test_reregistration_is_safe():
    """Re-importing the module must not raise a duplicate-key error."""
    orig = MODELS.get('CTRGCN')
    try:
        ctrgcn_mod._register()
        reloaded = importlib.reload(ctrgcn_mod)
        assert MODELS.get('CTRGCN') is reloaded.CTRGCN
    finally:
        MODELS.register_module(name='CTRGCN', module=orig, force=True)
    assert MODELS.get('CTRGCN') is CTRGCN
