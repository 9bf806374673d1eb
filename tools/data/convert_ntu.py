#!/usr/bin/env python
"""Convert NTU RGB+D 60 raw .skeleton files to a PoseDataset pickle.

Example::

    python tools/data/convert_ntu.py /path/to/nturgb+d_skeletons \
        data/skeleton/ntu60_3d.pkl \
        --ignored NTU_RGBD_samples_with_missing_skeletons.txt
"""
import argparse
import sys

from _convert_cli import add_common, ensure_importable, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert NTU RGB+D 60 raw SsssCcccPpppRrrrAaaa.skeleton '
        'files into one MMAction2 PoseDataset pickle: keypoint (M<=2, T, '
        'V=25, 3) camera-space metres (layout "nturgb+d"; the two most '
        'active bodies), labels 0..59, splits xsub_train / xsub_val '
        '(standard cross-subject) and xview_train / xview_val (cameras 2,3 '
        'train). Unparsable files are reported with file:line and skipped.')
    add_common(parser)
    parser.add_argument('--ignored', default=None,
                        help='text file of sample names to skip, one per '
                        'line (e.g. the upstream list of samples with '
                        'missing skeletons)')
    parser.add_argument('--benchmarks', nargs='+', default=['xsub', 'xview'],
                        choices=['xsub', 'xview'],
                        help='split families to write (default: both)')
    args = parser.parse_args(argv)
    ensure_importable()
    ignored = []
    if args.ignored:
        try:
            with open(args.ignored) as f:
                ignored = f.read().split()
        except OSError as e:
            print(f'ERROR: cannot read --ignored file: {e}', file=sys.stderr)
            return 1
    from mmsemiprune.datasets.converters import convert_ntu
    return run(convert_ntu, args, ignored=ignored,
               benchmarks=args.benchmarks)


if __name__ == '__main__':
    sys.exit(main())
