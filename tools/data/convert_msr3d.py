#!/usr/bin/env python
"""Convert MSR Action3D real-world skeletons to a PoseDataset pickle.

Example::

    python tools/data/convert_msr3d.py /path/to/msr3d data/msr3d/msr3d.pkl
"""
import argparse
import sys

from _convert_cli import add_common, ensure_importable, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert MSR Action3D aAA_sSS_eEE_skeleton3D.txt files '
        '(x y z c per joint line, 20 lines per frame, metres) into one '
        'MMAction2 PoseDataset pickle: keypoint (M=1, T, V=20, 3) in metres '
        '(MSR joint order, layout "kinect20"), all-zero frames dropped, '
        'centred on the first-frame hip centre, labels 0..19, splits '
        'xsub_train (subjects 1,3,5,7,9) / xsub_test (2,4,6,8,10). By '
        'default only the 557 sequences of '
        'INPUT/files_used_in_cvpr12_paper.txt are converted.')
    add_common(parser)
    g = parser.add_mutually_exclusive_group()
    g.add_argument('--list', dest='list_file', default=None,
                   help='sequence list (default: '
                   'INPUT/files_used_in_cvpr12_paper.txt)')
    g.add_argument('--all-files', action='store_true',
                   help='convert every sequence in INPUT, ignore the list')
    parser.add_argument('--subset', default='all',
                        choices=['all', 'AS1', 'AS2', 'AS3'],
                        help='only the actions of one Li et al. 2010 '
                        'subset, relabelled 0..7 in action-id order '
                        '(default: all 20 actions)')
    args = parser.parse_args(argv)
    ensure_importable()
    from mmsemiprune.datasets.converters import convert_msr3d
    return run(convert_msr3d, args, list_file=args.list_file,
               all_files=args.all_files, subset=args.subset)


if __name__ == '__main__':
    sys.exit(main())
