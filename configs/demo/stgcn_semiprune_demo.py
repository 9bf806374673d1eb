# Demo: a narrow ST-GCN on the embedded synthetic NTU-25 data, semi-structured pruning at rate 0.8.
# Sized for 2 CPU cores: base_channels=32, 6 stages (32-32-32-64-64-64), 32-frame clips, 10 epochs.
#   python tools/make_demo_data.py data/demo/demo_ntu25.pkl
#   python tools/train.py configs/demo/stgcn_semiprune_demo.py
#   python tools/test.py configs/demo/stgcn_semiprune_demo.py work_dirs/stgcn_semiprune_demo/stgcn_semiprune_demo_pruned.pth
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/demo_ntu25.py']
custom_imports = dict(imports=['mmsemiprune'], allow_failed_imports=False)

model = dict(
    type='mmsemiprune.SemiPruneRecognizerGCN',
    backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), base_channels=32,
                  num_stages=6, inflate_stages=[4], down_stages=[4]),
    cls_head=dict(type='GCNHead', num_classes=8, in_channels=64),
    prune_cfg=dict(target_rate=0.8, mode='semi'))

max_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=max_epochs, by_epoch=True,
                        convert_to_iter_based=True)]
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, save_best='auto', max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
