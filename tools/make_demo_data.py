#!/usr/bin/env python
"""Write the small synthetic NTU-25-joint demo skeleton dataset.

Example::

    python tools/make_demo_data.py data/demo/demo_ntu25.pkl
"""
import argparse
import os.path as osp
import sys
import time
import warnings

# harmless mmcv-lite notice printed when mmaction is imported
warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Generate a small deterministic synthetic skeleton '
        'action dataset as an MMAction2 PoseDataset pickle: NTU RGB+D '
        '25-joint layout ("nturgb+d"), keypoint (M in {1,2}, T in [40,100], '
        '25, 3) camera-space metres, 8 classes (wave right/left hand, raise '
        'both arms, squat, kick, step in place, clap, bow), splits '
        'xsub_train / xsub_val with disjoint subjects.')
    parser.add_argument('output', help='output .pkl path, e.g. '
                        'data/demo/demo_ntu25.pkl')
    parser.add_argument('--num-train', type=int, default=240,
                        help='training samples (default: 240)')
    parser.add_argument('--num-val', type=int, default=96,
                        help='validation samples (default: 96)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed; same seed -> same file '
                        '(default: 0)')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress on stderr')
    args = parser.parse_args(argv)
    if args.num_train < 1 or args.num_val < 1:
        parser.error('--num-train and --num-val must be >= 1')
    if not args.output.endswith('.pkl'):
        parser.error('output must end with .pkl (PoseDataset reads .pkl)')
    try:
        from mmsemiprune.datasets.demo import write_demo_dataset
    except ImportError:
        sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
        from mmsemiprune.datasets.demo import write_demo_dataset
    t0 = time.time()
    data = write_demo_dataset(args.output, args.num_train, args.num_val,
                              args.seed, progress=not args.quiet)
    sizes = {k: len(v) for k, v in data['split'].items()}
    print(f'wrote {args.output}: {len(data["annotations"])} samples, '
          f'splits {sizes}, {time.time() - t0:.1f} s', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
