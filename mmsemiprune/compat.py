"""Compatibility with the OpenMMLab stack this plugin was built and tested on.

- :func:`check_versions`: a clear message when MMAction2 / MMEngine / MMCV are incompatible.
- Checkpoint loading under torch ≥ 2.6 (``weights_only=True`` by default): MMEngine's full training
  checkpoints hold its message hub (numpy scalars, ``HistoryBuffer``) and cannot load weights-only.
  We never disable weights_only globally. The local-file loader registered here first tries
  ``weights_only=True``; only if that fails *and* the file is trusted — it lies under a trusted folder
  (the run's own ``work_dir``, registered by our tools and hooks; folders listed in the environment
  variable ``MMSEMIPRUNE_TRUSTED_DIRS``) or was named with ``--trust-checkpoint`` — is it unpickled.
  Otherwise the error says how to trust it. Deployable files (exported models, ``*_pruned.pth``) hold
  plain tensors and always load weights-only.
- :func:`patch_mim_configs`: makes ``_base_ = 'mmaction::...'`` work with setuptools ≥ 82 (no
  ``pkg_resources``) and with MMAction2 1.1.0's metafiles (a list-valued ``Config`` field crashes the
  lookup): packages are located with importlib and paths resolve to ``<pkg>/.mim/configs/<path>``.
"""
import importlib.util
import os
import os.path as osp
import pickle

import torch

__all__ = ['check_versions', 'trust_path', 'is_trusted', 'patch_mim_configs', 'SUPPORTED']

SUPPORTED = dict(mmaction='>=1.1.0,<1.2.0 (1.2.0 on PyPI lacks mmaction/models/localizers/drn)',
                 mmengine='>=0.10.0,<0.11', mmcv='>=2.0.0,<2.2 (mmcv or mmcv-lite)', torch='>=2.1')
_TRUSTED = set()


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
    """torch.load with weights_only=True; full unpickling only for trusted files (see module doc)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found; check the path (or the work_dir of the run)')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' not in str(e):
            raise _broken(filename, e)
        if is_trusted(filename):
            return torch.load(filename, map_location=map_location, weights_only=False)
        raise pickle.UnpicklingError(
            f'{filename} is a full MMEngine training checkpoint (message hub, optimizer state) that needs '
            'unpickling, which runs code from the file. It is not under a trusted folder. If you trust it, '
            'pass --trust-checkpoint to tools/test.py or tools/train.py, or add its folder to the environment '
            'variable MMSEMIPRUNE_TRUSTED_DIRS; the weights-only file <work_dir>/*_pruned.pth that training '
            'writes at the end needs no trust.') from None
    except (EOFError, RuntimeError, ValueError) as e:
        raise _broken(filename, e) from None


def _broken(filename, e):
    return RuntimeError(f'cannot read checkpoint {filename}: {type(e).__name__}: {str(e)[:200]}. The file is '
                        'truncated or not a PyTorch checkpoint; re-download it or re-run the training that wrote it')


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
