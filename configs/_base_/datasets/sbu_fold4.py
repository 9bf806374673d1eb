# SBU, cross-validation fold 4 (test: the sets of fold 4; fit / val: a class-stratified 80 / 20 % partition of the
# others, from the converter).
# Use as a _base_ of a model config; see sbu.py for the other fold mechanisms.
_base_ = './sbu.py'

fold = 4
dataset_info = dict(fold=fold)
train_dataloader = dict(dataset=dict(split=f'fold{fold}_fit'))
val_dataloader = dict(dataset=dict(split=f'fold{fold}_val'))
test_dataloader = dict(dataset=dict(split=f'fold{fold}_test'))
