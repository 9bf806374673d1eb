# Demo baseline: the narrow ST-GCN of stgcn_semiprune_demo.py, structured-only pruning (whole output
# channels / groups) at the same rate 0.8.
#   python tools/train.py configs/demo/stgcn_structured_demo.py
_base_ = './stgcn_semiprune_demo.py'

model = dict(prune_cfg=dict(target_rate=0.8, mode='structured'))
