"""Compatibility with the OpenMMLab stack this plugin was built and tested on.

- :func:`check_versions`: a clear message when MMAction2 / MMEngine / MMCV are incompatible.
- Checkpoint loading under torch ≥ 2.6 (``weights_only=True`` by default): MMEngine's full training
  checkpoints hold its message hub (numpy scalars, ``HistoryBuffer``) and cannot load weights-only.
  We never disable weights_only globally. The local-file loader (:func:`apply_mmengine_patches`) first tries
  ``weights_only=True``; only if that fails *and* the file is trusted — it lies under a trusted folder
  (the run's own ``work_dir``, registered by our tools and hooks; folders listed in the environment
  variable ``MMSEMIPRUNE_TRUSTED_DIRS``) or was named with ``--trust-checkpoint`` — is it unpickled.
  Otherwise the error says how to trust it. Deployable files (exported models, ``*_pruned.pth``) hold
  plain tensors and always load weights-only.
- :func:`check_state_dict`: refuses, before anything is copied, a checkpoint of another architecture
  or width (MMEngine's non-strict loading would only log it and leave the model half-loaded).
- User-error types (:class:`ConfigError`, :class:`CheckpointError` and subclasses): the tools print
  their message as ``error: ...`` (exit code 2) instead of a traceback; ``--debug`` shows it.
- :func:`patch_mim_configs`: makes ``_base_ = 'mmaction::...'`` work with setuptools ≥ 82 (no
  ``pkg_resources``) and with MMAction2 1.1.0's metafiles (a list-valued ``Config`` field crashes the
  lookup): packages are located with importlib and paths resolve to ``<pkg>/.mim/configs/<path>``.
- :func:`apply_mmengine_patches`: the version check, the checkpoint loader and the config patch above, once
  per process. Nothing here runs on import: the tools call it, and so does registering the plugin.
"""
import importlib.util
import os
import os.path as osp
import pickle
from typing import Optional

import torch

__all__ = ['apply_mmengine_patches', 'check_versions', 'trust_path', 'is_trusted', 'patch_mim_configs', 'SUPPORTED', 'load_checkpoint_file',
           'check_state_dict', 'ConfigError', 'CheckpointError', 'CheckpointNotFoundError',
           'UntrustedCheckpointError', 'CheckpointMismatchError', 'strict_head_loading', 'checkpoint_source']

SUPPORTED = dict(mmaction='>=1.1.0,<1.2.0 (1.2.0 on PyPI lacks mmaction/models/localizers/drn)',
                 mmengine='>=0.10.0,<0.11', mmcv='>=2.0.0,<2.2 (mmcv or mmcv-lite)', torch='>=2.1')
_TRUSTED = set()
_LAST_READ = [None]  # (file, ids of its tensors) last read by the plugin's loader, named in mismatch errors
_STRICT_HEAD = [False]  # tools/test.py: a head of another shape is an error, not a warning


# -- user-error types (printed without a traceback by tools/train.py and tools/test.py) ---------------
class ConfigError(ValueError):
    """An invalid ``model.prune_cfg`` (or model config) field; the message names the field and the fix."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, unreadable, untrusted or of another architecture."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


class UntrustedCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A full training checkpoint outside the trusted folders (it would need unpickling)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model (another architecture, width, depth or prune targets)."""


def _ver(s):
    out = []
    for p in s.split('+')[0].split('.')[:3]:
        num = ''.join(ch for ch in p if ch.isdigit())
        out.append(int(num) if num else 0)
    return tuple(out + [0] * (3 - len(out)))


def check_versions():
    """Raise ImportError naming the versions that work when the installed stack is incompatible."""
    problems = []
    try:
        import mmengine
        if not (0, 10, 0) <= _ver(mmengine.__version__) < (0, 11, 0):
            problems.append(f'mmengine {mmengine.__version__} (need {SUPPORTED["mmengine"]})')
    except ImportError:
        problems.append('mmengine is not installed')
    try:
        import mmcv
        if not (2, 0, 0) <= _ver(mmcv.__version__) < (2, 2, 0):
            problems.append(f'mmcv {mmcv.__version__} (need {SUPPORTED["mmcv"]})')
    except ImportError:
        problems.append('mmcv / mmcv-lite is not installed')
    try:
        spec = importlib.util.find_spec('mmaction')
        if spec is None:
            raise ImportError
        from mmaction.version import __version__ as mv
        if not (1, 1, 0) <= _ver(mv) < (1, 2, 0):
            problems.append(f'mmaction2 {mv} (need {SUPPORTED["mmaction"]})')
    except ImportError:
        problems.append('mmaction2 is not installed')
    if problems:
        raise ImportError('mmsemiprune cannot run with this OpenMMLab stack: ' + '; '.join(problems) +
                          '. Known to work: python 3.11, torch==2.13.0, mmengine==0.10.7, mmcv-lite==2.0.1, '
                          'mmaction2==1.1.0 (pip install -e . in a fresh venv installs them).')


# -- trusted checkpoint loading -----------------------------------------------------------------------
def trust_path(path: str) -> None:
    """Trust a folder (everything under it) or a single checkpoint file for full unpickling."""
    if path:
        _TRUSTED.add(osp.realpath(osp.expanduser(str(path))))


def is_trusted(filename: str) -> bool:
    f = osp.realpath(osp.expanduser(filename))
    roots = set(_TRUSTED)
    roots |= {osp.realpath(p) for p in os.environ.get('MMSEMIPRUNE_TRUSTED_DIRS', '').split(os.pathsep) if p}
    return any(f == r or f.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def load_checkpoint_file(filename: str, map_location=None):
    """torch.load with weights_only=True; full unpickling only for trusted files (see module doc).

    Raises :class:`CheckpointNotFoundError`, :class:`UntrustedCheckpointError` or :class:`CheckpointError`
    (unreadable file) with a message naming the file and the fix."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(f'checkpoint {filename} not found; check the path (or the work_dir of the run)')
    try:
        return _remember(filename, torch.load(filename, map_location=map_location, weights_only=True))
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' not in str(e) or 'Unsupported global' not in str(e):
            raise _broken(filename, e) from None
    except MemoryError:
        raise
    except Exception as e:  # truncated / corrupted / not a checkpoint: EOFError, RuntimeError, OSError, KeyError...
        raise _broken(filename, e) from None
    # a structurally sound file that needs more than plain tensors: an MMEngine training checkpoint
    if not is_trusted(filename):
        raise UntrustedCheckpointError(
            f'{filename} is a full MMEngine training checkpoint (message hub, optimizer state) that needs '
            'unpickling, which runs code from the file. It is not under a trusted folder, so it was not loaded. '
            'If you trust it, pass --trust-checkpoint to tools/test.py or tools/train.py, or add its folder to '
            'the environment variable MMSEMIPRUNE_TRUSTED_DIRS (os.pathsep-separated); the weights-only file '
            '<work_dir>/*_pruned.pth that training writes at the end needs no trust.')
    try:
        return _remember(filename, torch.load(filename, map_location=map_location, weights_only=False))
    except MemoryError:
        raise
    except Exception as e:
        raise _broken(filename, e) from None


def _remember(filename, ckpt):
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    _LAST_READ[0] = (filename, {id(v) for v in sd.values() if torch.is_tensor(v)} if isinstance(sd, dict) else set())
    return ckpt


def _broken(filename, e):
    size = osp.getsize(filename) if osp.isfile(filename) else 0
    what = 'is empty (0 bytes)' if size == 0 else f'({size} bytes) is truncated, corrupted or not a PyTorch checkpoint'
    detail = str(e).strip().split('. ')[0][:160]
    detail = f'{type(e).__name__}: {detail}' if detail else type(e).__name__
    return CheckpointError(f'cannot read checkpoint {filename}: the file {what} ({detail}). Re-download it, or '
                           're-run the training that wrote it (--resume continues from the previous good '
                           'checkpoint if the last one is broken: pass it explicitly, --resume <work_dir>/epoch_N.pth)')


def strict_head_loading(enable: bool = True) -> None:
    """Make :func:`check_state_dict` refuse a classifier head that is missing or of another shape
    (tools/test.py: evaluating a randomly initialised head is never intended)."""
    _STRICT_HEAD[0] = bool(enable)


def _shape(v):
    return tuple(v.shape) if hasattr(v, 'shape') else None


def check_state_dict(model, state_dict, prefix: str = '', *, strict_head: Optional[bool] = None,
                     need_masks: bool = False) -> None:
    """The one answer to "does this checkpoint fit ``model`` (a ``SemiPruneRecognizerGCN``)?", given before
    any tensor is copied: one :class:`CheckpointMismatchError` naming the offending keys and the fix.

    Always refused: a backbone tensor whose shape differs (another width / architecture), backbone tensors
    missing from or unknown to the checkpoint (another backbone or depth), masks of a pruned checkpoint
    that cover other tensors than this ``prune_cfg`` prunes. Accepted: a dense stock ``RecognizerGCN``
    checkpoint of the same architecture (it only lacks the mask and pruner buffers). The classifier head:
    one of another shape (fine-tuning on another label set) is skipped with a warning, as MMEngine does;
    with ``strict_head`` (default: :func:`strict_head_loading`, set by tools/test.py) a missing, unknown or
    other-shape head is refused. ``need_masks`` (export: baking needs the masks) also refuses a checkpoint
    without this model's complete mask state, a dense one with its own message.
    """
    strict_head = _STRICT_HEAD[0] if strict_head is None else strict_head
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    src = checkpoint_source(sd)
    problems, structural, head_shape = _fit_problems(model, sd, strict_head, need_masks, src)
    if problems:
        arch = type(getattr(model, 'backbone', None)).__name__
        if structural:
            fix = ('It was trained with another backbone, width, depth or number of classes: use the config it was '
                   'trained with, or a checkpoint of this architecture')
        else:
            fix = 'Use the config the checkpoint was trained with'
        raise CheckpointMismatchError(f'{src} does not fit this model (backbone {arch}): ' + '; '.join(problems)
                                      + f'. {fix}. Nothing was loaded.')
    if head_shape:
        import logging

        from mmengine.logging import print_log
        ex = '; '.join(f'{k}: checkpoint {a} vs model {b}' for k, a, b in head_shape[:3])
        print_log(f'{src}: the classifier head has another shape ({ex}); it is NOT loaded and keeps '
                  'its initialisation (expected when fine-tuning on another label set)', logger='current',
                  level=logging.WARNING)


def _masky(k):
    return '_psi.' in k or k.startswith('pruner.') or k.endswith('num_batches_tracked')


def _bb(k):
    return k.startswith('backbone.')


def _fit_problems(model, sd, strict_head: bool, need_masks: bool, src: str):
    """(problems, whether any is structural (shape / missing / unexpected backbone tensors), the head tensors of
    another shape to skip) of :func:`check_state_dict`."""
    own = model.state_dict()
    masky, bb = _masky, _bb
    shape = [(k, _shape(v), _shape(own[k])) for k, v in sd.items()
             if k in own and _shape(v) is not None and _shape(v) != _shape(own[k])]
    bad_shape = [x for x in shape if bb(x[0]) or '_psi.' in x[0]]
    head_shape = [x for x in shape if x not in bad_shape]
    missing = [k for k in own if bb(k) and not masky(k) and k not in sd]
    unexpected = [k for k in sd if bb(k) and not masky(k) and k not in own]
    ck_masked = {k.split('_psi.')[0] for k in sd if '_psi.' in k}
    own_masked = {k.split('_psi.')[0] for k in own if '_psi.' in k}
    prunable = [key for key, *_ in model.pruner.items()] if hasattr(model, 'pruner') else []
    n_missing_prunable = sum(k not in sd for k in prunable)

    problems = []
    if strict_head:
        bad_shape, head_shape = shape, []
        head_missing = [k for k in own if not bb(k) and not masky(k) and k not in sd]
        head_unexpected = [k for k in sd if not bb(k) and not masky(k) and k not in own]
        if head_missing:
            problems.append(f'{len(head_missing)} head tensor(s) are missing (e.g. {", ".join(head_missing[:3])})')
        if head_unexpected:
            problems.append(f'the checkpoint has {len(head_unexpected)} tensor(s) outside the backbone that the '
                            f'model lacks (e.g. {", ".join(head_unexpected[:3])})')
    if bad_shape:
        ex = '; '.join(f'{k}: checkpoint {a} vs model {b}' for k, a, b in bad_shape[:3])
        problems.append(f'{len(bad_shape)} tensor(s) have another shape ({ex})')
    if missing:
        head = (f'{n_missing_prunable} of its {len(prunable)} prunable weights and ' if n_missing_prunable else '')
        problems.append(f'{head}{len(missing)} backbone tensor(s) of the model are missing from the checkpoint '
                        f'(e.g. {", ".join(missing[:3])})')
    if unexpected:
        problems.append(f'the checkpoint has {len(unexpected)} backbone tensor(s) the model lacks '
                        f'(e.g. {", ".join(unexpected[:3])})')
    if ck_masked and ck_masked != own_masked and not missing and not unexpected:
        extra, lack = sorted(ck_masked - own_masked), sorted(own_masked - ck_masked)
        problems.append('it is a pruned checkpoint whose masks cover other tensors than this prune_cfg prunes'
                        + (f' (masked only in the checkpoint: {", ".join(extra[:3])})' if extra else '')
                        + (f' (masked only in the model: {", ".join(lack[:3])})' if lack else '')
                        + '; use the prune_cfg.targets / groups the checkpoint was trained with')
    mask_missing = [k for k in own if ('_psi.' in k or k.startswith('pruner.')) and k not in sd]
    if need_masks and mask_missing and not problems:
        if not ck_masked:
            raise CheckpointMismatchError(
                f'{src} is a dense checkpoint: it has the weights of this model but no pruning masks (e.g. '
                f'{mask_missing[0]} is missing). Export needs the result of pruning: train the pruned config from '
                'it (python tools/train.py CONFIG --load-from CHECKPOINT) and export that run '
                '(<work_dir>/<config>_pruned.pth or its last epoch_N.pth). Nothing was loaded.')
        problems.append(f'{len(mask_missing)} mask / pruner entries of the model are missing from the checkpoint '
                        f'(e.g. {", ".join(mask_missing[:3])}): it is incomplete or from another version')
    return problems, bool(bad_shape or missing or unexpected), head_shape


def checkpoint_source(sd) -> str:
    """'checkpoint <file>' when ``sd`` holds the tensors last read by :func:`load_checkpoint_file`."""
    name, ids = _LAST_READ[0] or (None, ())
    if name and any(id(v) in ids for v in sd.values()):
        return f'checkpoint {name}'
    return 'the checkpoint'


def apply_mmengine_patches() -> None:
    """Once per process: :func:`check_versions`, then the two MMEngine patches of the plugin:

    - MMEngine's ``CheckpointLoader`` scheme for local files (the ``''`` prefix: every path without a URL
      scheme) becomes :func:`load_checkpoint_file` (weights-only first; full unpickling only for trusted
      files);
    - :func:`patch_mim_configs`: ``_base_ = 'mmaction::...'`` resolves without ``pkg_resources``.

    Called by the project's tools before they parse a config, and by registering the plugin
    (:mod:`mmsemiprune.registry`, which ``custom_imports`` and ``type='mmsemiprune.X'`` reach); never by the
    core. Idempotent."""
    if _SET_UP[0]:
        return
    check_versions()
    _register_loader()
    patch_mim_configs()
    _SET_UP[0] = True


_SET_UP = [False]


def _register_loader():
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):  # name must start with 'load_from_'
        return load_checkpoint_file(filename, map_location)


# -- `mmaction::` base configs ------------------------------------------------------------------------
_PATCHED = False


def patch_mim_configs():
    """Make ``pkg::path`` config bases resolve without pkg_resources and without the metafile walk."""
    global _PATCHED
    if _PATCHED:
        return
    import mmengine.config.config as _cc
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmsemiprune', 'mmsemiprune')

    def _module_of(package):
        return {v: k for k, v in MODULE2PACKAGE.items()}.get(package, package)

    def is_installed(package):
        return importlib.util.find_spec(_module_of(package)) is not None

    def get_installed_path(package):
        spec = importlib.util.find_spec(_module_of(package))
        if spec is None:
            raise ModuleNotFoundError(f'{package} is not installed; pip install it or fix the _base_ path')
        return osp.dirname(spec.origin)

    def _get_external_cfg_path(package_path, cfg_path):
        path = osp.join(package_path, '.mim', 'configs', cfg_path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'config {cfg_path} not found in {package_path}/.mim/configs')
        return path

    _cc.is_installed = is_installed
    _cc.get_installed_path = get_installed_path
    _cc._get_external_cfg_path = _get_external_cfg_path
    _PATCHED = True
