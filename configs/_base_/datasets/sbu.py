# SBU Kinect Interaction (clean), 8 two-person interaction classes.
# Create the pickle with:
#   python tools/data/convert_sbu.py /path/to/sbu data/sbu/sbu.pkl
# keypoint (M=2, T=10..46, V=15, 3) metres, OpenNI order (layout 'openni15'),
# already centred by the converter (midpoint of both torsos, first frame), so
# no PreNormalize3D (in MMAction2 1.1.0 it centres on the *last* joint when
# V != 25, and align_center=False crashes). To add rotation alignment anyway:
# dict(type='PreNormalize3D', zaxis=[2, 1], xaxis=[6, 3]) (see
# mmsemiprune.datasets.PRENORM_AXES).
#
# 5-fold cross-validation by set: split names fold{k}_train / fold{k}_test, and the validation
# split carved from each training fold: fold{k}_fit (trained on) / fold{k}_val (80 / 20 %,
# class-stratified, from the converter). Train on fit, validate (every choice) on val, test once.
# MMEngine evaluates `fold` only while parsing this file, so
# `--cfg-options fold=3` alone does NOT change the splits. To switch folds:
#   * inherit the per-fold file instead: configs/_base_/datasets/sbu_fold3.py
#     (_base_ = './sbu.py' + the three split overrides), or
#   * on the command line override the three splits:
#     --cfg-options train_dataloader.dataset.split=fold3_fit \
#         val_dataloader.dataset.split=fold3_val \
#         test_dataloader.dataset.split=fold3_test
#   * from Python: mmsemiprune.datasets.set_fold(cfg, 3)
# An unknown fold gives an AnnotationError listing the available splits.
custom_imports = dict(
    imports=['mmsemiprune.datasets'], allow_failed_imports=False)

fold = 1
dataset_type = 'CheckedPoseDataset'
ann_file = 'data/sbu/sbu.pkl'
dataset_info = dict(
    name='sbu', layout='openni15', num_joints=15, num_classes=8,
    num_person=2, clip_len=32, fold=fold)

# GenSkeFeat's `dataset` only matters for bone features ('b', 'bm'), which
# MMAction2 defines for nturgb+d/openpose/coco only; with feats=['j'] (or
# 'jm') it is a no-op rename, so 'nturgb+d' is safe for any layout here.
train_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32, num_clips=1,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32, num_clips=10,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=train_pipeline,
        split=f'fold{fold}_fit',
        layout='openni15'))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=val_pipeline,
        split=f'fold{fold}_val',
        layout='openni15',
        test_mode=True))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=test_pipeline,
        split=f'fold{fold}_test',
        layout='openni15',
        test_mode=True))

val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator
