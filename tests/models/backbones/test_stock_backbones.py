"""MMAction2 1.1.0 stock GCN backbones build and forward as the notes say.

Parameter counts: notes/mmaction2-integration.md §4.1, re-measured here
(backbone only; the 60-class ``GCNHead.fc`` adds 256 * 60 + 60 = 15,420).
Input (1, 2, 32, 25, 3) -> output (1, 2, 256, 8, 25).
"""
import pytest
import torch

import mmaction.models  # noqa: F401  (registers STGCN / AAGCN)
from mmaction.registry import MODELS

HEAD_PARAMS_60 = 15_420
STGCN_GRAPH = dict(layout='nturgb+d', mode='stgcn_spatial')
NTU = dict(layout='nturgb+d', mode='spatial')

CASES = {
    # name: (cfg, backbone params, total incl. 60-class head)
    'stgcn': (dict(type='STGCN', graph_cfg=STGCN_GRAPH), 3_083_412,
              3_098_832),
    'stgcnpp': (dict(
        type='STGCN',
        gcn_adaptive='init',
        gcn_with_res=True,
        tcn_type='mstcn',
        graph_cfg=NTU), 1_387_724, 1_403_144),
    'aagcn': (dict(type='AAGCN', graph_cfg=NTU), 3_766_248, 3_781_668),
}


@pytest.mark.parametrize('name', list(CASES))
def test_stock_backbone(name):
    cfg, n_backbone, n_total = CASES[name]
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == n_backbone
    assert n + HEAD_PARAMS_60 == n_total
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 2, 32, 25, 3))
    assert y.shape == (1, 2, 256, 8, 25)
    assert torch.isfinite(y).all()
