"""bench/bench_train.py: refuses CUDA clearly where there is none (its counts are asserted in
tests/core/test_step_cost.py; timings are never asserted)."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message of a machine without CUDA')
def test_bench_train_cuda_without_gpu_is_a_clear_error():
    spec = importlib.util.spec_from_file_location('_mmsp_bench_train', osp.join(ROOT, 'bench', 'bench_train.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit, match='--device cpu'):
        mod.main(['--device', 'cuda'])
