"""Bad checkpoints and safe loading.

- another architecture / width / depth / prune targets: one CheckpointMismatchError before any tensor is
  copied (MMEngine's non-strict load would only log it and leave the model half-loaded); a dense stock
  ``RecognizerGCN`` checkpoint of the same architecture loads (only mask buffers missing);
- truncated / empty / garbage files: one CheckpointError naming the file;
- a full training checkpoint outside the trusted folders is refused with the way to trust it; it loads
  with trust (``--trust-checkpoint``, ``MMSEMIPRUNE_TRUSTED_DIRS``, the run's own work dir);
- weights_only is never disabled globally.
"""
import inspect
import logging
import os
import os.path as osp
import pickle

import pytest
import torch
from conftest import REPO, TINY_BACKBONE, build_model, run_tool
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import load_checkpoint

from mmsemiprune import compat
from mmsemiprune.compat import (CheckpointError, CheckpointMismatchError, UntrustedCheckpointError,
                                load_checkpoint_file, strict_head_loading, trust_path)

CTRGCN = dict(type='CTRGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'), base_channels=8, num_stages=2,
              inflate_stages=[2], down_stages=[2])


def _save(model, path, full=False):
    ckpt = dict(state_dict=model.state_dict(), meta=dict(epoch=1, iter=2))
    if full:  # what MMEngine's CheckpointHook writes: a message hub with HistoryBuffers (needs unpickling)
        hub = MessageHub('rel_full_ckpt')
        hub.update_scalar('train/loss', 1.0)
        ckpt['message_hub'] = hub.state_dict()
    torch.save(ckpt, path)
    return str(path)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, snap):
    return all(torch.equal(v, snap[k]) for k, v in model.state_dict().items())


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp('relckpt')
    torch.manual_seed(1)
    out = dict(
        dense=_save(build_model(plain=True), d / 'dense_stgcn.pth'),
        ctrgcn=_save(build_model(backbone=CTRGCN, plain=True), d / 'ctrgcn.pth'),
        wide=_save(build_model(backbone=dict(TINY_BACKBONE, base_channels=16), head_in=32, plain=True),
                   d / 'wide.pth'),
        deep=_save(build_model(backbone=dict(TINY_BACKBONE, num_stages=3), plain=True), d / 'deep.pth'),
        classes60=_save(build_model(num_classes=60, plain=True), d / 'classes60.pth'),
        adj=_save(build_model(targets=dict(adjacency=True)), d / 'pruned_adjacency.pth'),
        pruned=_save(build_model(), d / 'pruned.pth'),
    )
    untrusted = tmp_path_factory.mktemp('downloads')
    out['full'] = _save(build_model(), untrusted / 'epoch_1.pth', full=True)
    return out


def test_dense_stock_checkpoint_of_same_architecture_loads(ckpts):
    model = build_model()
    load_checkpoint(model, ckpts['dense'], map_location='cpu')
    dense = torch.load(ckpts['dense'], weights_only=True)['state_dict']
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in dense.items())  # every stock tensor loaded
    assert not set(own) - set(dense) - {k for k in own if '_psi.' in k or k.startswith('pruner.')}
    assert all(bool(m.mask.all()) and not bool(m.frozen) for m in model.pruner.masks)


@pytest.mark.parametrize('which, words', [
    ('ctrgcn', ['5 of its 5 prunable weights and', 'backbone tensor(s) of the model are missing',
                'e.g. backbone.gcn.0.gcn.PA', 'the checkpoint has', 'backbone.net.0.']),
    ('wide', ['tensor(s) have another shape', 'checkpoint (16,) vs model (8,)']),
    ('deep', ['the checkpoint has', 'backbone tensor(s) the model lacks', 'backbone.gcn.2.']),
])
def test_other_architecture_is_refused_and_nothing_is_loaded(ckpts, which, words):
    model = build_model()
    snap = _snapshot(model)
    with pytest.raises(CheckpointMismatchError) as ei:
        load_checkpoint(model, ckpts[which], map_location='cpu')  # MMEngine's non-strict path
    msg = str(ei.value)
    assert msg.startswith(f'checkpoint {ckpts[which]} does not fit this model (backbone STGCN): ')
    for w in words:
        assert w in msg, msg
    assert msg.endswith('use the config it was trained with, or a checkpoint of this architecture. '
                        'Nothing was loaded.')
    assert _unchanged(model, snap)  # nothing half-loaded
    with pytest.raises(CheckpointMismatchError):  # torch's own load_state_dict is guarded too
        model.load_state_dict(torch.load(ckpts[which], weights_only=True)['state_dict'], strict=False)
    assert _unchanged(model, snap)


def test_pruned_checkpoint_with_other_prune_targets_is_refused(ckpts):
    model = build_model()  # adjacency not pruned: the checkpoint's PA masks would be silently dropped
    snap = _snapshot(model)
    with pytest.raises(CheckpointMismatchError, match=r'pruned checkpoint whose masks cover other tensors than '
                       r'this prune_cfg prunes \(masked only in the checkpoint: backbone.gcn.0.gcn.PA.*'
                       r'use the prune_cfg.targets / groups the checkpoint was trained with'):
        load_checkpoint(model, ckpts['adj'], map_location='cpu')
    assert _unchanged(model, snap)
    load_checkpoint(model, ckpts['pruned'], map_location='cpu')  # same targets: fine


def test_head_of_another_shape(ckpts):
    """Fine-tuning on another label set (training): head skipped with a warning; testing: an error."""
    from mmengine.logging import MMLogger
    model = build_model()
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_checkpoint(model, ckpts['classes60'], map_location='cpu')
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    assert (f"checkpoint {ckpts['classes60']}: the classifier head has another shape (cls_head.fc.weight: "
            'checkpoint (60, 16) vs model (8, 16)') in text
    assert 'it is NOT loaded and keeps its initialisation (expected when fine-tuning on another label set)' in text
    dense = torch.load(ckpts['classes60'], weights_only=True)['state_dict']
    assert torch.equal(model.state_dict()['backbone.gcn.0.gcn.conv.weight'], dense['backbone.gcn.0.gcn.conv.weight'])
    strict_head_loading()
    model = build_model()
    snap = _snapshot(model)
    with pytest.raises(CheckpointMismatchError, match=r'cls_head.fc.weight: checkpoint \(60, 16\) vs model \(8, 16\)'):
        load_checkpoint(model, ckpts['classes60'], map_location='cpu')
    assert _unchanged(model, snap)


@pytest.mark.parametrize('content, words', [
    (b'', 'the file is empty (0 bytes)'),
    (b'frame,label\n1,2\n', 'is truncated, corrupted or not a PyTorch checkpoint'),
    ('half', 'is truncated, corrupted or not a PyTorch checkpoint'),
    ('tail', 'failed finding central directory'),
])
def test_truncated_or_garbage_file(ckpts, tmp_path, content, words):
    data = open(ckpts['pruned'], 'rb').read()
    if content == 'half':
        content = data[:len(data) // 2]
    elif content == 'tail':
        content = data[:-20]
    bad = tmp_path / 'broken.pth'
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint_file(str(bad))
    msg = str(ei.value)
    assert msg.startswith(f'cannot read checkpoint {bad}: ') and words in msg
    assert 'Re-download it' in msg and len(msg) < 600
    with pytest.raises(CheckpointError):  # same through MMEngine (our loader is its local-file loader)
        load_checkpoint(build_model(), str(bad))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match='checkpoint /nonexistent/x.pth not found; check the path'):
        load_checkpoint_file('/nonexistent/x.pth')


def test_untrusted_full_checkpoint_is_refused_then_trusted(ckpts, tmp_path, monkeypatch):
    full = ckpts['full']
    with pytest.raises(UntrustedCheckpointError) as ei:
        load_checkpoint_file(full)
    msg = str(ei.value)
    assert msg.startswith(f'{full} is a full MMEngine training checkpoint')
    assert 'so it was not loaded' in msg
    assert '--trust-checkpoint' in msg and 'MMSEMIPRUNE_TRUSTED_DIRS' in msg and '*_pruned.pth' in msg
    assert isinstance(ei.value, pickle.UnpicklingError)  # still what torch-level callers expect
    # a folder that merely shares the prefix is not trusted
    trust_path(osp.dirname(full) + 'x')
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint_file(full)
    monkeypatch.setenv('MMSEMIPRUNE_TRUSTED_DIRS', os.pathsep.join(['/nonexistent', osp.dirname(full)]))
    assert 'message_hub' in load_checkpoint_file(full)
    monkeypatch.delenv('MMSEMIPRUNE_TRUSTED_DIRS')
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint_file(full)
    trust_path(full)  # what --trust-checkpoint does
    assert 'message_hub' in load_checkpoint_file(full)


def test_weights_only_is_never_disabled_globally(ckpts):
    default = inspect.signature(torch.load).parameters['weights_only'].default
    assert torch.load.__module__ == 'torch.serialization' and default is None  # torch's own, untouched
    trust_path(ckpts['full'])
    load_checkpoint_file(ckpts['full'])  # a trusted full unpickle ...
    for var in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'):
        assert var not in os.environ
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(ckpts['full'])  # ... leaves torch's default (weights_only) in force
    allowed = [str(g) for g in torch.serialization.get_safe_globals()]  # torch pre-registers DTensor types
    assert not [g for g in allowed if 'mmengine' in g or 'numpy' in g or 'getattr' in g], allowed
    src = ''.join(open(osp.join(dp, f)).read() for dp, _, fs in os.walk(osp.join(REPO, 'mmsemiprune'))
                  for f in fs if f.endswith('.py'))
    for bad in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', 'add_safe_globals', 'torch.load = '):
        assert bad not in src
    assert compat.is_trusted(ckpts['full'])


@pytest.mark.slow
def test_tools_report_checkpoint_errors(write_config, ckpts, tmp_path, run_tool_inproc):
    cfg = write_config('rel_ckpt_tools', epochs=1)
    # the real command line once: one line, exit 2, no traceback
    code, out, err = run_tool('test', cfg, ckpts['ctrgcn'], '--work-dir', tmp_path / 'w0')
    assert code == 2 and 'Traceback' not in out + err, err[-2000:]
    (line, ) = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert line.startswith(f"error: checkpoint {ckpts['ctrgcn']} does not fit this model (backbone STGCN): ")
    assert line.endswith('Nothing was loaded.')
    # the others in-process (same cli())
    trunc = tmp_path / 'trunc.pth'
    trunc.write_bytes(open(ckpts['pruned'], 'rb').read()[:3000])
    code, err = run_tool_inproc('test', write_config('rel_ckpt_t1', epochs=1), trunc, '--work-dir', tmp_path / 'w1')
    assert code == 2 and f'error: cannot read checkpoint {trunc}: the file (3000 bytes) is truncated' in err, err
    code, err = run_tool_inproc('test', write_config('rel_ckpt_t2', epochs=1), ckpts['full'], '--work-dir',
                                tmp_path / 'w2')
    assert code == 2 and f"error: {ckpts['full']} is a full MMEngine training checkpoint" in err, err
    assert 'pass --trust-checkpoint to tools/test.py' in err
    code, err = run_tool_inproc('test', write_config('rel_ckpt_t3', epochs=1), ckpts['classes60'], '--work-dir',
                                tmp_path / 'w3')
    assert code == 2 and 'cls_head.fc.weight: checkpoint (60, 16) vs model (8, 16)' in err, err
    code, err = run_tool_inproc('train', write_config('rel_ckpt_t4', epochs=1), '--work-dir', tmp_path / 'w4',
                                '--resume', ckpts['pruned'])
    assert code == 2 and (f"error: cannot resume from checkpoint {ckpts['pruned']}: it is a weights-only file"
                          in err), err
    assert 'use --load-from instead' in err
    code, err = run_tool_inproc('test', write_config('rel_ckpt_t5', epochs=1), '/nonexistent/e.pth')
    assert code == 2 and "error: checkpoint '/nonexistent/e.pth' does not exist" in err
