# Demo baseline: the narrow ST-GCN of stgcn_semiprune_demo.py, unstructured-only pruning (single
# weights) at the same rate 0.8.
#   python tools/train.py configs/demo/stgcn_unstructured_demo.py
_base_ = './stgcn_semiprune_demo.py'

model = dict(prune_cfg=dict(target_rate=0.8, mode='unstructured'))
