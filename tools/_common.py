"""Shared by tools/train.py and tools/test.py: import the plugin first, CPU-DDP and trust handling."""
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mmsemiprune  # noqa: E402,F401  (registers everything, patches mmaction:: bases, safe loader)
from mmsemiprune.compat import trust_path  # noqa: E402


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
        sys.exit(f'error: {what} {path!r} does not exist')
