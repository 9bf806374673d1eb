"""bench/bench_export.py: the device switch and the runtimes it adds (issue "pruning at GPU speed"). Timings are
not asserted (benchmarks print ratios; tests check behaviour)."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _bench():
    spec = importlib.util.spec_from_file_location('_mmsp_bench_export', osp.join(ROOT, 'bench', 'bench_export.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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

