"""Leaderboard from a checkout: the same as ``python -m mmsemiprune.leaderboard`` (see
``mmsemiprune/leaderboard/cli.py`` for the options).

    python tools/leaderboard.py --sweep configs/leaderboard/sweep_v2.yaml --jobs 2
    python tools/leaderboard.py --sweep configs/leaderboard/sweep_v2.yaml --dry-run
    python tools/leaderboard.py --sweep configs/leaderboard/sweep_v2.yaml --tables-only
"""
import os.path as osp
import sys
import warnings

# mmcv-lite lacks the compiled ops; MMAction2's import of mmcv.cnn warns about one the plugin never uses
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmsemiprune.leaderboard.cli import main, parse_args  # noqa: E402,F401

if __name__ == '__main__':
    sys.exit(main())
