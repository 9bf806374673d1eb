# Demo reference: the narrow ST-GCN of stgcn_semiprune_demo.py trained dense (MMAction2's RecognizerGCN,
# no pruning), same data and schedule. Its checkpoint also serves as a "pretrained dense" model:
#   python tools/train.py configs/demo/stgcn_dense_demo.py
#   python tools/train.py configs/demo/stgcn_semiprune_demo.py \
#       --load-from work_dirs/stgcn_dense_demo/epoch_10.pth --trust-checkpoint
_base_ = './stgcn_semiprune_demo.py'

model = dict(
    _delete_=True,
    type='RecognizerGCN',
    backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), base_channels=32,
                  num_stages=6, inflate_stages=[4], down_stages=[4]),
    cls_head=dict(type='GCNHead', num_classes=8, in_channels=64))

custom_hooks = []  # SemiPruneHook only acts on pruned models
