# First-Person Hand Action benchmark, hand poses, 45 classes, 1:1 split.
# Create the pickle with:
#   python tools/data/convert_fpha.py /path/to/fpha data/fpha/fpha.pkl
# keypoint (M=1, T=7..1151, V=21, 3) metres (layout 'hand21': wrist, 5 MCPs,
# then PIP/DIP/TIP per finger), centred on the first-frame wrist by the
# converter, so no PreNormalize3D (NTU-specific; axes for it, if wanted:
# mmsemiprune.datasets.PRENORM_AXES['hand21']). Splits: train / test, and fit / val:
# a class-stratified 80 / 20 % partition of train (from the converter). Train on fit,
# validate (every choice) on val, test once.
# num_person=1: single hand; a backbone with a person-dependent data_bn
# (e.g. CTR-GCN's num_person) must use 1 as well.
custom_imports = dict(
    imports=['mmsemiprune.datasets'], allow_failed_imports=False)

dataset_type = 'CheckedPoseDataset'
ann_file = 'data/fpha/fpha.pkl'
dataset_info = dict(
    name='fpha', layout='hand21', num_joints=21, num_classes=45,
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
        split='fit',
        layout='hand21'))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        pipeline=val_pipeline,
        split='val',
        layout='hand21',
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
        split='test',
        layout='hand21',
        test_mode=True))

val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator
