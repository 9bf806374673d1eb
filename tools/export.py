"""Export a trained pruned recognizer as a truly smaller model: masks baked, pruned channels removed.

    python tools/export.py WORK_DIR OUT_DIR [--onnx] [--torch-export]        # a finished training run
    python tools/export.py CONFIG CHECKPOINT OUT_DIR [--onnx] [--torch-export] [--shape N M T V C]
    python tools/test.py OUT_DIR/config.py OUT_DIR/model.pth          # evaluate the exported model

WORK_DIR is the work dir of a training run: its config dump (``<name>.py``, written by MMEngine) and the
weights-only ``<name>_pruned.pth`` written at the end of training are exported; without a ``*_pruned.pth``
(a run trained with ``semiprune_hook=False``) the checkpoint named in its ``last_checkpoint``. A checkpoint
file inside a work dir may be given instead of the folder (``WORK_DIR/epoch_N.pth OUT_DIR``).

CONFIG is the pruning config the checkpoint was trained with; CHECKPOINT the weights-only
``<work_dir>/<config>_pruned.pth``, or a full training checkpoint (``epoch_N.pth``: needs unpickling, allowed
in the run's own work dir: the config's work_dir, a folder that holds the config dump of a run of CONFIG (same
file name), or the WORK_DIR named on the command line; anywhere else with --trust-checkpoint). The masks must
be frozen.

Writes into OUT_DIR:
  model.pth    plain tensors (loads with torch.load(weights_only=True)); tensors that are mostly zero are
               stored as CSR (values + int32 indices), expanded again on load
  config.py    the config with model type mmsemiprune.CompactRecognizerGCN and the compact shapes
  report.json  params / FLOPs (dense, masked, exported), file sizes, structural share, exactness
  model.onnx   with --onnx: class scores of (batch, M, T, V, C) clips, dynamic batch axis
  model.pt2    with --torch-export: torch.export program, dynamic batch dim
The exported class scores are checked against the masked model on the config's test clips (through the
pipeline) or, when that file is missing or --shape is given, on realistic synthetic skeletons. A test
annotation file that exists but is broken (or a missing one with --inputs data) is an error.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from _common import trust_path, user_error  # noqa: I100  (imports the plugin first)
from mmengine.config import Config, DictAction

warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')


#: printed under the report: what its counts are, and why they differ from the pruner report's
MACS_NOTE = ('note: "MACs / clip" counts every operator (convolutions, graph aggregation, classifier) of one clip '
             'with all its persons (mmengine.analysis); the pruner report\'s "MACs dense ... after removal" counts '
             'only the prunable convolutions of one person, so the two differ. "predicted" is the pruner report\'s '
             'structural share from the masks; "realized" is what export removed, which also includes the '
             'classifier\'s constant input channels (folded into its bias).')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Export a pruned recognizer as a compact plain MMAction2 model',
                                usage='%(prog)s (WORK_DIR | CONFIG CHECKPOINT) OUT_DIR [options]')
    p.add_argument('paths', nargs='+', metavar='PATH',
                   help='WORK_DIR OUT_DIR: the work dir of a training run (its config dump and *_pruned.pth); or '
                   'CONFIG CHECKPOINT OUT_DIR: the pruning config and <work_dir>/<config>_pruned.pth or a training '
                   'checkpoint (epoch_N.pth). OUT_DIR: output folder (model.pth, config.py, report.json, ...)')
    p.add_argument('--onnx', action='store_true', help='also write model.onnx and check it in onnxruntime')
    p.add_argument('--torch-export', action='store_true', help='also write model.pt2 (torch.export) and check it')
    p.add_argument('--shape', type=int, nargs=5, metavar=('N', 'M', 'T', 'V', 'C'),
                   help='check on N synthetic clips of this shape (persons, frames, joints, coordinates) '
                   'instead of the test data; also the example shape of the ONNX / torch.export graphs')
    p.add_argument('--inputs', choices=['auto', 'data', 'synthetic'], default='auto',
                   help="clips for the exactness check: the config's test data ('data'), synthetic skeletons, "
                   "or data when it exists ('auto', default)")
    p.add_argument('--num-check', type=int, default=8, help='clips for the exactness check (default 8)')
    p.add_argument('--round-to', type=int, default=1, metavar='K',
                   help='keep channel widths in multiples of K (e.g. 8 for GPU kernels; the extra channels are read '
                        'by zero weights only, outputs unchanged); default 1: remove every unread channel')
    p.add_argument('--graph-conv', choices=['matmul', 'stock'], default='matmul',
                   help="what the exported config.py runs for ST-GCN(++)'s graph convolution: 'matmul' (default: two "
                        "matrix products without layout copies, faster in PyTorch) or 'stock' (MMAction2's einsum "
                        'forward, for code that hooks the 1x1 conv modules); same weights, same scores')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling of a training checkpoint outside the work dir (only files you trust)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    p.add_argument('--debug', action='store_true', help='show the traceback of data / checkpoint / export errors')
    args = p.parse_args(argv)
    if len(args.paths) == 2:
        args.work_dir, args.out_dir = args.paths
        args.config = args.checkpoint = None
    elif len(args.paths) == 3:
        args.config, args.checkpoint, args.out_dir = args.paths
        args.work_dir = None
    else:
        p.error(f'expected WORK_DIR OUT_DIR or CONFIG CHECKPOINT OUT_DIR, got {len(args.paths)} paths')
    return args


def fail(msg):
    """One ``error: ...`` line on stderr, exit code 2 (like tools/train.py and tools/test.py)."""
    print(f'error: {msg}', file=sys.stderr)
    sys.exit(2)


def find_run(path):
    """(config dump, checkpoint) of a training work dir, or of a checkpoint file inside one: the folder's
    ``<name>_pruned.pth`` with its ``<name>.py``, else the checkpoint named in ``last_checkpoint``."""
    from mmsemiprune.export import ExportError
    ckpt = path if osp.isfile(path) else None
    work = osp.dirname(path) or '.' if ckpt else path
    if not osp.isdir(work):
        raise ExportError(f'{path!r} does not exist; pass the work dir of a training run (WORK_DIR OUT_DIR), or '
                          'CONFIG CHECKPOINT OUT_DIR')
    files = os.listdir(work)
    pys = sorted(f for f in files if f.endswith('.py'))
    if ckpt is None:
        pruned = sorted(f for f in files if f.endswith('_pruned.pth') and f[:-len('_pruned.pth')] + '.py' in pys)
        if len(pruned) > 1:
            raise ExportError(f'{work} holds several runs ({", ".join(pruned)}); pass CONFIG CHECKPOINT OUT_DIR, '
                              f'e.g. {osp.join(work, pruned[-1][:-len("_pruned.pth")] + ".py")} '
                              f'{osp.join(work, pruned[-1])} OUT_DIR')
        if pruned:
            return osp.join(work, pruned[0][:-len('_pruned.pth')] + '.py'), osp.join(work, pruned[0])
        last = osp.join(work, 'last_checkpoint')
        if osp.isfile(last):
            with open(last, encoding='utf-8') as f:
                name = osp.basename(f.read().strip())
            if name and osp.isfile(osp.join(work, name)):
                ckpt = osp.join(work, name)
        if ckpt is None:
            raise ExportError(f'{work} holds no *_pruned.pth and no last_checkpoint: it is not the work dir of a '
                              'finished training run. Pass the work dir that tools/train.py wrote (--work-dir, '
                              'default work_dirs/<config name>), or CONFIG CHECKPOINT OUT_DIR')
    if len(pys) != 1:
        raise ExportError(f'{work} holds {len(pys)} config files ({", ".join(pys) or "none"}) next to '
                          f'{osp.basename(ckpt)}; pass CONFIG CHECKPOINT OUT_DIR')
    return osp.join(work, pys[0]), ckpt


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except Exception as e:  # noqa: B902
        err = user_error(e)
        if err is None or args.debug:
            raise
        fail(err)


def run(args):
    from mmsemiprune.datasets.checked_dataset import AnnotationError, check_dataset_cfgs
    from mmsemiprune.export import export_pruned, format_export_report
    if args.work_dir is not None:
        args.config, args.checkpoint = find_run(args.work_dir)
        trust_path(osp.dirname(args.checkpoint))  # the named run's own work dir, as tools/test.py --work-dir
        print(f'exporting {args.checkpoint} (config {args.config})')
    if not osp.isfile(args.config):
        fail(f'config {args.config!r} does not exist')
    if args.round_to < 1:
        fail(f'--round-to needs an integer >= 1 (1: remove every unread channel, 8: GPU-aligned widths), '
             f'got {args.round_to}')
    if args.shape and min(args.shape) < 1:
        fail(f'--shape needs positive sizes, got {args.shape}')
    if args.shape and args.inputs == 'data':
        fail('--shape checks on synthetic clips of that shape; drop --shape to check on the test data')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # like tools/test.py: the run's own work dir is trusted for full checkpoints: the config's work_dir, or the
    # checkpoint's folder when it holds the config dump of a run of this config (same file name)
    trust_path(cfg.get('work_dir') or osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0]))
    ck_dir = osp.dirname(osp.abspath(args.checkpoint))
    if osp.isfile(osp.join(ck_dir, osp.basename(args.config))):
        trust_path(ck_dir)
    shape = args.shape
    inputs = 'synthetic' if shape and args.inputs == 'auto' else args.inputs
    if inputs != 'synthetic':
        try:
            check_dataset_cfgs(cfg, ['test_dataloader'])
        except AnnotationError as e:
            if not (inputs == 'auto' and e.problem in ('file not found', 'no annotation file given')):
                # auto: no test file -> synthetic clips (said in the report)
                raise
    rep = export_pruned(cfg, args.checkpoint, args.out_dir, onnx=args.onnx, torch_export=args.torch_export,
                        shape=shape, inputs=inputs, trust=args.trust_checkpoint, cfg_name=args.config,
                        num_check=shape[0] if shape else args.num_check, round_to=args.round_to,
                        graph_conv=args.graph_conv)
    print(format_export_report(rep))
    print(MACS_NOTE)
    print(f'wrote {args.out_dir}: ' + ', '.join(sorted(k for k in ('model.pth', 'config.py', 'report.json',
                                                                 'model.onnx', 'model.pt2')
                                                       if osp.exists(osp.join(args.out_dir, k)))))
    print(f'test it: python tools/test.py {osp.join(args.out_dir, "config.py")} {osp.join(args.out_dir, "model.pth")}')
    return 0 if rep['exactness']['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
