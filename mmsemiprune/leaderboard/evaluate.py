"""Evaluate one trained run: MMAction2's test loop (AccMetric top-1 / top-5 / mean-class accuracy on the
config's test pipeline), the pruning report, and parameter / MAC counts of the model as exported.

Counting goes through the exporter (:func:`mmsemiprune.export.exporter.compact_state_dict`: bake the
masks, remove dead channels), so the leaderboard counts exactly what ``tools/export.py`` writes:

- ``top1`` / ``top5`` / ``mean_class``: the *test* split, evaluated once per finished run;
  ``val_top1`` / ``val_top5`` / ``val_mean_class``: the same metrics on the config's validation split (carved
  from the training data, :mod:`mmsemiprune.datasets.splits`), on which every choice is made.
- ``params_dense``: every parameter of backbone + head (BatchNorm, biases, ``data_bn``, classifier
  included); ``params_nonzero``: its non-zeros after the masks (dense shapes); ``params_compact`` /
  ``params_compact_nonzero``: parameters / non-zeros of the exported model (stored non-zeros).
- ``rate_whole = 1 − params_compact_nonzero / params_dense``: the whole-model pruning rate, beside the
  pruner's ``rate_params`` (fraction of the *prunable* weights removed).
- ``macs_dense`` / ``macs_exported``: multiply-accumulates of one test clip of one sample, all persons
  ``(1, M, T, V, C)``, backbone + head, counted by ``mmengine.analysis.FlopAnalyzer`` (convs, the
  adjacency aggregation einsum, the classifier, ...) on the dense-shaped and on the exported model.
  The pruner's ``flops_*`` (prunable convs only) are kept as ``rate_flops``'s source.
- ``traffic_dense`` / ``traffic_exported``: bytes written by all operators of one eager forward of that clip
  (:func:`mmsemiprune.export.exporter.count_traffic`), both in the exported graph convolution: the bound of a
  memory-bound GPU batch (older runs lack them).

No latency is measured here (it meant little on a shared machine; see ``bench/``).
"""
import copy
import os
import os.path as osp
import time
from typing import Dict, Optional

import torch

__all__ = ['evaluate_checkpoint', 'count_params', 'model_counts']


def count_params(model) -> Dict[str, int]:
    """Parameters of backbone + neck + head: ``dict(total, nonzero)`` (the pruner's own thresholds /
    gates are not model parameters)."""
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
    return x[:1, :1].contiguous()  # one sample, one clip: (1, 1, M, T, V, C)


@torch.no_grad()
def _dense_flops(cfg, model, x) -> Optional[float]:
    """MACs of the prunable tensors of a dense model, through a pruned twin (same declarations)."""
    from mmaction.registry import MODELS
    mcfg = copy.deepcopy(cfg.model)
    mcfg = mcfg.to_dict() if hasattr(mcfg, 'to_dict') else dict(mcfg)
    mcfg['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
    mcfg.pop('distill', None)  # DistillRecognizerGCN's teacher
    mcfg['prune_cfg'] = dict(target_rate=0.5, mode='unstructured')
    twin = MODELS.build(mcfg)
    twin.load_state_dict(model.state_dict(), strict=False)
    twin.profile(x)
    rep = twin.pruner.report()
    return rep.get('flops_dense')


@torch.no_grad()
def model_counts(cfg, model, x1: torch.Tensor, fold_head: bool = True) -> Dict:
    """Parameter and MAC counts of ``model`` (masked or dense) as exported; ``x1``: one clip
    ``(1, M, T, V, C)``. See the module docstring. ``fold_head``: the exporter folds the classifier's constant
    input channels into its bias (False: counted without that fold, as the v2 tables were)."""
    from ..export.compact import LogitsModel, format_shape
    from ..export.exporter import (build_compact, compact_state_dict, count_flops, count_traffic, exported_config,
                                   synthetic_skeletons)
    model = copy.deepcopy(model).cpu().eval()
    x1 = x1.cpu()
    out = {}
    if hasattr(model, 'pruner'):
        example = torch.cat([x1, synthetic_skeletons(tuple(x1.shape), seed=1)]) if fold_head else None
        compact_sd, info = compact_state_dict(model, example=example)
        dense_sd = info['dense_sd']
        shapes = {k: format_shape(v.shape) for k, v in compact_sd.items()
                  if torch.is_tensor(v) and tuple(v.shape) != tuple(dense_sd[k].shape)}
        ocfg = exported_config(cfg, shapes)
        scope = ocfg.get('default_scope', 'mmaction')
        compact = build_compact(ocfg.model, compact_sd, scope)
        dense_shape = build_compact(dict(ocfg.model, compact_shapes=None), dense_sd, scope)
        ref = LogitsModel(model)(x1)
        out['export_max_abs_diff'] = float((LogitsModel(compact)(x1) - ref).abs().max())
        out['channels_removed'] = int(sum(n - k for n, k in info['channels'].values()))
    else:
        compact = dense_shape = model
    cd, cc = count_params(dense_shape), count_params(compact)
    out.update(params_dense=cd['total'], params_nonzero=cd['nonzero'], params_compact=cc['total'],
               params_compact_nonzero=cc['nonzero'], rate_whole=1.0 - cc['nonzero'] / max(cd['total'], 1))
    out['macs_dense'] = count_flops(dense_shape, x1)['total']
    out['macs_exported'] = count_flops(compact, x1)['total'] if compact is not dense_shape else out['macs_dense']
    out['traffic_dense'] = count_traffic(dense_shape, x1)
    out['traffic_exported'] = count_traffic(compact, x1) if compact is not dense_shape else out['traffic_dense']
    out['macs_input_shape'] = 'x'.join(str(int(s)) for s in x1.shape)
    return out


def evaluate_checkpoint(config: str, checkpoint: str, work_dir: str, save_dense_weights: Optional[str] = None,
                        cfg_options: Optional[Dict] = None) -> Dict:
    """Test ``checkpoint`` with ``config``; see the module docstring for what is measured."""
    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()  # safe checkpoint loader, mmaction:: bases
    mmsemiprune.register_all()
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
    res.update(_val_metrics(runner, cfg))
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
    res.update(model_counts(cfg, model, x.flatten(0, 1)))
    res['report_code'] = _code_version()
    res['torch_version'] = torch.__version__
    res['eval_s'] = time.time() - t0
    return res


def _split_of(loader_cfg) -> Optional[str]:
    ds = loader_cfg.get('dataset') if loader_cfg else None
    while isinstance(ds, dict):
        if ds.get('split') is not None:
            return ds['split']
        ds = ds.get('dataset')
    return None


def _val_metrics(runner, cfg) -> Dict:
    """Top-1 / top-5 / mean-class accuracy on the config's *validation* split, through the test pipeline and
    evaluator (the same number of clips as the test columns): ``val_top1``, ``val_top5``, ``val_mean_class``,
    ``val_split``. Nothing when the config has no validation split or validates on its test split."""
    from mmengine.runner import TestLoop

    val_split, test_split = _split_of(cfg.get('val_dataloader')), _split_of(cfg.get('test_dataloader'))
    if val_split is None or val_split == test_split:
        return {}
    loader = copy.deepcopy(cfg.test_dataloader)
    loader = loader.to_dict() if hasattr(loader, 'to_dict') else dict(loader)
    ds = loader['dataset']
    while ds.get('split') is None and isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']
    ds['split'] = val_split
    m = TestLoop(runner, loader, copy.deepcopy(cfg.test_evaluator)).run()
    return dict(val_top1=float(m['acc/top1']), val_top5=float(m.get('acc/top5', float('nan'))),
                val_mean_class=float(m['acc/mean1']), val_split=val_split)


def _num_clips(cfg) -> int:
    for t in cfg.test_dataloader.dataset.pipeline:
        if t.get('type') == 'UniformSampleFrames':
            return t.get('num_clips', 1)
    return 1


def _code_version() -> str:
    """``$MMSEMIPRUNE_CODE_VERSION`` when set (a copy of a checkout without its git directory, e.g. on another
    machine), else the short git commit of the checkout this package runs from, else ``mmsemiprune <version>``."""
    import subprocess
    if os.environ.get('MMSEMIPRUNE_CODE_VERSION'):
        return os.environ['MMSEMIPRUNE_CODE_VERSION']
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    if osp.exists(osp.join(root, '.git')):
        try:
            return subprocess.check_output(['git', '-C', root, 'rev-parse', '--short', 'HEAD'], text=True,
                                           stderr=subprocess.DEVNULL).strip()
        except Exception:
            pass
    try:
        from importlib.metadata import version
        return f'mmsemiprune {version("mmsemiprune")}'
    except Exception:
        return 'unknown'


@torch.no_grad()
def refresh_report(work_dir: str) -> Dict:
    """Recompute the checkpoint-derived fields of a finished run (pruning report, FLOPs / MACs, params
    after channel removal) with the *current* code, without re-running the test loop: accuracy is
    unchanged, while the report's definitions (e.g. what counts as structural) may have evolved since the
    run was evaluated. Updates ``result.json`` in place (``report_code`` records the code version)."""
    import json

    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()  # safe checkpoint loader, mmaction:: bases
    mmsemiprune.register_all()
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
    for k in ('shrink_error', 'shrink_max_abs_diff', 'channels_removed', 'latency_ms', 'latency_ms_dense_shape'):
        res.pop(k, None)
    res.update(model_counts(cfg, model, x.flatten(0, 1)))
    res['report_code'] = _code_version()
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(res, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return res
