# Leaderboard model: narrow CTR-GCN on FPHA (First-Person Hand Action, 45 classes, 1:1 split), sized for
# 2 shared CPU cores like configs/leaderboard/stgcn_fpha.py (same data pipeline, schedule and batch).
#   channels 16-32-64 (base_channels=16, 3 stages, x2 and stride 2 at stages 2 and 3), the plugin's CTRGCN
#   (CTR-GC with K=3 'spatial' subsets, multi-scale temporal branches kernel 5, dilations 1 and 2),
#   hand21 graph (wrist-centred), 1 person (num_person=1 for data_bn), clip_len 32, batch 16,
#   dense: 30 epochs SGD-Nesterov lr 0.1 cosine (the leaderboard's pruning runs override epochs/lr).
#   A training step (batch 16, 32 frames, one thread) measured 1.0-1.2x the ST-GCN one's time (0.44 s vs
#   0.36-0.44 s on the shared CPU): deeper CTR-GCNs (4 stages) took 1.4-2x.
# This file is the DENSE reference; tools/leaderboard.py derives the pruning methods from it
# (mmsemiprune/leaderboard/methods.py), or train it directly:
#   python tools/train.py configs/leaderboard/ctrgcn_fpha.py
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/fpha.py']
custom_imports = dict(imports=['mmsemiprune'], allow_failed_imports=False)

model = dict(
    type='RecognizerGCN',
    backbone=dict(type='CTRGCN', graph_cfg=dict(layout='hand21', mode='spatial'), in_channels=3,
                  base_channels=16, num_stages=3, inflate_stages=[2, 3], down_stages=[2, 3], num_person=1),
    cls_head=dict(type='GCNHead', num_classes=45, in_channels=64))

max_epochs = 30
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
