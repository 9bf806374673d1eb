"""Export of pruned recognizers: exact (PyTorch and onnxruntime), truly smaller for channel-structured masks,
weights-only ``model.pth``, an exported config that rebuilds the compact model, clear errors for bad inputs."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmaction.models.utils.gcn_utils import unit_gcn
from mmengine.config import Config
from torch import nn

import mmsemiprune  # noqa: F401
from mmsemiprune.export import CompactRecognizerGCN, ExportError, export_pruned
from mmsemiprune.export.exporter import build_model, format_export_report, logits, run_onnx, synthetic_skeletons
from mmsemiprune.export.graph_conv import graph_conv_of

SMALL = dict(base_channels=8, num_stages=4, inflate_stages=[3], down_stages=[3])
NTU_STGCN = dict(layout='nturgb+d', mode='stgcn_spatial')
NTU = dict(layout='nturgb+d', mode='spatial')
BACKBONES = {
    'stgcn': dict(type='STGCN', graph_cfg=NTU_STGCN, **SMALL),
    'stgcnpp': dict(type='STGCN', graph_cfg=NTU, gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn', **SMALL),
    'aagcn': dict(type='AAGCN', graph_cfg=NTU, **SMALL),
    'ctrgcn': dict(type='CTRGCN', graph_cfg=NTU, **SMALL),
}
SHAPE = (4, 2, 16, 25, 3)  # N, M, T, V, C


def make_cfg(arch='stgcn', mode='structured', rate=0.8, num_classes=5):
    return Config(dict(default_scope='mmaction', model=dict(
        type='mmsemiprune.SemiPruneRecognizerGCN', backbone=dict(BACKBONES[arch]),
        cls_head=dict(type='GCNHead', num_classes=num_classes, in_channels=16),
        prune_cfg=dict(target_rate=rate, mode=mode))))


@torch.no_grad()
def make_pruned(arch='stgcn', mode='structured', rate=0.8, seed=0, freeze=True):
    """A pruned recognizer with realistic BN statistics and O(1) class scores; masks frozen from the random
    weights by ``pruner.freeze()`` (what the exactness of export depends on, not on training)."""
    cfg = make_cfg(arch, mode, rate)
    torch.manual_seed(seed)
    model = build_model(cfg.model).eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.3, 0.3)
    model.cls_head.fc.weight.normal_(0, 1.0)
    model.profile(torch.randn(1, 1, *SHAPE[1:]))
    if freeze:
        model.pruner.freeze()
    return cfg, model


def save_pruned(model, path):
    torch.save(dict(state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                    meta=dict(note='test')), str(path))
    return str(path)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Small convs on 2 shared, busy cores run far faster single-threaded (OpenMP barriers under contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TOL = 1e-4
# (backbone, mode): ST-GCN, ST-GCN++ and CTR-GCN have removable channel sets (channels physically removed); AAGCN
# with its spatial / temporal / channel attention has only fixed ones (baked, uncompressed, entry-wise zeros stored
# sparsely). Forced dead channels in every branch: tests/export/test_attention_backbones_export.py.
CASES = [('stgcn', 'structured'), ('stgcn', 'semi'), ('stgcnpp', 'structured'), ('aagcn', 'semi'),
         ('ctrgcn', 'semi')]
ONNX = ('stgcn', 'stgcnpp')
_CACHE = {}


def exported(tmp_path_factory, arch, mode):
    """Export once per case: (cfg, masked model, out dir, report, check inputs)."""
    key = (arch, mode)
    if key not in _CACHE:
        d = tmp_path_factory.mktemp(f'{arch}_{mode}')
        cfg, model = make_pruned(arch, mode)
        ckpt = save_pruned(model, d / 'x_pruned.pth')
        # onnxruntime for the backbones with channel sets; torch.export once (slow to trace)
        rep = export_pruned(cfg, ckpt, str(d / 'out'), onnx=arch in ONNX, torch_export=key == ('stgcn', 'structured'),
                            shape=SHAPE, inputs='synthetic', cfg_name=arch)
        _CACHE[key] = (cfg, model, str(d / 'out'), rep, synthetic_skeletons(SHAPE, seed=1))
    return _CACHE[key]


def load_exported(out):
    sd = torch.load(osp.join(out, 'model.pth'), weights_only=True)  # plain tensors only
    cfg = Config.fromfile(osp.join(out, 'config.py'))
    assert cfg.model.type == 'mmsemiprune.CompactRecognizerGCN' and 'prune_cfg' not in cfg.model
    model = build_model(cfg.model)
    model.load_state_dict(sd['state_dict'], strict=True)
    return model.eval(), sd['state_dict']


@pytest.mark.parametrize('arch,mode', CASES)
def test_export_is_exact_pytorch_and_onnxruntime(tmp_path_factory, arch, mode):
    cfg, masked, out, rep, x = exported(tmp_path_factory, arch, mode)
    assert set(os.listdir(out)) >= {'model.pth', 'config.py', 'report.json'}
    ex = rep['exactness']
    assert ex['ok'] and ex['pytorch_max_abs_err'] <= TOL
    # independently, on other clips: masked model vs the files on disk
    ref = logits(masked, x)
    assert ref.abs().max() > 0.1  # scores are not trivially ~0
    model, _ = load_exported(out)
    assert not hasattr(model, 'pruner')
    assert (logits(model, x) - ref).abs().max() <= TOL
    # ST-GCN(++) exports run the matmul graph convolution (export/graph_conv.py), the others have no unit_gcn
    assert graph_conv_of(model) == ('matmul' if arch in ('stgcn', 'stgcnpp') else 'none')
    if arch not in ONNX:
        return
    assert ex['onnxruntime_max_abs_err'] <= TOL
    import onnx  # traced from the stock graph convolution: one Einsum per unit_gcn, no MatMul for it
    ops = [n.op_type for n in onnx.load(osp.join(out, 'model.onnx')).graph.node]
    assert ops.count('Einsum') == sum(isinstance(m, unit_gcn) for m in model.modules()) > 0
    for b in (1, 3):  # dynamic batch axis
        o = run_onnx(osp.join(out, 'model.onnx'), x[:b])
        assert o.shape == ref[:b].shape
        assert (o - ref[:b]).abs().max() <= TOL


@pytest.mark.parametrize('arch', ['stgcn', 'stgcnpp'])
def test_structured_masks_shrink_shapes(tmp_path_factory, arch):
    cfg, masked, out, rep, x = exported(tmp_path_factory, arch, 'structured')
    model, sd = load_exported(out)
    dense = build_model(dict(Config.fromfile(osp.join(out, 'config.py')).model, compact_shapes=None))
    dshapes = {k: tuple(v.shape) for k, v in dense.state_dict().items()}
    narrower = [k for k, v in model.state_dict().items() if tuple(v.shape) != dshapes[k]]
    assert len(narrower) > 10
    for k in narrower:
        assert all(a <= b for a, b in zip(model.state_dict()[k].shape, dshapes[k]))
    if arch == 'stgcnpp':  # the MS-TCN concatenation loses channels too: the transform conv reads fewer inputs
        cat = [k for k in narrower if k.endswith('tcn.transform.2.weight')]
        assert any(model.state_dict()[k].shape[1] < dshapes[k][1] for k in cat), cat
    # modules' channel attributes follow the tensors
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert (m.out_channels, m.in_channels) == tuple(m.weight.shape[:2])
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.num_features == m.weight.shape[0] == m.running_mean.shape[0]
    p = rep['params']
    assert p['exported'] < p['dense'] and p['masked'] < p['dense']
    assert rep['flops']['exported'] < 0.8 * rep['flops']['dense']
    assert rep['structural']['share_realized'] > 0.3
    tr = rep['traffic']  # removed channels write fewer bytes, though fewer in proportion than the MACs fall
    assert tr['graph_conv'] == 'matmul' and tr['exported'] < tr['dense']
    assert 1.0 < tr['ratio_dense_over_exported'] < rep['flops']['ratio_dense_over_exported']
    assert 'memory traffic / clip' in format_export_report(rep)
    assert rep['files']['model_pth'] < rep['files']['dense_state_dict']


@pytest.mark.parametrize('arch', ['aagcn'])
def test_backbones_with_fixed_channel_sets_only_are_baked_uncompressed(tmp_path_factory, arch):
    cfg, masked, out, rep, x = exported(tmp_path_factory, arch, 'semi')
    assert rep['params']['exported'] == rep['params']['dense']
    assert rep['structural']['channel_sets'] > 0 and rep['structural']['share_realized'] == 0
    assert all(a == b for a, b in rep['structural']['channels'].values())
    assert rep['traffic']['exported'] == rep['traffic']['dense']  # nothing removed: the same activations
    sd = torch.load(osp.join(out, 'model.pth'), weights_only=True)['state_dict']
    assert any(isinstance(v, dict) and v.get('__sparse_csr__') for v in sd.values())  # zeros stored sparsely
    assert rep['files']['model_pth'] < rep['files']['dense_state_dict']


def test_compact_recognizer_resizes_on_load_without_shapes(tmp_path_factory):
    cfg, masked, out, rep, x = exported(tmp_path_factory, 'stgcn', 'structured')
    mcfg = dict(Config.fromfile(osp.join(out, 'config.py')).model)
    mcfg.pop('compact_shapes')
    model = build_model(mcfg)
    assert isinstance(model, CompactRecognizerGCN)
    sd = torch.load(osp.join(out, 'model.pth'), weights_only=True)['state_dict']
    model.load_state_dict(sd, strict=True)
    assert (logits(model.eval(), x) - logits(masked, x)).abs().max() <= TOL


def test_flops_counter_agrees_with_mmengine_on_dense(tmp_path_factory):
    rep = exported(tmp_path_factory, 'stgcn', 'semi')[3]
    fl = rep['flops']
    assert fl['conv_linear_dense_by_hooks'] == pytest.approx(fl['conv_linear_dense_by_mmengine'], rel=1e-9)
    assert fl['exported'] <= fl['dense'] and fl['masked'] < fl['dense']


def test_torch_export_program_is_exact(tmp_path_factory):
    cfg, masked, out, rep, x = exported(tmp_path_factory, 'stgcn', 'structured')
    assert rep['exactness']['torch_export_max_abs_err'] <= TOL
    ep = torch.export.load(osp.join(out, 'model.pt2'))
    with torch.no_grad():
        for b in (1, 3):  # dynamic batch dim
            assert (ep.module()(x[:b]) - logits(masked, x[:b])).abs().max() <= TOL


def test_synthetic_skeletons_look_like_skeletons():
    x = synthetic_skeletons((2, 2, 30, 25, 3), seed=0)
    assert x.shape == (2, 2, 30, 25, 3) and torch.isfinite(x).all()
    assert 0.2 < float(x.abs().max()) < 5.0  # metres around the body centre
    assert float((x[:, :, 1:] - x[:, :, :-1]).abs().mean()) < 0.05  # smooth in time


# -- bad inputs: one actionable message, nothing written ------------------------------------------------------
def _expect(tmp_path, cfg, ckpt, *phrases, **kw):
    out = tmp_path / 'never'
    with pytest.raises(ExportError) as e:
        export_pruned(cfg, str(ckpt), str(out), shape=SHAPE, inputs='synthetic', **kw)
    msg = str(e.value)
    for p in phrases:
        assert p in msg, msg
    assert not out.exists()
    return msg


def test_error_missing_checkpoint(tmp_path):
    _expect(tmp_path, make_cfg(), tmp_path / 'nope.pth', 'does not exist', '_pruned.pth')


def test_error_dense_checkpoint(tmp_path):
    cfg = make_cfg()
    dense = build_model({k: v for k, v in dict(cfg.model, type='RecognizerGCN').items() if k != 'prune_cfg'})
    torch.save(dict(state_dict=dense.state_dict()), str(tmp_path / 'dense.pth'))
    _expect(tmp_path, cfg, tmp_path / 'dense.pth', 'dense checkpoint', 'no pruning masks', '--load-from')


def test_error_other_architecture(tmp_path):
    cfg, model = make_pruned('stgcn', 'structured')
    ckpt = save_pruned(model, tmp_path / 'p.pth')
    other = make_cfg()
    other.model.backbone.base_channels = 16  # shape mismatch
    # the same rules and message as loading for training / testing (mmsemiprune.compat.check_state_dict)
    msg = _expect(tmp_path, other, ckpt, f'checkpoint {ckpt} does not fit this model (backbone STGCN)',
                  'tensor(s) have another shape', 'Nothing was loaded')
    assert 'checkpoint (' in msg
    _expect(tmp_path, make_cfg('stgcnpp'), ckpt, 'does not fit this model', 'backbone tensor(s) of the model are '
            'missing from the checkpoint', 'backbone tensor(s) the model lacks')


def test_error_incomplete_mask_state_and_other_head(tmp_path):
    cfg, model = make_pruned('stgcn', 'structured')
    sd = model.state_dict()
    ckpt = tmp_path / 'no_pruner.pth'
    torch.save(dict(state_dict={k: v for k, v in sd.items() if not k.startswith('pruner.')}), str(ckpt))
    _expect(tmp_path, cfg, ckpt, 'mask / pruner entries of the model are missing', 'e.g. pruner.')
    ckpt = tmp_path / 'no_head.pth'
    torch.save(dict(state_dict={k: v for k, v in sd.items() if not k.startswith('cls_head.')}), str(ckpt))
    _expect(tmp_path, cfg, ckpt, 'head tensor(s) are missing (e.g. cls_head.')


def test_error_masks_not_frozen(tmp_path):
    cfg, model = make_pruned('stgcn', 'semi', freeze=False)
    model.pruner.set_progress(0.5)
    ckpt = save_pruned(model, tmp_path / 'soft.pth')
    _expect(tmp_path, cfg, ckpt, 'not frozen', 'soft', 'end of training')


def test_error_already_exported_and_not_a_pruning_config(tmp_path_factory, tmp_path):
    cfg, masked, out, rep, x = exported(tmp_path_factory, 'stgcn', 'semi')
    _expect(tmp_path, cfg, osp.join(out, 'model.pth'), 'already an exported compact model', 'tools/test.py')
    _expect(tmp_path, Config.fromfile(osp.join(out, 'config.py')), osp.join(out, 'model.pth'), 'no pruning masks')


def test_full_checkpoint_needs_trust(tmp_path):
    cfg, model = make_pruned('stgcn', 'structured')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(seed=np.int64(0), hub=np.array([1.0]))),
               str(tmp_path / 'epoch_1.pth'))
    _expect(tmp_path, cfg, tmp_path / 'epoch_1.pth', '--trust-checkpoint', 'tools/export.py')
    rep = export_pruned(cfg, str(tmp_path / 'epoch_1.pth'), str(tmp_path / 'out'), shape=SHAPE, inputs='synthetic',
                        trust=True)
    assert rep['exactness']['ok']


@torch.no_grad()
def test_classifier_constant_channels_are_folded_into_its_bias(tmp_path):
    """The last stage's residual stream feeds the classifier (a fixed-consumer set): a channel none of whose
    producers survives is a constant whatever the input, so export folds W[:, c]·κ_c into the classifier's bias
    and removes it from producers, norms, consumers and the classifier's columns: fewer MACs, exact scores. Without
    example clips (``compact_state_dict(model)``) the channels stay."""
    from mmsemiprune.core.topology import make_consistent, zero_channels
    from mmsemiprune.export.exporter import compact_state_dict
    cfg, model = make_pruned('stgcn', 'structured', rate=0.5)
    pr = model.pruner
    head_set = next(cs for cs in pr.channel_sets if cs.head)
    assert head_set.fixed_consumer and head_set.head == 'cls_head.fc'
    masks = {k: m.mask.clone() for k, m, _ in pr.items()}
    dead = torch.zeros(head_set.size, dtype=torch.bool)
    dead[[1, 4, 5, 9]] = True  # every producer row of these channels pruned (tcn convs, the strided residual)
    for s in head_set.producers:
        masks[s.key()] = zero_channels(masks[s.key()], s, head_set.size, dead)
    make_consistent(masks, pr.channel_sets)  # zeroes what the stage's blocks read of them
    for k, m, _ in pr.items():
        m.freeze(masks[k])
    x = synthetic_skeletons(SHAPE, seed=3)
    kept, info = compact_state_dict(model, example=x)
    old, info_old = compact_state_dict(model)
    n = head_set.size
    assert info_old['channels'][head_set.name] == [n, n]  # no example: the classifier keeps reading them
    k = info['channels'][head_set.name][1]
    assert k <= n - 4 and kept['cls_head.fc.weight'].shape == (5, k)
    assert not torch.equal(kept['cls_head.fc.bias'], old['cls_head.fc.bias'])  # the constants went into the bias
    ckpt = save_pruned(model, tmp_path / 'x_pruned.pth')
    rep = export_pruned(cfg, ckpt, str(tmp_path / 'out'), shape=SHAPE, inputs='synthetic', cfg_name='stgcn')
    assert rep['exactness']['ok'] and rep['exactness']['pytorch_max_abs_err'] <= TOL
    assert rep['structural']['channels'][head_set.name][1] == k
    exported, _ = load_exported(str(tmp_path / 'out'))
    assert exported.cls_head.in_channels == k  # MMAction2's GCNHead checks its input width
    assert (logits(exported, x) - logits(model, x)).abs().max() <= TOL
