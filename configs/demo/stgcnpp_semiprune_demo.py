# Demo: a narrow ST-GCN++ (MMAction2's STGCN with gcn_adaptive='init', gcn_with_res=True,
# tcn_type='mstcn'; channels 32-32-32-64-64-64) on the synthetic NTU-25 data, semi-structured pruning at
# rate 0.8; data, schedule and hooks of stgcn_semiprune_demo.py.
#   python tools/train.py configs/demo/stgcnpp_semiprune_demo.py
_base_ = './stgcn_semiprune_demo.py'

model = dict(
    backbone=dict(_delete_=True, type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'),
                  gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn', base_channels=32, num_stages=6,
                  inflate_stages=[4], down_stages=[4]),
    cls_head=dict(type='GCNHead', num_classes=8, in_channels=64),
    prune_cfg=dict(target_rate=0.8, mode='semi'))
