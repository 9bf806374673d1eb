#!/usr/bin/env python
"""Convert FPHA hand-pose annotations to a PoseDataset pickle.

Example::

    python tools/data/convert_fpha.py /path/to/fpha data/fpha/fpha.pkl
"""
import argparse
import sys

from _convert_cli import add_common, ensure_importable, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert First-Person Hand Action benchmark hand poses '
        '(INPUT/Hand_pose_annotation_v1/Subject_N/<action>/<seq>/'
        'skeleton.txt + INPUT/data_split_action_recognition.txt) into one '
        'MMAction2 PoseDataset pickle: keypoint (M=1, T, V=21, 3) in metres '
        '(layout "hand21"), centred on the first-frame wrist, labels 0..44 '
        'from the split file, splits train / test (1:1 protocol). Empty '
        'files are reported and skipped.')
    add_common(parser)
    parser.add_argument('--split-file', default=None,
                        help='split file (default: '
                        'INPUT/data_split_action_recognition.txt)')
    parser.add_argument('--pose-dir', default=None,
                        help='pose folder (default: '
                        'INPUT/Hand_pose_annotation_v1)')
    args = parser.parse_args(argv)
    ensure_importable()
    from mmsemiprune.datasets.converters import convert_fpha
    return run(convert_fpha, args, split_file=args.split_file,
               pose_dir=args.pose_dir)


if __name__ == '__main__':
    sys.exit(main())
