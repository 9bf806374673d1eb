# 2s-AGCN / AAGCN on NTU60 X-Sub 3D joints, semi-structured pruning at rate 0.9: MMAction2's config
# plus one model line. (AAGCN's attention convs are not pruned by default: prune_cfg.targets.attention.)
_base_ = 'mmaction::skeleton/2s-agcn/2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py'

model = dict(type='mmsemiprune.SemiPruneRecognizerGCN', prune_cfg=dict(target_rate=0.9, mode='semi'))

custom_hooks = [dict(type='mmsemiprune.SemiPruneHook')]
