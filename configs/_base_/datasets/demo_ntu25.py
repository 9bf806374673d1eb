# Synthetic demo data, NTU RGB+D 25-joint layout ('nturgb+d'), 8 classes.
# Create it with:  python tools/make_demo_data.py data/demo/demo_ntu25.pkl
# keypoint (M<=2, T=40..100, V=25, 3) camera metres; splits xsub_train/xsub_val.
# CPU-friendly: clip_len=32, single-clip test, num_workers=0.
custom_imports = dict(
    imports=['mmsemiprune.datasets'], allow_failed_imports=False)

dataset_type = 'CheckedPoseDataset'
ann_file = 'data/demo/demo_ntu25.pkl'
# For model configs: {{_base_.dataset_info.num_classes}} etc.
dataset_info = dict(
    name='demo_ntu25', layout='nturgb+d', num_joints=25, num_classes=8,
    num_person=2, clip_len=32)

train_pipeline = [
    dict(type='PreNormalize3D'),  # NTU joints: zaxis=[0, 1], xaxis=[8, 4]
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='PreNormalize3D'),
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32, num_clips=1,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='PackActionInputs')
]
test_pipeline = val_pipeline

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=train_pipeline,
        split='xsub_train',
        layout='nturgb+d'))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=val_pipeline,
        split='xsub_val',
        layout='nturgb+d',
        test_mode=True))
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
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
