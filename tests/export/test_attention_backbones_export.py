"""Export of pruned CTR-GCN and AAGCN with dead channels forced into every channel set that can lose one (every
temporal branch's part of a concatenation, the CTR-GC relation channels, the gcn outputs, the block streams):
the channels go physically, the scores equal the masked model's in PyTorch, onnxruntime and torch.export, and the
exported ``config.py`` builds the compact model through MMAction2's registry."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmsemiprune.core.topology import make_consistent, zero_channels
from mmsemiprune.export import export_pruned
from mmsemiprune.export.exporter import build_model, logits, synthetic_skeletons
from test_compact_export import BACKBONES, SHAPE, TOL, load_exported, save_pruned

VARIANTS = {'ctrgcn': BACKBONES['ctrgcn'], 'aagcn_agcn': dict(BACKBONES['aagcn'], gcn_attention=False),
            'aagcn': BACKBONES['aagcn']}


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def doomed(cs):
    """(C,) bool: the channels forced dead in a set: the last channel of every part (each temporal branch) or,
    without parts, the last one and channel 1."""
    dead = torch.zeros(cs.size, dtype=torch.bool)
    parts = cs.parts()
    for o, n in parts or [(0, cs.size)]:
        dead[o + n - 1] = True
    if not parts and cs.size > 2:
        dead[1] = True
    return dead


@torch.no_grad()
def forced_model(arch):
    """A recognizer (attention role on, so that block inputs are removable) whose frozen masks kill
    :func:`doomed` channels of every removable set through their writers, made consistent."""
    cfg = Config(dict(default_scope='mmaction', model=dict(
        type='mmsemiprune.SemiPruneRecognizerGCN', backbone=dict(VARIANTS[arch]),
        cls_head=dict(type='GCNHead', num_classes=5, in_channels=16),
        prune_cfg=dict(target_rate=0.3, mode='semi', targets=dict(attention=True)))))
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.3, 0.3)
    model.cls_head.fc.weight.normal_(0, 1.0)
    model.profile(torch.randn(1, 1, *SHAPE[1:]))
    pr = model.pruner
    pr.freeze()
    masks = {k: m.mask.clone() for k, m, _ in pr.items()}
    forced = {}
    for cs in pr.channel_sets:
        if cs.fixed_consumer or cs.fixed_producer:
            continue
        forced[cs.name] = dead = doomed(cs)
        for s in cs.producers:
            if s.key() in masks and not s.gate:
                masks[s.key()] = zero_channels(masks[s.key()], s, cs.size, dead)
    make_consistent(masks, pr.channel_sets)
    for k, m, _ in pr.items():
        m.freeze(masks[k])
    return cfg, model, forced


_CACHE = {}


def exported(tmp_path_factory, arch):
    if arch not in _CACHE:
        d = tmp_path_factory.mktemp(arch)
        cfg, model, forced = forced_model(arch)
        ckpt = save_pruned(model, d / 'x_pruned.pth')
        rep = export_pruned(cfg, ckpt, str(d / 'out'), onnx=True, torch_export=True, shape=SHAPE, inputs='synthetic',
                            cfg_name=arch)
        _CACHE[arch] = (model, forced, str(d / 'out'), rep)
    return _CACHE[arch]


@pytest.mark.parametrize('arch', list(VARIANTS))
def test_forced_dead_channels_export_exactly(tmp_path_factory, arch):
    model, forced, out, rep = exported(tmp_path_factory, arch)
    ex = rep['exactness']
    assert ex['ok'] and ex['pytorch_max_abs_err'] <= TOL
    assert ex['onnxruntime_max_abs_err'] <= TOL and ex['torch_export_max_abs_err'] <= TOL
    compact, _ = load_exported(out)  # config.py through MMAction2's registry, model.pth loaded strictly
    x = synthetic_skeletons(SHAPE, seed=5)
    ref = logits(model, x)
    assert ref.abs().max() > 0.1 and (logits(compact, x) - ref).abs().max() <= TOL
    ch = rep['structural']['channels']
    if arch == 'aagcn':  # its attention reads every gcn output channel: every set is fixed, nothing removed
        assert not forced and all(a == b for a, b in ch.values())
        assert rep['params']['exported'] == rep['params']['dense']
        return
    assert forced and all(ch[n][1] <= ch[n][0] - int(d.sum()) for n, d in forced.items())
    assert rep['params']['exported'] < rep['params']['dense'] and rep['flops']['exported'] < rep['flops']['dense']


def test_ctrgcn_every_branch_and_reduction_shrinks(tmp_path_factory):
    """Each temporal branch loses its forced channel (its own conv narrower), each CTR-GC's conv1 / conv2 rows
    and conv4 columns lose a relation channel, and conv4 rows (the refined topologies) go with the gcn output."""
    model, forced, out, rep = exported(tmp_path_factory, 'ctrgcn')
    compact = torch.load(osp.join(out, 'model.pth'), weights_only=True)['state_dict']
    dense = build_model(dict(Config.fromfile(osp.join(out, 'config.py')).model, compact_shapes=None)).state_dict()

    def shape(sd, k):
        v = sd[k]
        return tuple(v['shape']) if isinstance(v, dict) else tuple(v.shape)

    blocks = 4
    for i in range(blocks):
        b = f'backbone.net.{i}'
        if i < 2:  # the last two blocks' outputs feed the classifier (fixed); the first two shrink
            for j, conv in enumerate(('3.conv', '3.conv', '0', '0')):
                k = f'{b}.tcn1.branches.{j}.{conv}.weight'
                assert shape(compact, k)[0] < shape(dense, k)[0], k
        for k in range(3):
            c = f'{b}.gcn1.convs.{k}'
            assert shape(compact, f'{c}.conv1.weight')[0] < shape(dense, f'{c}.conv1.weight')[0]
            assert shape(compact, f'{c}.conv4.weight')[1] == shape(compact, f'{c}.conv1.weight')[0]
            assert shape(compact, f'{c}.conv4.weight')[0] == shape(compact, f'{c}.conv3.weight')[0]
    assert len([n for n in forced if n.startswith('br')]) == 2 * blocks
