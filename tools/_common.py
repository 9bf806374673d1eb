"""Shared by tools/train.py, tools/test.py and tools/export.py: import the plugin first, CPU-DDP and trust
handling, :func:`precheck` (prune_cfg and the annotation files, before the runner is built),
:func:`add_semiprune_hook`, and :func:`cli`, which prints the plugin's own user errors (bad config, data or
checkpoint, NaN loss or gradient, export) as one ``error: <message>`` line with exit code 2 instead of a
traceback (``--debug`` shows the traceback)."""
import os.path as osp
import sys
import warnings

# mmcv-lite lacks the compiled ops; MMAction2's import of mmcv.cnn warns about one the plugin never uses
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mmsemiprune  # noqa: E402

mmsemiprune.apply_mmengine_patches()  # safe checkpoint loader, mmaction:: bases (before any config is parsed)
mmsemiprune.register_all()  # the plugin's modules in MMAction2's registries (idempotent)
from mmsemiprune.compat import CheckpointError, ConfigError, trust_path  # noqa: E402
from mmsemiprune.datasets.checked_dataset import AnnotationError, check_dataset_cfgs  # noqa: E402
from mmsemiprune.engine.hooks import NonFiniteError  # noqa: E402
from mmsemiprune.export.exporter import ExportError  # noqa: E402

#: errors whose message alone tells the user what to fix (everything else keeps its traceback)
USER_ERRORS = (ConfigError, CheckpointError, AnnotationError, NonFiniteError, ExportError)


def setup_cpu_distributed(cfg, launcher: str):
    """MMEngine assumes CUDA for launcher='pytorch'; on a CPU-only machine use gloo and a CPU DDP."""
    import torch
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    torch.cuda.set_device = lambda *a, **k: None  # mmengine calls it unconditionally
    cfg.setdefault('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                 find_unused_parameters=False)
    return cfg


def fix_workers(cfg):
    """persistent_workers=True with num_workers=0 is an error in torch; correct it quietly."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if dl and dl.get('num_workers', 0) == 0 and dl.get('persistent_workers'):
            dl['persistent_workers'] = False
    return cfg


def check_file(path, what):
    if not osp.isfile(path):
        print(f'error: {what} {path!r} does not exist', file=sys.stderr)
        sys.exit(2)


def user_error(exc):
    """The first of the plugin's user errors in ``exc`` and its causes / contexts, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, USER_ERRORS):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def cli(main):
    """Run ``main()``; a user error prints ``error: <message>`` on stderr and exits with code 2.
    With ``--debug`` on the command line the traceback is shown instead."""
    if '--debug' in sys.argv[1:]:
        return main()
    try:
        return main()
    except Exception as e:  # noqa: B902
        err = user_error(e)
        if err is None:
            raise
        print(f'error: {err}\n(run again with --debug to see the traceback)', file=sys.stderr)
        sys.exit(2)


def is_pruned_model(cfg) -> bool:
    model = cfg.get('model') or {}
    return str(model.get('type', '')).endswith('SemiPruneRecognizerGCN')


def precheck(cfg, loaders=()):
    """Validate the plugin's part of the config and the annotation files of the dataloaders ``loaders`` that
    the run will use (stock ``PoseDataset`` included) before MMEngine builds the runner (and prints the config)."""
    if is_pruned_model(cfg):
        from mmsemiprune.models.recognizer import precheck_prune_cfg
        precheck_prune_cfg(cfg.model.get('prune_cfg'))
    check_dataset_cfgs(cfg, loaders)


def add_semiprune_hook(cfg):
    """Add ``SemiPruneHook`` to a config whose model is a ``SemiPruneRecognizerGCN`` and that has none, so that
    the one-line config gets the ``*_pruned.pth``, the pruning metrics, the BN re-estimation and the NaN guards.
    ``semiprune_hook = False`` in the config opts out; ``semiprune_hook = dict(log_interval=1, ...)`` passes
    arguments. Returns the message to log, or None when nothing was added."""
    opt = cfg.get('semiprune_hook', True)
    if opt is not True and opt is not False and not isinstance(opt, dict):
        raise ConfigError(f'semiprune_hook must be True, False or a dict of SemiPruneHook arguments, got {opt!r}')
    hooks = list(cfg.get('custom_hooks') or [])
    if opt is False or not is_pruned_model(cfg) or \
            any(str(h.get('type', '')).endswith('SemiPruneHook') for h in hooks if isinstance(h, dict)):
        return None
    hook = dict(type='mmsemiprune.SemiPruneHook', **(opt if isinstance(opt, dict) else {}))
    cfg.custom_hooks = hooks + [hook]
    return (f'added {hook} to custom_hooks (the model is a SemiPruneRecognizerGCN; set semiprune_hook=False in '
            'the config to train without it)')
