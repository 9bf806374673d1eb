"""Test a (pruned) skeleton recognizer with MMAction2's own metrics and print the achieved pruning rate.

    python tools/test.py CONFIG CHECKPOINT [--dump results.pkl] [--cfg-options ...]

A full training checkpoint (epoch_N.pth) needs unpickling: it is allowed when the file lies in the run's
work dir (default ./work_dirs/<config name>) or with --trust-checkpoint. The weights-only
``*_pruned.pth`` written at the end of training needs neither.
"""
import argparse
import os
import os.path as osp

from _common import check_file, cli, fix_workers, precheck, setup_cpu_distributed, trust_path  # noqa: I100
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmsemiprune.compat import strict_head_loading


def parse_args():
    p = argparse.ArgumentParser(description='Test (and evaluate) a recognizer with mmsemiprune')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    p.add_argument('--dump', type=str, help='dump predictions to a pickle file for offline evaluation')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling of a checkpoint outside the work dir (only for files you trust)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    p.add_argument('--debug', action='store_true',
                   help='show the full traceback of configuration / data / checkpoint errors')
    args = p.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    check_file(args.config, 'config')
    check_file(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.dump is not None:
        assert args.dump.endswith(('.pkl', '.pickle')), 'the dump file must be a .pkl file'
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.dump))
    cfg = fix_workers(setup_cpu_distributed(cfg, args.launcher))
    trust_path(cfg.work_dir)
    if args.trust_checkpoint:
        trust_path(args.checkpoint)
    strict_head_loading()  # a missing / other-shape classifier head is an error when testing
    precheck(cfg, ['test_dataloader'])
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if hasattr(model, 'pruner') and runner.rank == 0:
        from mmsemiprune.core.report import format_report
        rep = model.pruner.report()
        print(format_report(rep))
        line = f'prune_rate: {rep["rate_params"]:.4f}'
        if 'rate_flops' in rep:
            line += f'  prune_rate_flops: {rep["rate_flops"]:.4f}'
        line += f'  structural_share: {rep["structural_share"]:.4f}  frozen: {rep["frozen"]}'
        print(line)
        print('metrics: ' + '  '.join(f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
                                     for k, v in metrics.items()))


if __name__ == '__main__':
    cli(main)
