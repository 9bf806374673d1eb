#!/usr/bin/env python
"""Convert SBU Kinect Interaction (clean) skeletons to a PoseDataset pickle.

Example::

    python tools/data/convert_sbu.py /path/to/sbu data/sbu/sbu.pkl
"""
import argparse
import sys

from _convert_cli import add_common, ensure_importable, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert SBU Kinect Interaction v2.0 (clean) '
        'sXXsYY/AA/NNN/skeleton_pos.txt files into one MMAction2 '
        'PoseDataset pickle: keypoint (M=2, T, V=15, 3) in metres '
        '(OpenNI joint order, layout "openni15"), centred on the two '
        'torsos of the first frame, labels 0..7, splits fold1_train / '
        'fold1_test ... fold5_train / fold5_test (upstream 5-fold '
        'cross-validation by set).')
    add_common(parser)
    args = parser.parse_args(argv)
    ensure_importable()
    from mmsemiprune.datasets.converters import convert_sbu
    return run(convert_sbu, args)


if __name__ == '__main__':
    sys.exit(main())
