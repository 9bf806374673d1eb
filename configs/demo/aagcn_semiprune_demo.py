# Demo: a narrow AAGCN (2s-AGCN's adaptive graph + attention; channels 32-32-32-64-64-64) on the
# synthetic NTU-25 data, semi-structured pruning at rate 0.8 (attention convs not pruned by default:
# prune_cfg.targets.attention); data, schedule and hooks of stgcn_semiprune_demo.py.
#   python tools/train.py configs/demo/aagcn_semiprune_demo.py
_base_ = './stgcn_semiprune_demo.py'

model = dict(
    backbone=dict(_delete_=True, type='AAGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'),
                  base_channels=32, num_stages=6, inflate_stages=[4], down_stages=[4]),
    cls_head=dict(type='GCNHead', num_classes=8, in_channels=64),
    prune_cfg=dict(target_rate=0.8, mode='semi'))
