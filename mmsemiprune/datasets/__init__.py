"""Skeleton datasets for mmsemiprune.

Importing this package (idempotently):

- adds the graph layouts ``'openni15'`` (SBU, 15 joints), ``'hand21'`` (FPHA,
  21 joints) and ``'kinect20'`` (MSR Action3D, 20 joints) to MMAction2's
  ``Graph`` (see :mod:`.graph_layouts`);
- registers ``CheckedPoseDataset`` in MMAction2's ``DATASETS`` registry.

Also here: the raw-data converters (:mod:`.converters`), the synthetic demo
data (:mod:`.demo`) and :func:`set_fold` for cross-validation configs.

Data format everywhere: MMAction2 PoseDataset pickles, ``dict(split={name:
[frame_dir, ...]}, annotations=[dict(frame_dir, label, keypoint float32
(M, T, V, 3), total_frames=T), ...])``.
"""
from .checked_dataset import (AnnotationError, CheckedPoseDataset,
                              validate_pose_annotations)
from .folds import set_fold
from .graph_layouts import (EXTRA_LAYOUTS, JOINT_NAMES, LAYOUT_NUM_JOINTS,
                            PRENORM_AXES, UnknownLayoutError,
                            available_layouts, get_layout, num_joints_of,
                            register_graph_layouts, register_layout)

register_graph_layouts()

__all__ = [
    'AnnotationError', 'CheckedPoseDataset', 'validate_pose_annotations',
    'EXTRA_LAYOUTS', 'JOINT_NAMES', 'LAYOUT_NUM_JOINTS', 'PRENORM_AXES',
    'UnknownLayoutError', 'available_layouts', 'get_layout', 'num_joints_of',
    'register_graph_layouts', 'register_layout', 'set_fold'
]
