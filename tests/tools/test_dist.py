"""Distributed training: ``tools/dist_train.sh CONFIG 2`` (torchrun, gloo on CPU) on the tiny demo data.

A test-only hook (``SPTestDumpStateHook``, tests/conftest.py) saves each rank's model state at
``after_train``. Both ranks must end with identical frozen masks, weights and BatchNorm statistics, and
the weights-only ``*_pruned.pth`` (written by rank 0 only) must hold the same masks.
"""
import os.path as osp
import shutil
import socket

import pytest
import torch
import torch.distributed as dist

DIST_CFG = '''_base_ = {base!r}
ann_file = {ann!r}
train_dataloader = dict(batch_size=2, dataset=dict(ann_file=ann_file))   # 16 clips / 2 ranks / 2 = 4 iterations
val_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
test_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))
train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=1, by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None))
randomness = dict(seed=0, deterministic=True)
custom_imports = dict(imports=['mmsemiprune', 'sp_test_hooks'], allow_failed_imports=False)
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook'), dict(type='SPTestDumpStateHook', out_dir={out!r})]
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason='torch.distributed with the gloo backend is not available in this torch build')
@pytest.mark.skipif(shutil.which('bash') is None, reason='tools/dist_train.sh needs bash')
def test_dist_train_two_ranks_same_masks(tmp_path, tiny_pkl, run_tool, sp):
    import subprocess
    import sys
    work = tmp_path / 'work'
    work.mkdir()
    cfg = tmp_path / 'demo_dist.py'
    cfg.write_text(DIST_CFG.format(base=sp.DEMO_CFG, ann=tiny_pkl, out=str(work)))
    env = run_tool.env()
    env.update(PYTHON=sys.executable, PORT=str(free_port()))
    proc = subprocess.run(['bash', osp.join(sp.REPO, 'tools', 'dist_train.sh'), str(cfg), '2', '--work-dir', str(work)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=400,
                          cwd=run_tool.cwd)
    proc.output = proc.stdout
    assert proc.returncode == 0, sp.tail(proc)
    lines = [ln for ln in proc.output.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) == 4 and all('loss_prune:' in ln for ln in lines), sp.tail(proc)  # 4 iterations per rank
    r0 = torch.load(work / 'state_rank0.pth', weights_only=True)
    r1 = torch.load(work / 'state_rank1.pth', weights_only=True)
    assert r0.keys() == r1.keys()
    masks = [k for k in r0 if k.endswith('_psi.mask')]
    assert masks
    for k in masks:
        assert bool(r0[k.replace('.mask', '.frozen')]) and bool(r1[k.replace('.mask', '.frozen')])
        assert torch.equal(r0[k], r1[k]), f'{k}: ranks froze different masks'
    for k, v in r0.items():  # weights (DDP), BN statistics (SyncBuffersHook + the hook's re-estimation)
        if v.is_floating_point():
            assert torch.allclose(v, r1[k], atol=1e-6), f'{k} differs between ranks'
    n = sum(r0[k].numel() for k in masks)
    assert abs(1 - sum(int(r0[k].sum()) for k in masks) / n - 0.8) <= 0.01
    # the weights-only export, written once by rank 0, holds the same masks
    exp = torch.load(work / 'demo_dist_pruned.pth', weights_only=True)['state_dict']
    for k in masks:
        assert torch.equal(exp[k], r0[k])
    assert proc.output.count('weights-only pruned checkpoint') == 1
