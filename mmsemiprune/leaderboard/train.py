"""Train one leaderboard run with MMEngine's Runner (the module entry point of a run's training).

    python -m mmsemiprune.leaderboard.train CONFIG --work-dir DIR [--resume]

The leaderboard worker (:mod:`.runs`) runs this as a subprocess (its own process, so that the training's
global state, e.g. torch's deterministic flags or thread count, never leaks into the evaluation), by
module name: it works the same from a checkout and from a non-editable ``pip install``. The same as
``tools/train.py CONFIG --work-dir DIR [--resume]`` for the configs the leaderboard writes.
"""
import argparse
import sys

__all__ = ['train']


def train(config: str, work_dir: str, resume: bool = False) -> None:
    """Build the Runner from ``config`` (work dir ``work_dir``) and train; ``resume``: continue from the
    last checkpoint in the work dir."""
    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()  # safe checkpoint loader, mmaction:: bases
    mmsemiprune.register_all()
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ..compat import trust_path

    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    if resume:
        cfg.resume = True
        cfg.load_from = None  # the last checkpoint of the work dir
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if dl and dl.get('num_workers', 0) == 0 and dl.get('persistent_workers'):
            dl['persistent_workers'] = False
    trust_path(work_dir)  # its own epoch_N.pth (full MMEngine checkpoints) may be unpickled on resume
    Runner.from_cfg(cfg).train()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description='Train one mmsemiprune leaderboard run')
    p.add_argument('config')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--resume', action='store_true')
    a = p.parse_args(argv)
    train(a.config, a.work_dir, a.resume)
    return 0


if __name__ == '__main__':
    sys.exit(main())
