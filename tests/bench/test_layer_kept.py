"""bench/layer_kept.py: per-layer kept fractions read from finished runs' stored masks."""
import os

import pytest
import torch

from tests.bench.scripts import load_script

lk = load_script('layer_kept')


def _run(root, label, fold, masks):
    d = root / 'sbu' / 'stgcn' / f'fold{fold}' / 'seed0' / f'{label}_r0.9'
    os.makedirs(d)
    sd = {f'backbone.{k}_psi.mask': v for k, v in masks.items()}
    sd['backbone.other.weight'] = torch.ones(3)
    torch.save(dict(state_dict=sd), d / 'config_pruned.pth')


def test_table_averages_over_runs_in_model_order(tmp_path, capsys):
    a = torch.zeros(10, dtype=torch.bool)
    a[:2] = True  # 20 % kept
    b = torch.ones(4, 5, dtype=torch.bool)  # 100 %
    _run(tmp_path, 'semi', 1, {'l1.weight': a, 'l2.weight': b})
    a2 = a.clone()
    a2[:4] = True  # 40 %
    _run(tmp_path, 'semi', 2, {'l1.weight': a2, 'l2.weight': ~b})  # 0 %
    assert lk.main([str(tmp_path), '--dataset', 'sbu', '--rate', '0.9', '--labels', 'semi', 'magnitude']) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith('| l') or ln.startswith('| all')]
    assert rows == ['| l1.weight | 10 | 30.0 | – |', '| l2.weight | 20 | 50.0 | – |',
                    '| all prunable | 30 | 43.3 | – |']  # (22/30 + 4/30) / 2
    assert 'semi (2)' in out and 'magnitude (0)' in out


def test_no_runs_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match='no finished runs'):
        lk.main([str(tmp_path), '--dataset', 'sbu', '--rate', '0.9', '--labels', 'semi'])
    with pytest.raises(SystemExit, match='runs dir'):
        lk.main([str(tmp_path / 'nope'), '--dataset', 'sbu', '--rate', '0.9', '--labels', 'semi'])
