"""bench/bench_train.py: refuses CUDA clearly where there is none (its counts are asserted in
tests/core/test_step_cost.py; timings are never asserted)."""
import pytest
import torch

from tests.bench.scripts import load_script


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message of a machine without CUDA')
def test_bench_train_cuda_without_gpu_is_a_clear_error():
    mod = load_script('bench_train')
    with pytest.raises(SystemExit, match='--device cpu'):
        mod.main(['--device', 'cuda'])


def test_ramp_walks_the_soft_step_through_the_warm_up(monkeypatch, capsys):
    """--ramp: the soft step's iteration advances by one per round from progress 0.1 of a 1,000-step run (the rate
    moves at every step), and the header says so; without it the soft step stays at progress 0.5."""
    mod = load_script('bench_train', 'bench_train2')
    from mmsemiprune.core.pruner import SemiPruner
    seen = []
    orig = SemiPruner.set_progress
    monkeypatch.setattr(SemiPruner, 'set_progress', lambda self, p: (seen.append(round(p, 4)), orig(self, p))[1])
    argv = ['--device', 'cpu', '--models', 'stgcn', '--batch', '1', '--frames', '4', '--reps', '2', '--warmup', '1',
            '--no-profile']
    mod.main(argv + ['--ramp'])
    assert 'warm-up ramp (--ramp)' in capsys.readouterr().out
    soft = [p for p in seen if p < 0.9]  # (the frozen copy runs at progress 0.999)
    assert soft == [0.1, 0.101, 0.102], seen
    seen.clear()
    mod.main(argv)
    assert [p for p in seen if p < 0.9] == [0.5, 0.5, 0.5], seen
