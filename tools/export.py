"""Export a trained pruned recognizer as a truly smaller model: masks baked, pruned channels removed.

    python tools/export.py CONFIG CHECKPOINT OUT_DIR [--onnx] [--torch-export] [--shape N M T V C]
    python tools/test.py OUT_DIR/config.py OUT_DIR/model.pth          # evaluate the exported model

CONFIG is the pruning config the checkpoint was trained with; CHECKPOINT the weights-only
``<work_dir>/<config>_pruned.pth`` written at the end of training, or a full training checkpoint
(``epoch_N.pth``: needs unpickling, allowed for files under the config's work dir or with
--trust-checkpoint). The masks must be frozen.

Writes into OUT_DIR:
  model.pth    plain tensors (loads with torch.load(weights_only=True)); tensors that are mostly zero are
               stored as CSR (values + int32 indices), expanded again on load
  config.py    the config with model type mmsemiprune.CompactRecognizerGCN and the compact shapes
  report.json  params / FLOPs (dense, masked, exported), file sizes, structural share, exactness
  model.onnx   with --onnx: class scores of (batch, M, T, V, C) clips, dynamic batch axis
  model.pt2    with --torch-export: torch.export program, dynamic batch dim
The exported class scores are checked against the masked model on the config's test clips (through the
pipeline) or, when that data is missing or --shape is given, on realistic synthetic skeletons.
"""
import argparse
import os.path as osp
import sys
import warnings

from _common import trust_path  # noqa: I100  (imports the plugin first)
from mmengine.config import Config, DictAction

warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Export a pruned recognizer as a compact plain MMAction2 model')
    p.add_argument('config', help='the pruning config the checkpoint was trained with')
    p.add_argument('checkpoint', help='<work_dir>/<config>_pruned.pth or a training checkpoint (epoch_N.pth)')
    p.add_argument('out_dir', help='output folder (model.pth, config.py, report.json, ...)')
    p.add_argument('--onnx', action='store_true', help='also write model.onnx and check it in onnxruntime')
    p.add_argument('--torch-export', action='store_true', help='also write model.pt2 (torch.export) and check it')
    p.add_argument('--shape', type=int, nargs=5, metavar=('N', 'M', 'T', 'V', 'C'),
                   help='check on N synthetic clips of this shape (persons, frames, joints, coordinates) '
                   'instead of the test data; also the example shape of the ONNX / torch.export graphs')
    p.add_argument('--inputs', choices=['auto', 'data', 'synthetic'], default='auto',
                   help="clips for the exactness check: the config's test data ('data'), synthetic skeletons, "
                   "or data when it exists ('auto', default)")
    p.add_argument('--num-check', type=int, default=8, help='clips for the exactness check (default 8)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow full unpickling of a training checkpoint outside the work dir (only files you trust)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys, key=value')
    return p.parse_args(argv)


def fail(msg):
    """One ``error: ...`` line on stderr, exit code 2 (like tools/train.py and tools/test.py)."""
    print(f'error: {msg}', file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    args = parse_args(argv)
    from mmsemiprune.export import ExportError, export_pruned, format_export_report
    if not osp.isfile(args.config):
        fail(f'config {args.config!r} does not exist')
    if args.shape and min(args.shape) < 1:
        fail(f'--shape needs positive sizes, got {args.shape}')
    if args.shape and args.inputs == 'data':
        fail('--shape checks on synthetic clips of that shape; drop --shape to check on the test data')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # like tools/test.py: the run's own work dir is trusted for full checkpoints
    trust_path(cfg.get('work_dir') or osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0]))
    shape = args.shape
    inputs = 'synthetic' if shape and args.inputs == 'auto' else args.inputs
    try:
        rep = export_pruned(cfg, args.checkpoint, args.out_dir, onnx=args.onnx, torch_export=args.torch_export,
                            shape=shape, inputs=inputs, trust=args.trust_checkpoint, cfg_name=args.config,
                            num_check=shape[0] if shape else args.num_check)
    except ExportError as e:
        fail(e)
    print(format_export_report(rep))
    print(f'wrote {args.out_dir}: ' + ', '.join(sorted(k for k in ('model.pth', 'config.py', 'report.json',
                                                                 'model.onnx', 'model.pt2')
                                                       if osp.exists(osp.join(args.out_dir, k)))))
    print(f'test it: python tools/test.py {osp.join(args.out_dir, "config.py")} {osp.join(args.out_dir, "model.pth")}')
    return 0 if rep['exactness']['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
