# SBU, cross-validation fold 1 (test sets of fold 1, train on the others).
# Use as a _base_ of a model config; see sbu.py for the other fold mechanisms.
_base_ = './sbu.py'

fold = 1
dataset_info = dict(fold=fold)
train_dataloader = dict(dataset=dict(split=f'fold{fold}_train'))
val_dataloader = dict(dataset=dict(split=f'fold{fold}_test'))
test_dataloader = dict(dataset=dict(split=f'fold{fold}_test'))
