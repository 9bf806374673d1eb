"""Evaluate one trained run: MMAction2's test loop (AccMetric top-1 / top-5 / mean-class accuracy on the
config's test pipeline), the pruning report, parameter / FLOP counts before and after physically
removing pruned channels, and a batch-1 CPU latency. Returns a JSON-serialisable dict.

FLOPs are the multiply-accumulates of the prunable convolutions per sample (the pruner's profile; for a
dense model, a pruned twin of the same architecture is profiled), i.e. the part of the network pruning
acts on. Latency is the median over ``reps`` single-threaded forwards (backbone + head) of one clip of
one sample, after baking the masks and removing dead channels (``latency_ms``) and of the dense-shaped
baked model (``latency_ms_dense_shape``); the machine is shared, so expect ±20 % noise.
"""
import copy
import os
import os.path as osp
import statistics
import time
from typing import Dict, Optional

import torch

__all__ = ['evaluate_checkpoint', 'count_params', 'measure_latency']


def _forward(model, x):
    feats, _ = model.extract_feat(x)
    return model.cls_head(feats)


@torch.no_grad()
def measure_latency(model, x, reps: int = 20, warmup: int = 3) -> float:
    """Median wall time (ms) of ``reps`` forwards of ``x`` through ``model`` (eval mode)."""
    model.eval()
    for _ in range(warmup):
        _forward(model, x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        _forward(model, x)
        times.append((time.perf_counter() - t) * 1e3)
    return float(statistics.median(times))


def count_params(model) -> Dict[str, int]:
    """Parameters of backbone + head (the pruner's own thresholds / gates are not model parameters)."""
    total = nonzero = 0
    for part in ('backbone', 'neck', 'cls_head'):
        mod = getattr(model, part, None)
        if mod is None:
            continue
        for p in mod.parameters():
            total += p.numel()
            nonzero += int((p.detach() != 0).sum())
    return dict(total=total, nonzero=nonzero)


def _sample_input(runner, model):
    loader = runner.test_dataloader
    batch = next(iter(loader))
    data = model.data_preprocessor(batch, False)
    x = data['inputs']
    return x[:1, :1].contiguous()  # one sample, one clip


@torch.no_grad()
def _dense_flops(cfg, model, x) -> Optional[float]:
    """MACs of the prunable tensors of a dense model, through a pruned twin (same declarations)."""
    from mmaction.registry import MODELS
    mcfg = copy.deepcopy(cfg.model)
    mcfg = mcfg.to_dict() if hasattr(mcfg, 'to_dict') else dict(mcfg)
    mcfg['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
    mcfg['prune_cfg'] = dict(target_rate=0.5, mode='unstructured')
    twin = MODELS.build(mcfg)
    twin.load_state_dict(model.state_dict(), strict=False)
    twin.profile(x)
    rep = twin.pruner.report()
    return rep.get('flops_dense')


@torch.no_grad()
def _compact(model, x):
    """Bake the masks, count, time, physically remove dead channels, count and time again."""
    from ..core.export import bake_model, shrink
    out = {}
    m = copy.deepcopy(model).eval()
    pruned = hasattr(m, 'pruner')
    if pruned:
        bake_model(m)
    out['params_dense'] = count_params(m)['total']
    out['params_nonzero'] = count_params(m)['nonzero']
    out['latency_ms_dense_shape'] = measure_latency(m, x)
    if pruned:
        ref = _forward(m, x)
        try:
            removed = shrink(m, m.pruner.channel_sets)
            got = _forward(m, x)
            out['shrink_max_abs_diff'] = float((got - ref).abs().max())
            out['channels_removed'] = int(sum(removed.values()))
        except Exception as e:  # report, keep the dense-shaped numbers
            out['shrink_error'] = f'{type(e).__name__}: {e}'
    out['params_compact'] = count_params(m)['total']
    out['params_compact_nonzero'] = count_params(m)['nonzero']
    out['latency_ms'] = measure_latency(m, x)
    return out


def evaluate_checkpoint(config: str, checkpoint: str, work_dir: str, save_dense_weights: Optional[str] = None,
                        cfg_options: Optional[Dict] = None) -> Dict:
    """Test ``checkpoint`` with ``config``; see the module docstring for what is measured."""
    import mmsemiprune  # noqa: F401  (registries, trusted loading)
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    from ..compat import trust_path

    torch.set_num_threads(1)
    t0 = time.time()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = osp.join(work_dir, 'test')
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.launcher = 'none'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(key)
        if dl and dl.get('num_workers', 0) == 0:
            dl['persistent_workers'] = False
    trust_path(work_dir)
    trust_path(osp.dirname(osp.abspath(checkpoint)))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    model.eval()
    x = _sample_input(runner, model)
    res = dict(top1=float(metrics['acc/top1']), top5=float(metrics.get('acc/top5', float('nan'))),
               mean_class=float(metrics['acc/mean1']), config=config, checkpoint=checkpoint,
               test_clips=int(_num_clips(cfg)))
    if hasattr(model, 'pruner'):
        if not bool(model.pruner.profiled):
            model.profile(x)
        rep = model.pruner.report()
        res.update(target_rate=float(rep['target_rate']), rate_params=float(rep['rate_params']),
                   structural_share=float(rep['structural_share']), mode=rep['mode'], frozen=bool(rep['frozen']),
                   prunable_params=int(rep['numel']), prunable_kept=int(rep['kept']))
        for k in ('flops_dense', 'flops_kept', 'flops_compact', 'rate_flops'):
            if k in rep:
                res[k] = float(rep[k])
    else:
        fd = _dense_flops(cfg, model, x)
        res.update(target_rate=0.0, rate_params=0.0, structural_share=0.0, mode='dense', frozen=True)
        if fd is not None:
            res.update(flops_dense=fd, flops_kept=fd, flops_compact=fd, rate_flops=0.0)
        if save_dense_weights:
            sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save(dict(state_dict=sd, meta=dict(source=checkpoint)), save_dense_weights)
            res['dense_weights'] = save_dense_weights
    res.update(_compact(model, x))
    res['report_code'] = _code_version()
    res['eval_s'] = time.time() - t0
    return res


def _num_clips(cfg) -> int:
    for t in cfg.test_dataloader.dataset.pipeline:
        if t.get('type') == 'UniformSampleFrames':
            return t.get('num_clips', 1)
    return 1


def _code_version() -> str:
    import subprocess
    try:
        root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
        return subprocess.check_output(['git', '-C', root, 'rev-parse', '--short', 'HEAD'], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:
        return 'unknown'


@torch.no_grad()
def refresh_report(work_dir: str) -> Dict:
    """Recompute the checkpoint-derived fields of a finished run (pruning report, FLOPs, params after
    channel removal, latency) with the *current* code, without re-running the test loop: accuracy is
    unchanged, while the report's definitions (e.g. what counts as structural) may have evolved since the
    run was evaluated. Updates ``result.json`` in place (``report_code`` records the code version)."""
    import json

    import mmsemiprune  # noqa: F401
    from mmaction.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    torch.set_num_threads(1)
    init_default_scope('mmaction')
    path = osp.join(work_dir, 'result.json')
    with open(path) as f:
        res = json.load(f)
    cfg = Config.fromfile(osp.join(work_dir, 'config.py'))
    model = MODELS.build(cfg.model)
    pruned = hasattr(model, 'pruner')
    ckpt = osp.join(work_dir, 'config_pruned.pth' if pruned else 'dense_weights.pth')
    sd = torch.load(ckpt, map_location='cpu', weights_only=True)
    model.load_state_dict(sd.get('state_dict', sd), strict=False)
    model.eval()
    info = cfg.get('dataset_info') or {}
    clip = 32
    for t in cfg.test_dataloader.dataset.pipeline:
        if t.get('type') == 'UniformSampleFrames':
            clip = t.get('clip_len', clip)
    x = torch.randn(1, 1, int(info.get('num_person', 1)), int(clip), int(info.get('num_joints', 25)), 3)
    if pruned:
        if not bool(model.pruner.profiled):
            model.profile(x)
        rep = model.pruner.report()
        res.update(rate_params=float(rep['rate_params']), structural_share=float(rep['structural_share']),
                   prunable_params=int(rep['numel']), prunable_kept=int(rep['kept']))
        for k in ('flops_dense', 'flops_kept', 'flops_compact', 'rate_flops'):
            if k in rep:
                res[k] = float(rep[k])
    else:
        fd = _dense_flops(cfg, model, x)
        if fd is not None:
            res.update(flops_dense=fd, flops_kept=fd, flops_compact=fd, rate_flops=0.0)
    for k in ('shrink_error', 'shrink_max_abs_diff', 'channels_removed'):
        res.pop(k, None)
    res.update(_compact(model, x))
    res['report_code'] = _code_version()
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(res, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return res
