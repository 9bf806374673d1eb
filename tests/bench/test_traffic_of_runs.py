"""bench/traffic_of_runs.py: MACs and memory traffic of finished leaderboard runs, recounted from their files."""
import json

import pytest

from tests.bench.scripts import load_script
from tests.export.test_compact_export import SHAPE, make_pruned, save_pruned


def _script():
    return load_script('traffic_of_runs')


def _fake_run(root, method, rate, seed, top1, macs=None):
    """A run folder as the leaderboard leaves it: result.json, the config dump, config_pruned.pth."""
    run = root / 'demo' / 'stgcn' / 'fold1' / f'seed{seed}' / f'{method}_r{rate}'
    run.mkdir(parents=True)
    cfg, model = make_pruned('stgcn', method, rate, seed=seed)
    cfg.dump(str(run / 'config.py'))
    save_pruned(model, run / 'config_pruned.pth')
    res = dict(top1=top1, macs_input_shape='x'.join(map(str, (1, ) + SHAPE[1:])))
    if macs is not None:
        res['macs_exported'] = macs
    (run / 'result.json').write_text(json.dumps(res))
    return run


def test_recounts_each_method_and_checks_the_recorded_macs(tmp_path, capsys):
    s = _script()
    _fake_run(tmp_path, 'structured', 0.8, 0, 0.5)
    _fake_run(tmp_path, 'structured', 0.8, 1, 0.7)
    _fake_run(tmp_path, 'unstructured', 0.8, 0, 0.9)
    (tmp_path / 'demo' / 'stgcn' / 'fold1' / 'dense').mkdir()  # a dense run folder: not a pruned run, skipped
    assert len(s.find_runs(str(tmp_path))) == 3
    assert len(s.find_runs(str(tmp_path), methods=['structured'], seeds=[1])) == 1
    rows = s.main([str(tmp_path), '--json', str(tmp_path / 'all.json')])
    st, un = rows[('demo', 'stgcn', 'structured', 0.8)], rows[('demo', 'stgcn', 'unstructured', 0.8)]
    assert len(st) == 2 and len(un) == 1
    for c in st:  # channels physically removed: fewer MACs and fewer bytes, the bytes less so
        assert 1 < c['traffic_dense'] / c['traffic_exported'] < c['macs_dense'] / c['macs_exported']
    assert un[0]['traffic_exported'] == pytest.approx(un[0]['traffic_dense'], rel=0.05)  # entry-wise: ~no channel
    out = capsys.readouterr().out
    assert '| demo | stgcn | structured | 0.8 | 2 | 60.00 |' in out
    assert len(json.load(open(tmp_path / 'all.json'))) == 3

    _fake_run(tmp_path, 'semi', 0.8, 0, 0.9, macs=1.0)  # recorded MACs of another model
    with pytest.raises(SystemExit, match='differ from the'):
        s.main([str(tmp_path), '--methods', 'semi'])
    with pytest.raises(SystemExit, match='no finished pruned run'):
        s.main([str(tmp_path), '--methods', 'magnitude'])
