"""bench/bench_export.py: the device switch and the runtimes it adds. Timings are
not asserted (benchmarks print ratios; tests check behaviour)."""
import os.path as osp

import pytest
import torch

from tests.bench.scripts import ROOT, load_script


def _bench():
    return load_script('bench_export')


def test_defaults_per_device():
    b = _bench()
    a = b.parse_args([])
    assert a.device == 'cpu' and a.batches is None and a.runtimes is None  # resolved in main: cpu 1/16, cuda 1/64
    a = b.parse_args(['--device', 'cuda', '--runtimes', 'torch', 'compile', '--channels-last'])
    assert a.runtimes == ['torch', 'compile'] and a.channels_last


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message of a machine without CUDA')
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(SystemExit, match='--device cpu'):
        _bench().main(['--device', 'cuda'])


def test_torch_runner_returns_scores_of_the_model():
    """The eager runner gives the model's scores (the compile runner is checked against it inside the bench)."""
    b = _bench()
    torch.manual_seed(0)

    class Rec(torch.nn.Module):  # what LogitsModel reads: a backbone and a cls_head
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Flatten()
            self.cls_head = torch.nn.Linear(12, 3)

    rec = Rec()
    x = torch.randn(2, 3, 4)
    run = b.make_runner('torch', rec, None, 'rec', 1, x)
    assert torch.equal(torch.as_tensor(run(x)), rec.cls_head(x.flatten(1)).detach())



def test_half_is_refused_on_the_cpu_and_skips_onnxruntime():
    """--half (float16 inference) is a GPU measurement: a clear error on the CPU; the ort runner says it is not
    timed (the ONNX export is float32) instead of timing float32 next to float16; the compile runner takes a mode."""
    b = _bench()
    with pytest.raises(SystemExit, match='drop --half'):
        b.main(['--half'])
    assert b.make_runner('ort', torch.nn.Identity(), None, 'x', 1, torch.zeros(1), half=True) is None
    a = b.parse_args(['--compile-mode', 'max-autotune'])
    assert a.compile_mode == 'max-autotune'
    with pytest.raises(SystemExit):
        b.parse_args(['--compile-mode', 'fastest'])
    m = b.on_device(torch.nn.Linear(2, 2), 'cpu', half=True)
    assert m.weight.dtype == torch.float16


def test_summary_leaves_out_a_runtime_that_was_not_timed():
    """On a CUDA machine whose onnxruntime lacks the CUDA provider, 'ort' is skipped: the table must still print
    (it raised KeyError ('ort', 1) on the first H200 run, losing every exported timing)."""
    b = _bench()
    args = b.parse_args(['--runtimes', 'torch', 'ort', '--batches', '1', '16'])
    v = dict(name='structured@0.9', mode='structured', rate=0.9, achieved=0.9, structural_realized=0.8,
             params_exported=25, flops_ratio=3.5, traffic_ratio=1.8, twin=None)
    semi = dict(v, name='semi@0.9', mode='semi', flops_ratio=1.5, traffic_ratio=1.2)
    res = {('torch', bb): dict(median={'dense': 0.010 * bb, 'structured@0.9': 0.004 * bb, 'semi@0.9': 0.008 * bb})
           for bb in (1, 16)}
    lines, cols = b.summary(args, res, [v, semi], dict(params=100))
    assert cols == [('torch', 1), ('torch', 16)]
    text = '\n'.join(lines)
    assert 'ort b' not in text and 'torch b16' in text
    assert abs(v['speedup_torch_b16'] - 2.5) < 1e-9 and abs(v['ms_torch_b1'] - 4.0) < 1e-9
    assert 'semi ST-GCN rate 0.9, batch 16: speedup torch 1.25x' in text
    assert 'traffic x' in lines[3] and '1.80' in lines[4] and '1.20' in lines[5]


def test_traffic_column_counts_each_formulation():
    """bytes_written: count_traffic (tests/export/test_traffic.py) in the formulation the bench times; MMAction2's
    einsum graph convolution writes its layout copies on top of what the matmul formulation writes."""
    from mmengine.config import Config
    from mmsemiprune.export.exporter import build_model, synthetic_skeletons
    b = _bench()
    b.quiet_mmengine()
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/stgcn_semiprune_demo.py'))
    dense = build_model(b.dense_cfg(cfg.model))
    dense.init_weights()
    clip = synthetic_skeletons((1, 2, 16, 25, 3), seed=0)
    stock, matmul = b.bytes_written(dense, clip, 'stock'), b.bytes_written(dense, clip, 'matmul')
    assert matmul < stock  # einsum's layout copies
    two = b.bytes_written(dense, clip.repeat(2, 1, 1, 1, 1), 'matmul')
    assert 1.95 * matmul < two < 2 * matmul  # activations scale with the batch; the adjacency, weights' work do not


def test_inductor_freezing_compiles_the_same_scores_and_needs_the_compile_runtime():
    """--inductor-freezing (weights as constants: conv + BatchNorm folded) applies to the compile runtime only, gives
    the eager scores, and leaves the global inductor config as it was (it is patched around each call)."""
    import torch._inductor.config as inductor_config
    b = _bench()
    with pytest.raises(SystemExit, match='compile runtime only'):
        b.main(['--inductor-freezing', '--runtimes', 'torch'])
    torch.manual_seed(0)

    class Rec(torch.nn.Module):  # a conv + BatchNorm backbone: what freezing folds
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, (9, 1), padding=(4, 0)),
                                                torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            self.cls_head = torch.nn.Linear(8, 4)

    rec = Rec().eval()
    with torch.no_grad():
        rec.backbone[1].running_mean.uniform_(-1, 1)
        rec.backbone[1].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 20, 5)
    with torch.inference_mode():
        ref = rec.cls_head(rec.backbone(x))
    run = b.make_runner('compile', rec, None, 'rec', 1, x, freezing=True)
    for _ in range(2):  # the second call runs what the first compiled
        got = torch.as_tensor(run(x))
        assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert inductor_config.freezing is False


def test_kernel_table_profiles_dense_and_each_exported_model(capsys):
    """--kernel-table N: after the timing, where an eager call's time goes for dense and every exported model (the
    profile behind the 'where batch 64 goes' numbers of docs/speed.md), also in the JSON output."""
    b = _bench()
    out = b.main(['--modes', 'structured', '--rates', '0.9', '--reps', '1', '--runtimes', 'torch', '--batches', '1',
                  '--frames', '8', '--no-train-bench', '--kernel-table', '3'])
    busy = out['profiled_ms_per_call']
    assert set(busy) == {'dense', 'structured@0.9'} and all(v > 0 for v in busy.values()), busy
    text = capsys.readouterr()
    assert '### structured@0.9, eager, batch 1' in text.out + text.err


def test_compiled_models_are_not_capped_by_the_recompile_limit():
    """Every timed model shares LogitsModel.forward: past dynamo's default limit of 8 graphs the rest ran eager
    silently (the first 6-model GPU run). The bench raises the limit to what it compiles, and never lowers it."""
    import torch._dynamo.config as dcfg
    b = _bench()
    name = 'recompile_limit' if hasattr(dcfg, 'recompile_limit') else 'cache_size_limit'
    old = getattr(dcfg, name)
    try:
        assert b.allow_recompiles(old + 20) == old + 20 == getattr(dcfg, name)
        assert b.allow_recompiles(2) == old + 20  # not lowered
    finally:
        setattr(dcfg, name, old)
