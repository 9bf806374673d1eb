"""Train a (pruned) skeleton recognizer: MMAction2's tools/train.py with the plugin imported first, the
annotation files checked before the runner is built, and ``SemiPruneHook`` added when the model is a
``SemiPruneRecognizerGCN`` and the config has none (``semiprune_hook = False`` in the config opts out).

    python tools/train.py configs/demo/stgcn_semiprune_demo.py
    python tools/train.py CONFIG --resume                 # continue the run in its work_dir
    python tools/train.py CONFIG --cfg-options model.prune_cfg.target_rate=0.8
    bash tools/dist_train.sh CONFIG 2                      # DDP (gloo on CPU)
"""
import argparse
import os
import os.path as osp

from _common import (add_semiprune_hook, check_file, cli, fix_workers, precheck,  # noqa: I100
                     setup_cpu_distributed, trust_path)
from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args():
    p = argparse.ArgumentParser(description='Train an action recognizer with mmsemiprune')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from the given checkpoint, or (no value) from the latest in the work dir')
    p.add_argument('--load-from', help='initialise from a (dense) checkpoint, e.g. a pretrained MMAction2 model')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling of --resume/--load-from files outside the work dir (only for files you trust)')
    p.add_argument('--amp', action='store_true', help='enable automatic mixed precision training')
    p.add_argument('--no-validate', action='store_true', help='do not evaluate during training')
    p.add_argument('--auto-scale-lr', action='store_true', help='scale the LR by the actual batch size')
    p.add_argument('--seed', type=int, default=None, help='random seed')
    p.add_argument('--diff-rank-seed', action='store_true', help='different seeds for different ranks')
    p.add_argument('--deterministic', action='store_true', help='deterministic algorithms')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    p.add_argument('--debug', action='store_true',
                   help='show the full traceback of configuration / data / checkpoint errors')
    args = p.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.load_from:
        check_file(args.load_from, '--load-from checkpoint')
        cfg.load_from = args.load_from
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        check_file(args.resume, '--resume checkpoint')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if cfg.get('randomness', None) is None:
        cfg.randomness = dict(seed=args.seed, diff_rank_seed=args.diff_rank_seed, deterministic=args.deterministic)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main():
    args = parse_args()
    check_file(args.config, 'config')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    cfg = fix_workers(setup_cpu_distributed(cfg, args.launcher))
    trust_path(cfg.work_dir)
    if args.trust_checkpoint and cfg.get('load_from'):
        trust_path(cfg.load_from)
    loaders = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
    precheck(cfg, loaders)
    added = add_semiprune_hook(cfg)
    runner = Runner.from_cfg(cfg)
    if added:
        runner.logger.info(f'mmsemiprune: {added}')
    runner.train()


if __name__ == '__main__':
    cli(main)
