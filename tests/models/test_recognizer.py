"""SemiPruneRecognizerGCN on the four supported GCN backbones (tiny widths, in process, no Runner).

For ST-GCN, ST-GCN++ (``gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn'``), AAGCN and CTR-GCN:
forward, backward (gradients reach the latent weights and the gate logits), a short training run whose
schedule is driven exactly as MMEngine's Runner drives it (``iter`` / ``max_iters`` in the MessageHub),
the achieved rate after freezing (±1 pp of the target), and loading a dense ``RecognizerGCN`` state dict
(only mask / pruner entries may be missing).
"""
import uuid

import pytest
import torch

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmaction.utils import register_all_modules
from mmengine.logging import MessageHub
from mmsemiprune.models import SemiPruneRecognizerGCN

pytestmark = pytest.mark.usefixtures('one_thread')
register_all_modules(init_default_scope=True)

NTU = dict(layout='nturgb+d', mode='spatial')
TINY = dict(base_channels=16, num_stages=4, inflate_stages=[3], down_stages=[3])
BACKBONES = {
    'stgcn': dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), **TINY),
    'stgcnpp': dict(type='STGCN', graph_cfg=NTU, gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn', **TINY),
    'aagcn': dict(type='AAGCN', graph_cfg=NTU, **TINY),
    'ctrgcn': dict(type='CTRGCN', graph_cfg=NTU, **TINY),
}
NUM_CLASSES = 4


def build(name, mode='semi', rate=0.8, **prune):
    torch.manual_seed(0)
    return MODELS.build(dict(type='mmsemiprune.SemiPruneRecognizerGCN', backbone=BACKBONES[name],
                             cls_head=dict(type='GCNHead', num_classes=NUM_CLASSES, in_channels=32),
                             prune_cfg=dict(target_rate=rate, mode=mode, **prune)))


def batch(n=4, T=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, T, 25, 3, generator=g)  # (N, clips, M, T, V, C)
    return x, [ActionDataSample().set_gt_labels(i % NUM_CLASSES) for i in range(n)]


def fresh_hub():
    return MessageHub.get_instance(f'sp-test-{uuid.uuid4().hex}')  # becomes the current instance


def total(losses):
    return sum(v for k, v in losses.items() if 'loss' in k)


def short_run(model, iters=10, lr=0.05):
    """Train like the Runner does: the MessageHub holds iter / max_iters, the model reads them in loss()."""
    hub = fresh_hub()
    hub.update_info('max_iters', iters)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, ds = batch()
    log = []
    model.train()
    for it in range(iters):
        hub.update_info('iter', it)
        losses = model.loss(x, ds)
        opt.zero_grad()
        total(losses).backward()
        opt.step()
        log.append({k: float(v.detach()) for k, v in losses.items()})
    return log


def kept_rate(model):
    n = kept = 0
    for key, m, w in model.pruner.items():
        n += w.numel()
        kept += int(m.mask.sum())
    return 1 - kept / n


@pytest.mark.parametrize('name', list(BACKBONES))
def test_forward_backward_reach_latents_and_gates(name):
    model = build(name)
    assert isinstance(model, SemiPruneRecognizerGCN)
    assert len(model.pruner.masks) > 0
    hub = fresh_hub()
    hub.update_info('max_iters', 10)
    hub.update_info('iter', 5)  # mid-run: soft masks at a positive rate, annealing
    x, ds = batch()
    losses = model.loss(x, ds)
    assert {'loss_cls', 'loss_prune', 'prune_rate', 'prune_tau'} <= set(losses)
    assert losses['loss_prune'].requires_grad
    assert float(losses['prune_rate']) == pytest.approx(0.8)  # past the warm-up (0.3)
    total(losses).backward()
    for key, m, w in model.pruner.items():
        assert w.grad is not None and w.grad.abs().sum() > 0, f'no gradient reaches the latent {key}'
        assert m.gate.logit.grad is not None and m.gate.logit.grad.abs().sum() > 0, f'no gradient on the gate of {key}'
    # inference paths of MMAction2 still work on the masked model
    model.eval()
    with torch.no_grad():
        feats = model(x, ds, mode='tensor')
        preds = model(x, ds, mode='predict')
    assert feats.shape[0] == 4 and len(preds) == 4
    assert preds[0].pred_scores.item.shape == (NUM_CLASSES, )


@pytest.mark.parametrize('name', list(BACKBONES))
def test_short_run_freezes_at_target(name):
    model = build(name, rate=0.8)
    log = short_run(model, iters=10)
    sched = model.pruner.schedule
    assert model.pruner.frozen and float(model.pruner.progress) == 1.0
    for m in model.pruner.masks:  # binary masks, used exactly
        assert m.mask.dtype == torch.bool and bool(m.frozen)
    assert abs(kept_rate(model) - 0.8) <= 0.01
    assert abs(model.pruner.report()['rate_params'] - 0.8) <= 0.01
    # the temperature followed the iterations until the freeze, the rate ramped up to the target
    for it, rec in enumerate(log[:-1]):
        p = it / 10
        if sched.frozen(p):
            break
        assert rec['prune_tau'] == pytest.approx(sched.tau(p), rel=1e-5)
        assert rec['prune_rate'] == pytest.approx(sched.rate(p, 0.8), rel=1e-5, abs=1e-6)
    taus = [r['prune_tau'] for r in log]
    assert taus[0] > taus[-1] and all(a >= b for a, b in zip(taus, taus[1:]))
    assert log[-1]['loss_prune'] == 0.0  # frozen: no regulariser
    # after the freeze the forward uses exactly W * mask
    key, m, w = model.pruner.items()[0]
    mod = dict(model.named_modules())[key.rsplit('.', 1)[0]]
    pname = key.rsplit('.', 1)[1]
    eff = getattr(mod, 'masked_weight')() if pname == 'weight' else getattr(mod, pname)
    assert torch.equal(eff, w * m.mask)


@pytest.mark.parametrize('mode', ['semi', 'structured', 'unstructured'])
def test_modes_reach_target_on_stgcn(mode):
    model = build('stgcn', mode=mode, rate=0.7)
    short_run(model, iters=8)
    assert model.pruner.frozen
    assert abs(kept_rate(model) - 0.7) <= 0.01
    if mode == 'structured':  # whole channels only: an entry is kept iff its output row and its input
        for key, m, w in model.pruner.items():  # column (emptied by the channel consistency) are kept
            if key.endswith('tcn.conv.weight'):
                k = m.mask
                rows, cols = k.flatten(1).any(1), k.transpose(0, 1).flatten(1).any(1)
                assert torch.equal(k, (rows[:, None] & cols[None, :])[..., None, None].expand_as(k)), key
    gates = [p for n, p in model.named_parameters() if n.endswith('gate.logit')]
    assert bool(gates) == (mode == 'semi')  # only the semi mode learns a gate


@pytest.mark.parametrize('name', list(BACKBONES))
def test_dense_checkpoint_loads_into_pruned_model(name, tmp_path):
    """A stock RecognizerGCN checkpoint loads: no weight key missing, only *_psi* / pruner.* entries."""
    from mmengine.runner import load_checkpoint
    torch.manual_seed(1)
    dense = MODELS.build(dict(type='RecognizerGCN', backbone=BACKBONES[name],
                              cls_head=dict(type='GCNHead', num_classes=NUM_CLASSES, in_channels=32)))
    dense_sd = dense.state_dict()
    path = tmp_path / 'dense.pth'
    torch.save(dict(state_dict=dense_sd, meta=dict()), path)
    model = build(name)
    res = model.load_state_dict(dense_sd, strict=False)
    assert res.unexpected_keys == []
    assert res.missing_keys, 'the pruned model must have mask / pruner entries'
    not_masky = [k for k in res.missing_keys if '_psi' not in k and not k.startswith('pruner.')]
    assert not_masky == [], f'weights missing from a dense checkpoint: {not_masky[:5]}'
    # the same through MMEngine's loader (what load_from / --load-from use), into a fresh model
    model = build(name)
    load_checkpoint(model, str(path), map_location='cpu', strict=False)
    sd = model.state_dict()
    for k, v in dense_sd.items():
        assert torch.equal(sd[k], v), f'{k} was not loaded'
    for key, m, w in model.pruner.items():
        assert torch.equal(w, dense_sd[key]), key  # the latent IS the stock parameter
    x, ds = batch()
    hub = fresh_hub()
    hub.update_info('max_iters', 10)
    hub.update_info('iter', 0)
    total(model.loss(x, ds)).backward()  # trains from the loaded weights


def test_prune_cfg_is_required_and_checked():
    with pytest.raises(ValueError, match='target_rate'):
        MODELS.build(dict(type='mmsemiprune.SemiPruneRecognizerGCN', backbone=BACKBONES['stgcn'],
                          cls_head=dict(type='GCNHead', num_classes=4, in_channels=32)))
    with pytest.raises(ValueError, match='unknown prune_cfg key'):
        build('stgcn', target=0.5)
    with pytest.raises(ValueError, match='mode'):
        build('stgcn', mode='blocky')
