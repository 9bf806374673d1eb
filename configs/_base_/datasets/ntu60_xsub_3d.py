# NTU RGB+D 60, cross-subject, 3D joints: MMAction2's stock ST-GCN data setup
# (same pickle, pipelines, RepeatDataset x5 and batch sizes as
# stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-3d.py), with the validating
# CheckedPoseDataset. Pickle: MMAction2's ntu60_3d.pkl, or convert raw files:
#   python tools/data/convert_ntu.py /path/to/nturgb+d_skeletons \
#       data/skeleton/ntu60_3d.pkl --ignored <missing-skeletons list>
# keypoint (M<=2, T, V=25, 3) camera metres (layout 'nturgb+d').
# Meant for GPU runs (num_workers=2, persistent workers); on CPU set
# num_workers=0 and persistent_workers=False together.
custom_imports = dict(
    imports=['mmsemiprune.datasets'], allow_failed_imports=False)

dataset_type = 'CheckedPoseDataset'
ann_file = 'data/skeleton/ntu60_3d.pkl'
dataset_info = dict(
    name='ntu60_xsub_3d', layout='nturgb+d', num_joints=25, num_classes=60,
    num_person=2, clip_len=100)

train_pipeline = [
    dict(type='PreNormalize3D'),  # NTU joints: zaxis=[0, 1], xaxis=[8, 4]
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=100),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='PreNormalize3D'),
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=100, num_clips=1,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='PreNormalize3D'),
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=100, num_clips=10,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type=dataset_type,
            ann_file=ann_file,
            pipeline=train_pipeline,
            split='xsub_train',
            layout='nturgb+d')))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=val_pipeline,
        split='xsub_val',
        layout='nturgb+d',
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=test_pipeline,
        split='xsub_val',
        layout='nturgb+d',
        test_mode=True))

val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator
