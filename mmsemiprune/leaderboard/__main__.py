"""``python -m mmsemiprune.leaderboard ...``: the leaderboard command line (:mod:`.cli`)."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
