# CTR-GCN on NTU RGB+D 60 X-Sub (3D joints), unstructured-only pruning (baseline) at rate 0.9: the semi
# config with prune_cfg.mode='unstructured' (same model, data and schedule).
#   python tools/train.py configs/ctrgcn_unstructured_ntu60.py
_base_ = './ctrgcn_semiprune_ntu60.py'

model = dict(prune_cfg=dict(target_rate=0.9, mode='unstructured'))
