# Leaderboard model: narrow ST-GCN on MSR Action3D (20 actions, 557 sequences of the CVPR 2012 list,
# cross-subject: odd subjects 1,3,5,7,9 train / even subjects test; Wang et al. 2012), sized for 2 shared CPU cores.
#   channels 16-16-32-32-64-64 (base_channels=16, 6 stages, x2 at stages 3 and 5, stride 2 there),
#   kinect20 graph (MSR joint order, K=3 'stgcn_spatial' subsets), 1 person, clip_len 32, batch 16,
#   dense: 50 epochs SGD-Nesterov lr 0.1 cosine (the leaderboard's pruning runs override epochs/lr).
# Data: python tools/data/convert_msr3d.py /path/to/msr3d data/msr3d/msr3d.pkl
# This file is the DENSE reference; the leaderboard derives the pruning methods from it
# (mmsemiprune/leaderboard/methods.py), or train it directly:
#   python tools/train.py configs/leaderboard/stgcn_msr3d.py
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/msr3d.py']
custom_imports = dict(imports=['mmsemiprune'], allow_failed_imports=False)

model = dict(
    type='RecognizerGCN',
    backbone=dict(type='STGCN', graph_cfg=dict(layout='kinect20', mode='stgcn_spatial'), in_channels=3,
                  base_channels=16, num_stages=6, inflate_stages=[3, 5], down_stages=[3, 5]),
    cls_head=dict(type='GCNHead', num_classes=20, in_channels=64))

max_epochs = 50
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_begin=1, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=max_epochs, by_epoch=True,
                        convert_to_iter_based=True)]
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=10, save_last=True, save_best=None, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
