# ST-GCN on NTU RGB+D 60 X-Sub (3D joints), semi-structured pruning at rate 0.9.
# This is MMAction2's own config plus ONE line (the model) and the plugin's hook (optional: logging,
# final BN re-estimation, weights-only export). Data: MMAction2's usual data/skeleton/ntu60_3d.pkl.
#   python tools/train.py configs/stgcn_semiprune_ntu60.py
#   python tools/train.py configs/stgcn_semiprune_ntu60.py --load-from stgcn_ntu60_dense.pth   # from pretrained
_base_ = 'mmaction::skeleton/stgcn/stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py'

model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode='semi'))

custom_hooks = [dict(type='mmsemiprune.SemiPruneHook')]
