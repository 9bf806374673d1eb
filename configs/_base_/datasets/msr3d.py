# MSR Action3D, 20 actions, cross-subject (odd subjects train), 557 sequences.
# Create the pickle with:
#   python tools/data/convert_msr3d.py /path/to/msr3d data/msr3d/msr3d.pkl
# keypoint (M=1, T=13..936, V=20, 3) metres (layout 'kinect20', MSR joint
# order), all-zero frames dropped and centred on the first-frame hip centre
# by the converter, so no PreNormalize3D (axes for it, if wanted:
# mmsemiprune.datasets.PRENORM_AXES['kinect20']). Splits: xsub_train / xsub_test, and
# xsub_fit / xsub_val: training subjects 1, 3, 5, 7 / subject 9 (from the converter). Train on
# fit, validate (every choice) on val, test once.
# For an AS1/AS2/AS3 subset convert with --subset AS1 (8 classes) and set
# num_classes=8 in the model.
custom_imports = dict(
    imports=['mmsemiprune.datasets'], allow_failed_imports=False)

dataset_type = 'CheckedPoseDataset'
ann_file = 'data/msr3d/msr3d.pkl'
dataset_info = dict(
    name='msr3d', layout='kinect20', num_joints=20, num_classes=20,
    num_person=1, clip_len=32)

# GenSkeFeat: see sbu.py ('nturgb+d' is a no-op for feats=['j']).
train_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32, num_clips=1,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j']),
    dict(type='UniformSampleFrames', clip_len=32, num_clips=10,
         test_mode=True),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=1),
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
        split='xsub_fit',
        layout='kinect20'))
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
        layout='kinect20',
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
        split='xsub_test',
        layout='kinect20',
        test_mode=True))

val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator
