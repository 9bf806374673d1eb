# CTR-GCN (Chen et al., ICCV 2021) on NTU RGB+D 60 X-Sub (3D joints), semi-structured pruning at rate 0.9.
# Model and schedule of MMAction2's projects/ctrgcn/configs/ctrgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py
# (16 epochs, SGD-Nesterov lr 0.1, wd 5e-4, cosine, batch 8x16), with the plugin's CTRGCN backbone
# (state-dict compatible with projects/ctrgcn, so its checkpoints load with --load-from).
# The topology-refinement convs (conv1/conv2/conv4) are not pruned by default: prune_cfg.targets.attention.
#   python tools/train.py configs/ctrgcn_semiprune_ntu60.py
#   python tools/train.py configs/ctrgcn_semiprune_ntu60.py --load-from ctrgcn_ntu60_dense.pth   # from pretrained
_base_ = ['./_base_/default_runtime.py', './_base_/datasets/ntu60_xsub_3d.py']
custom_imports = dict(imports=['mmsemiprune'], allow_failed_imports=False)

model = dict(
    type='mmsemiprune.SemiPruneRecognizerGCN',
    backbone=dict(type='CTRGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial')),
    cls_head=dict(type='GCNHead', num_classes=60, in_channels=256),
    prune_cfg=dict(target_rate=0.9, mode='semi'))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=16, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0, T_max=16, by_epoch=True, convert_to_iter_based=True)]

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0005, nesterov=True))

default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=100))
custom_hooks = [dict(type='mmsemiprune.SemiPruneHook')]

# base_batch_size = (8 GPUs) x (16 samples per GPU)
auto_scale_lr = dict(enable=False, base_batch_size=128)
