"""Converters from raw skeleton datasets to MMAction2 PoseDataset pickles.

Every converter produces ``dict(split={name: [frame_dir, ...]},
annotations=[dict(frame_dir, label (0-based int), keypoint float32
(M, T, V, 3), total_frames=T), ...])`` and a :class:`ConversionReport`
listing what was skipped and why. ``build_*`` returns ``(data, report)``;
``convert_*`` also writes the pickle.

Per dataset (layout, persons M, units, split keys):

- SBU:    ``openni15``, M=2, metres, centred; ``fold{1..5}_train/_test``
- FPHA:   ``hand21``, M=1, metres, centred; ``train`` / ``test`` (1:1)
- MSR3D:  ``kinect20``, M=1, metres, centred; ``xsub_train`` (odd
  subjects) / ``xsub_test``
- NTU-60: ``nturgb+d``, M<=2, camera metres (use ``PreNormalize3D``);
  ``xsub_train`` / ``xsub_val``, ``xview_train`` / ``xview_val``
"""
from .common import ConversionError, ConversionReport, write_pickle
from .fpha import build_fpha, convert_fpha, read_fpha_file
from .msr3d import MSR_SUBSETS, build_msr3d, convert_msr3d, read_msr3d_file
from .ntu import (NTU60_XSUB_TRAIN_SUBJECTS, NTUParseError, build_ntu,
                  convert_ntu, read_ntu_skeleton)
from .sbu import SBU_FOLDS, build_sbu, convert_sbu, read_sbu_file

__all__ = [
    'ConversionError', 'ConversionReport', 'write_pickle', 'SBU_FOLDS',
    'build_sbu', 'convert_sbu', 'read_sbu_file', 'build_fpha', 'convert_fpha',
    'read_fpha_file', 'MSR_SUBSETS', 'build_msr3d', 'convert_msr3d',
    'read_msr3d_file', 'NTU60_XSUB_TRAIN_SUBJECTS', 'NTUParseError',
    'build_ntu', 'convert_ntu', 'read_ntu_skeleton'
]
