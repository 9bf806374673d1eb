"""tools/export.py end to end on a tiny synthetic demo set: export a pruned checkpoint (in-process CLI), then
evaluate the exported config + model.pth with tools/test.py in a fresh process (MMAction2's registry, Runner
and checkpoint loader, weights-only)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from tests.tools._tools import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')




@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Small convs on 2 shared, busy cores run far faster single-threaded (OpenMP barriers under contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def demo(_one_thread, tmp_path_factory):
    """A tiny demo pickle, a config for it (narrow ST-GCN, structured masks) and a weights-only pruned checkpoint
    with frozen masks (no training: exactness of export does not depend on it)."""
    from mmengine.config import Config

    from mmsemiprune.datasets.demo import write_demo_dataset
    from mmsemiprune.export.exporter import build_model
    d = tmp_path_factory.mktemp('export_tool')
    pkl = str(d / 'demo.pkl')
    write_demo_dataset(pkl, 16, 8, 0, progress=False)
    cfg_path = d / 'tiny_export.py'
    cfg_path.write_text(
        f"_base_ = {osp.join(ROOT, 'configs/demo/stgcn_semiprune_demo.py')!r}\n"
        f"ann_file = {pkl!r}\n"
        "model = dict(backbone=dict(base_channels=8, num_stages=3, inflate_stages=[3], down_stages=[3]),\n"
        "             cls_head=dict(in_channels=16), prune_cfg=dict(mode='structured'))\n"
        "train_dataloader = dict(dataset=dict(ann_file=ann_file))\n"
        "val_dataloader = dict(dataset=dict(ann_file=ann_file))\n"
        "test_dataloader = dict(batch_size=8, dataset=dict(ann_file=ann_file))\n")
    cfg = Config.fromfile(str(cfg_path))
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    model.profile(torch.randn(1, 1, 2, 32, 25, 3))
    model.pruner.freeze()
    ckpt = d / 'tiny_export_pruned.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), str(ckpt))
    return dict(dir=d, cfg=str(cfg_path), ckpt=str(ckpt), model=model)


def test_export_cli_then_tools_test(demo, capsys):
    out = str(demo['dir'] / 'out')
    rc = load_tool('export').main([demo['cfg'], demo['ckpt'], out, '--onnx', '--num-check', '4'])
    printed = capsys.readouterr().out
    assert rc == 0
    assert 'params' in printed and 'MACs / clip' in printed and 'structural share' in printed
    assert 'OK' in printed and 'test data through the pipeline' in printed
    assert set(os.listdir(out)) >= {'model.pth', 'config.py', 'report.json', 'model.onnx'}
    rep = json.load(open(osp.join(out, 'report.json')))
    assert rep['params']['exported'] < rep['params']['dense']
    assert rep['exactness']['pytorch_max_abs_err'] <= 1e-4 and rep['exactness']['onnxruntime_max_abs_err'] <= 1e-4
    sd = torch.load(osp.join(out, 'model.pth'), weights_only=True)
    assert 'state_dict' in sd and not any(k.startswith('pruner.') or '_psi' in k for k in sd['state_dict'])
    from mmengine.config import Config
    assert Config.fromfile(osp.join(out, 'config.py')).model.graph_conv == 'matmul'  # the default

    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, osp.join(TOOLS, 'test.py'), osp.join(out, 'config.py'),
                        osp.join(out, 'model.pth'), '--work-dir', str(demo['dir'] / 'test_logs')],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert 'acc/top1' in log
    low = log.lower()
    assert 'missing keys' not in low and 'unexpected key' not in low and 'size mismatch' not in low, log[-3000:]


def test_export_cli_errors(demo, tmp_path, capsys):
    tool = load_tool('export')
    out = str(tmp_path / 'never')

    def error_of(argv):
        with pytest.raises(SystemExit) as e:
            tool.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith('error: ') and '\n' not in err  # one line, no traceback
        return err

    assert 'does not exist' in error_of([demo['cfg'], str(tmp_path / 'missing.pth'), out])
    dense = {k: v for k, v in demo['model'].state_dict().items() if '_psi' not in k and not k.startswith('pruner.')}
    torch.save(dict(state_dict=dense), str(tmp_path / 'dense.pth'))
    assert 'dense checkpoint' in error_of([demo['cfg'], str(tmp_path / 'dense.pth'), out])
    assert not osp.exists(out)


def test_export_cli_round_to(demo, tmp_path, capsys):
    """--round-to 4: every exported channel width is a multiple of 4 (or the full width), still exact, and
    tools/test.py's config/weights load; --round-to 0 is a one-line error. With --graph-conv stock the config
    runs MMAction2's own unit_gcn forward."""
    from mmengine.config import Config

    from mmsemiprune.export.exporter import build_compact
    from mmsemiprune.export.graph_conv import graph_conv_of
    tool = load_tool('export')
    out = str(tmp_path / 'r4')
    assert tool.main([demo['cfg'], demo['ckpt'], out, '--round-to', '4', '--num-check', '4',
                      '--graph-conv', 'stock']) == 0
    capsys.readouterr()
    rep = json.load(open(osp.join(out, 'report.json')))
    assert rep['exactness']['pytorch_max_abs_err'] <= 1e-4
    cfg = Config.fromfile(osp.join(out, 'config.py'))
    assert cfg.model.graph_conv == 'stock'
    model = build_compact(cfg.model, torch.load(osp.join(out, 'model.pth'), weights_only=True)['state_dict'])
    assert graph_conv_of(model) == 'stock'
    sd = torch.load(osp.join(out, 'model.pth'), weights_only=True)['state_dict']
    full = demo['model'].state_dict()
    bn = [k for k in sd if k.endswith('bn.running_mean')]
    assert bn and all(sd[k].numel() % 4 == 0 or sd[k].numel() == full[k].numel() for k in bn)
    assert any(sd[k].numel() < full[k].numel() for k in bn)  # channels were still removed
    with pytest.raises(SystemExit) as e:
        tool.main([demo['cfg'], demo['ckpt'], str(tmp_path / 'never'), '--round-to', '0'])
    assert e.value.code == 2 and '--round-to needs an integer >= 1' in capsys.readouterr().err
