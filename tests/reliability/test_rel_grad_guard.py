"""NaN guard on gradients: a NaN/inf gradient of a finite loss stops training before the optimizer step, with
one message naming the parameter, the iteration and the last good checkpoint (tools/train.py: one ``error:``
line, exit code 2). A NaN loss is still reported as a loss (its gradients are NaN too)."""
import os.path as osp

import torch


def test_nan_gradient_names_the_parameter(write_config, tmp_path, run_tool_inproc):
    cfg = write_config('rel_nan_grad', epochs=2, extra="""
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook'), dict(type='RelNaNGradAtIter', iter=3)]
""")
    work = tmp_path / 'w'
    code, err = run_tool_inproc('train', cfg, '--work-dir', work)
    assert code == 2, err[-3000:]
    (line, ) = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert line == ('error: non-finite gradient at iteration 3 (epoch 2): 1 parameter(s) have NaN/inf gradients '
                    '(cls_head.fc.weight); the loss was finite and the weights were not updated. Last good '
                    f'checkpoint: {work}/epoch_1.pth. Lower the learning rate, add gradient clipping '
                    '(optim_wrapper=dict(clip_grad=dict(max_norm=20))), check the data for NaN/inf, then resume with '
                    '--resume.')
    assert not osp.exists(work / 'epoch_2.pth')


def test_nan_gradient_guard_off(write_config, tmp_path, run_tool_inproc):
    cfg = write_config('rel_nan_grad_off', epochs=1, extra="""
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook', check_finite=False), dict(type='RelNaNGradAtIter', iter=1)]
""")
    work = tmp_path / 'w'
    code, err = run_tool_inproc('train', cfg, '--work-dir', work)
    assert code == 0, err[-3000:]  # unguarded, the NaN reaches the weights
    sd = torch.load(work / 'rel_nan_grad_off_pruned.pth', weights_only=True)['state_dict']
    assert torch.isnan(sd['cls_head.fc.weight']).any()
