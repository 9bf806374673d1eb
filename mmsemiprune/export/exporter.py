"""Export a trained pruned recognizer as a truly smaller model (the logic behind ``tools/export.py``).

Steps (:func:`export_pruned`):

1. build the pruned model from the training config and load a checkpoint that matches it (weights-only
   ``*_pruned.pth`` or a full training checkpoint); the masks must be frozen. Every problem (missing
   file, dense checkpoint, another architecture, soft masks) is one :class:`ExportError` with what to
   do, raised *before* anything is loaded into the model; whether the checkpoint fits is decided by
   :func:`mmsemiprune.compat.check_state_dict`, the rules of training / testing plus a complete mask state
   and an exact head;
2. bake the masks into the weights (:func:`~mmsemiprune.core.shrink.bake_model`) and physically remove
   the channels nothing reads (:func:`~mmsemiprune.core.shrink.shrink` over the model's channel sets);
3. rebuild the result as ``mmsemiprune.CompactRecognizerGCN`` from the exported config and load the
   exported state dict into it (so what is checked is exactly what is written);
4. check the class scores against the masked model to 1e-4 · max(1, max |score|) (PyTorch, and
   onnxruntime / torch.export when asked), count parameters and FLOPs, and write ``model.pth``, ``config.py``, ``report.json``
   (+ ``model.onnx``, ``model.pt2``).

FLOPs are MACs (one multiply-add = 1) counted by ``mmengine.analysis.FlopAnalyzer`` on one clip
``(1, M, T, V, C)`` of the class-score module (backbone + head). "Masked" FLOPs additionally skip every
multiply by a masked-out conv / linear weight (``#zeros × output positions``, positions measured with
forward hooks; the same hooks reproduce FlopAnalyzer's conv count on the dense model): that is what a
perfect sparse kernel could save, while "exported" is what the compact dense model actually computes.
"""
import copy
import io
import json
import os
import os.path as osp
import time
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..core.shrink import bake_model, shrink, sparse_state_dict
from .compact import LogitsModel, format_shape, is_sparse_entry
from .graph_conv import GRAPH_CONVS, graph_conv_of, using_graph_conv

__all__ = ['ExportError', 'export_pruned', 'load_pruned_model', 'compact_state_dict', 'build_model',
           'exported_config', 'build_compact', 'example_inputs', 'synthetic_skeletons', 'count_flops', 'count_traffic',
           'conv_positions', 'export_onnx', 'run_onnx', 'export_pt2', 'format_export_report', 'param_count']

TOL = 1e-4


class ExportError(RuntimeError):
    """One actionable message about why a model cannot be exported."""


# -- building and loading -------------------------------------------------------------------------------
def build_model(model_cfg, default_scope: str = 'mmaction') -> nn.Module:
    """Build a model dict through MMAction2's registry (default scope ``mmaction``)."""
    import mmsemiprune
    mmsemiprune.register_all()
    from mmaction.registry import MODELS
    from mmengine.registry import DefaultScope
    from . import compact  # noqa: F401  (registers CompactRecognizerGCN)
    cfg = copy.deepcopy(dict(model_cfg))
    with DefaultScope.overwrite_default_scope(default_scope or 'mmaction'):
        return MODELS.build(cfg)


def _state_dict_of(ckpt, path) -> Dict[str, torch.Tensor]:
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise ExportError(f'{path} holds no state dict (got {type(ckpt).__name__}); pass a checkpoint written by '
                          'tools/train.py (epoch_N.pth, best_*.pth or <work_dir>/<config>_pruned.pth)')
    if any(is_sparse_entry(v) for v in sd.values()):
        raise ExportError(f'{path} is already an exported compact model (tools/export.py output); there is nothing '
                          'left to export. Test it with: python tools/test.py <OUT>/config.py <OUT>/model.pth')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in sd.items()}


def load_pruned_model(cfg, checkpoint: str, trust: bool = False, cfg_name: str = 'the config') -> nn.Module:
    """Build ``cfg.model`` and load ``checkpoint`` into it; returns the masked model in eval mode.
    Raises :class:`ExportError` (nothing half-loaded) unless the checkpoint matches and the masks are frozen."""
    import pickle

    from ..compat import CheckpointMismatchError, check_state_dict, load_checkpoint_file, trust_path
    if not osp.isfile(checkpoint):
        raise ExportError(f'checkpoint {checkpoint!r} does not exist; pass the file written by training, e.g. '
                          'work_dirs/<config>/<config>_pruned.pth (weights only) or work_dirs/<config>/epoch_N.pth')
    model = build_model(cfg.model, cfg.get('default_scope', 'mmaction'))
    if not hasattr(model, 'pruner'):
        raise ExportError(f'{cfg_name} builds {type(model).__name__}, which has no pruning masks; pass the pruning '
                          "config the checkpoint was trained with (model type 'mmsemiprune.SemiPruneRecognizerGCN')")
    if trust:
        trust_path(checkpoint)
    try:
        ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    except pickle.UnpicklingError as e:
        raise ExportError(str(e).replace('to tools/test.py or tools/train.py', 'to tools/export.py') +
                          " A run's own checkpoints need no flag: python tools/export.py WORK_DIR OUT_DIR, or "
                          'WORK_DIR/epoch_N.pth OUT_DIR') from None
    except (RuntimeError, OSError) as e:
        raise ExportError(str(e)) from None
    sd = _state_dict_of(ckpt, checkpoint)
    try:  # the loading rules of training / testing, plus: the complete mask state and an exact head
        check_state_dict(model, sd, need_masks=True, strict_head=True)
    except CheckpointMismatchError as e:
        raise ExportError(f'{e} (python tools/export.py WORK_DIR OUT_DIR uses the config dump of the run; config '
                          f'given: {cfg_name})') from None
    model.load_state_dict(sd, strict=True)
    model.eval()
    pr = model.pruner
    if not pr.frozen:
        soft = sum(not bool(m.frozen) for m in pr.masks)
        raise ExportError(
            f'the masks in {checkpoint} are not frozen ({soft} of {len(pr.masks)} still soft, saved at progress '
            f'{float(pr.progress):.2f} of the run, the schedule freezes at {pr.schedule.freeze:.2f}): a soft mask '
            'cannot be baked without changing the model. Export the checkpoint written at the end of training '
            '(<work_dir>/<config>_pruned.pth or the last epoch_N.pth), or resume training until the masks freeze')
    return model


# -- baking and shrinking --------------------------------------------------------------------------------
def param_count(sd_or_module) -> int:
    if isinstance(sd_or_module, nn.Module):
        return sum(p.numel() for p in sd_or_module.parameters())
    return sum(v.numel() for v in sd_or_module.values())


@torch.no_grad()
def compact_state_dict(model: nn.Module, round_to: int = 1,
                       example: Optional[torch.Tensor] = None) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Bake + shrink a deep copy of the masked ``model``. Returns (compact state dict without pruner state,
    info) where info holds the dense baked state dict, channels removed per set and mask statistics.
    ``round_to``: channel widths in multiples of it (:func:`~mmsemiprune.core.shrink.shrink`). ``example``: clips
    (N >= 2, (N, M, T, V, C)) on which the baked model runs once so that the classifier's constant input channels
    (producers all pruned) are folded into its bias and removed (``shrink``'s ``run``); None: they stay."""
    pr = model.pruner
    masked_zeros = {k: int((~m.mask).sum()) for k, m, _ in pr.items()}
    prunable_numel = {k: w.numel() for k, _, w in pr.items()}
    work = copy.deepcopy(model)
    bake_model(work)
    if hasattr(work, 'pruner'):
        sets = work.pruner.channel_sets
        del work.pruner
    else:
        sets = []
    dense_sd = {k: v.detach().clone() for k, v in work.state_dict().items()}
    dense_params = param_count(work)
    sizes = {cs.name: cs.size for cs in sets}
    run = None
    if example is not None:
        def run():
            LogitsModel(work).eval()(example)
    removed = shrink(work, sets, round_to=round_to, run=run)
    compact = {k: v.detach().clone() for k, v in work.state_dict().items()}
    remaining_zeros = {k: int((compact[k] == 0).sum()) for k in prunable_numel}
    info = dict(dense_sd=dense_sd, dense_params=dense_params, compact_params=param_count(work),
                channels={n: [sizes[n], sizes[n] - removed.get(n, 0)] for n in sizes},
                masked_zeros=masked_zeros, remaining_zeros=remaining_zeros, prunable_numel=prunable_numel)
    return compact, info


def exported_config(cfg, compact_shapes: Dict[str, str], meta: Optional[dict] = None,
                    work_dir: Optional[str] = None, graph_conv: str = 'matmul'):
    """Copy of ``cfg`` whose model is ``mmsemiprune.CompactRecognizerGCN`` with ``compact_shapes``; no pruner
    hook, nothing to load or resume; ``work_dir`` (where tools/test.py logs) replaced; ``graph_conv``: the
    formulation of ``unit_gcn`` it runs (:mod:`.graph_conv`)."""
    if graph_conv not in GRAPH_CONVS:
        raise ExportError(f'graph_conv={graph_conv!r}: choose one of {", ".join(GRAPH_CONVS)}')
    from mmengine.config import Config
    out = Config(copy.deepcopy(cfg._cfg_dict.to_dict()))
    m = dict(out.model)
    m.pop('prune_cfg', None)
    m['type'] = 'mmsemiprune.CompactRecognizerGCN'
    m['compact_shapes'] = dict(sorted(compact_shapes.items()))
    m['graph_conv'] = graph_conv  # 'matmul': ST-GCN(++)'s graph convolution without layout copies (.graph_conv)
    if meta:
        m['export_meta'] = meta
    out.model = m
    imports = out.get('custom_imports', {}) or {}
    mods = imports.get('imports', [])
    mods = [mods] if isinstance(mods, str) else list(mods)
    for name in ('mmsemiprune', 'mmsemiprune.export'):
        if name not in mods:
            mods.append(name)
    out.custom_imports = dict(imports=mods, allow_failed_imports=False)
    hooks = [h for h in (out.get('custom_hooks') or []) if 'SemiPruneHook' not in str(h.get('type', ''))]
    out.custom_hooks = hooks
    out.load_from = None
    out.resume = False
    out.pop('work_dir', None)
    if work_dir:
        out.work_dir = work_dir
    return out


def build_compact(model_cfg, state_dict, default_scope='mmaction') -> nn.Module:
    """Build the exported model dict and load ``state_dict`` (sparse or dense) strictly; eval mode."""
    model = build_model(model_cfg, default_scope)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


# -- inputs ------------------------------------------------------------------------------------------------
def synthetic_skeletons(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Realistic skeleton clips ``(N, M, T, V, C)``: for the 25-joint NTU layout with C=3, moving bodies from
    :func:`mmsemiprune.datasets.demo.synth_sequence` (metres, centred on the first person's spine like
    ``PreNormalize3D``; a second person stands 0.8 m to the side); otherwise smooth random trajectories."""
    N, M, T, V, C = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    out = np.zeros((N, M, T, V, C), np.float32)
    if V == 25 and C == 3:
        from ..datasets.demo import DEMO_CLASSES, BASE_LIMBS, synth_sequence
        for n in range(N):
            for m in range(M):
                limbs = {k: v * float(rng.uniform(0.9, 1.1)) for k, v in BASE_LIMBS.items()}
                label = int(rng.integers(len(DEMO_CLASSES))) if m == 0 or rng.random() < 0.5 else -1
                out[n, m] = synth_sequence(label, T, limbs, amp=float(rng.uniform(0.6, 1.2)),
                                           freq=float(rng.uniform(0.8, 2.0)), phase=float(rng.uniform(0, 6.28)),
                                           origin=(0.8 * m, 0.0, 3.0), rng=rng)
            out[n] -= out[n, 0, 0, 1].copy()  # centre on person 0's spine (frame 0)
    else:
        base = rng.normal(0, 0.3, (N, M, 1, V, C))
        walk = np.cumsum(rng.normal(0, 0.02, (N, M, T, V, C)), axis=2)
        out[:] = base + walk
    return torch.from_numpy(out)


def example_inputs(cfg, model, num: int = 8, shape: Optional[Sequence[int]] = None, source: str = 'auto',
                   seed: int = 0) -> Tuple[torch.Tensor, str]:
    """``(N, M, T, V, C)`` clips to check the export on: the config's test data through its pipeline when
    ``source`` is 'data' or 'auto' and the data exists, else :func:`synthetic_skeletons`."""
    why = ''
    if source in ('auto', 'data') and shape is None:
        try:
            x = _dataset_clips(cfg, num)
            return x, f'test data through the pipeline ({cfg.test_dataloader.dataset.get("ann_file", "?")})'
        except Exception as e:  # missing / unreadable data: fall back, say why
            if source == 'data':
                raise ExportError(f'cannot read test clips from the config ({type(e).__name__}: {str(e)[:200]}); '
                                  'create the data or use --inputs synthetic') from None
            why = f' (test data unavailable: {type(e).__name__})'
    if shape is None:
        bb = model.backbone
        V = getattr(getattr(bb, 'graph', None), 'num_node', 25)
        C = getattr(bb, 'in_channels', 3)
        shape = (num, 2, 100, V, C)
    return synthetic_skeletons(shape, seed), f'synthetic skeletons {tuple(int(s) for s in shape)}{why}'


def _dataset_clips(cfg, num: int) -> torch.Tensor:
    import mmsemiprune
    mmsemiprune.register_all()
    from mmaction.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmaction') or 'mmaction'):
        ds = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    clips = []
    for i in range(min(len(ds), num)):
        clips.append(ds[i]['inputs'].float())
        if sum(c.shape[0] for c in clips) >= num:
            break
    if not clips:
        raise ValueError('empty test set')
    return torch.cat(clips)[:num]


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    m = model if isinstance(model, LogitsModel) else LogitsModel(model)
    m.eval()
    return torch.cat([m(x[i:i + chunk]) for i in range(0, len(x), chunk)])


# -- counting ----------------------------------------------------------------------------------------------
@torch.no_grad()
def count_flops(model: nn.Module, x1: torch.Tensor) -> Dict[str, float]:
    """MACs of one clip by ``mmengine.analysis.FlopAnalyzer`` (total and by operator), counted on the stock
    graph convolution (:mod:`.graph_conv`; the matmul one gives the same total under other operator names)."""
    from mmengine.analysis import FlopAnalyzer
    m = model if isinstance(model, LogitsModel) else LogitsModel(model)
    m.eval()
    with warnings.catch_warnings(), using_graph_conv(m, 'stock'):
        warnings.simplefilter('ignore')
        fa = FlopAnalyzer(m, (x1, ))
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        total = float(fa.total())
        by_op = {k: float(v) for k, v in fa.by_operator().items()}
    return dict(total=total, by_operator=by_op)


@torch.no_grad()
def count_traffic(model: nn.Module, x1: torch.Tensor) -> int:
    """Bytes written by all ATen operators of one eager forward of ``model`` on ``x1`` (CPU), as it runs (its graph
    convolution formulation and memory format): Σ numel × element size over every operator's outputs, skipping
    outputs that alias an input without writing it (views); in-place and ``out=`` writes count.

    A CPU-countable proxy of memory traffic: on a GPU at large batches ST-GCN is memory-bound (BatchNorm, residual
    adds, activations, layout copies), and the exported model's eager speed-up over dense tracked dense / exported
    bytes within 4 % where the MACs ratio was 1.8-2.2× higher (bench/README.md). Work inside one kernel
    is not seen (a CUDA convolution's separate bias add is inside the CPU's convolution)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    total = [0]

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            rets = func._schema.returns
            for i, t in enumerate(tree_flatten(out)[0]):
                if isinstance(t, torch.Tensor):
                    info = rets[i].alias_info if i < len(rets) else None
                    if info is None or info.is_write:
                        total[0] += t.numel() * t.element_size()
            return out

    m = model if isinstance(model, LogitsModel) else LogitsModel(model)
    m.eval()
    with _Count():
        m(x1)
    return total[0]


@torch.no_grad()
def conv_positions(model: nn.Module, x1: torch.Tensor) -> Dict[str, int]:
    """{module name: output positions per clip} of every conv / linear (MACs = weight.numel() × positions
    for groups=1)."""
    m = model if isinstance(model, LogitsModel) else LogitsModel(model)
    pos, hooks = {}, []
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
            def hook(module, inp, out, name=name):
                if isinstance(module, nn.Linear):
                    pos[name] = out.numel() // out.shape[-1]
                else:
                    pos[name] = out.numel() // out.shape[1] * module.groups
            hooks.append(mod.register_forward_hook(hook))
    try:
        m.eval()
        with using_graph_conv(m, 'stock'):  # the matmul formulation calls no 1x1 conv module
            m(x1)
    finally:
        for h in hooks:
            h.remove()
    return pos


# -- ONNX / torch.export ----------------------------------------------------------------------------------
def export_onnx(model: nn.Module, x: torch.Tensor, path: str, opset: int = 17) -> str:
    """``torch.onnx.export`` of the class-score module, dynamic batch axis; the TorchScript-based exporter
    (``dynamo=False``; no onnxscript needed, and measured to give the same graph as the stock model), falling
    back to the dynamo exporter if that fails. Traced in the stock graph convolution (:mod:`.graph_conv`:
    onnxruntime runs it faster). Returns the exporter used."""
    m = LogitsModel(model).eval() if not isinstance(model, LogitsModel) else model.eval()
    xb = x[:2] if len(x) >= 2 else torch.cat([x, x])  # batch > 1 so that the batch size is not specialised
    with warnings.catch_warnings(), using_graph_conv(m, 'stock'):
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(m, (xb, ), path, dynamo=False, opset_version=opset, input_names=['keypoint'],
                              output_names=['cls_score'],
                              dynamic_axes={'keypoint': {0: 'batch'}, 'cls_score': {0: 'batch'}})
            return f'torch.onnx.export(dynamo=False, opset={opset})'
        except Exception as legacy_err:
            try:
                torch.onnx.export(m, (xb, ), path, dynamo=True, input_names=['keypoint'], output_names=['cls_score'],
                                  dynamic_shapes=({0: torch.export.Dim('batch')}, ))
                return 'torch.onnx.export(dynamo=True)'
            except Exception as e:
                raise ExportError(f'ONNX export failed: legacy exporter: {type(legacy_err).__name__}: '
                                  f'{str(legacy_err)[:200]}; dynamo exporter: {type(e).__name__}: {str(e)[:200]}')


def onnx_session(path: str, threads: Optional[int] = None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def run_onnx(path_or_session, x: torch.Tensor) -> torch.Tensor:
    s = onnx_session(path_or_session) if isinstance(path_or_session, str) else path_or_session
    name = s.get_inputs()[0].name
    return torch.from_numpy(s.run(None, {name: x.numpy()})[0])


def export_pt2(model: nn.Module, x: torch.Tensor, path: str):
    """``torch.export`` of the class-score module with a dynamic batch dim, saved with ``torch.export.save``."""
    m = LogitsModel(model).eval() if not isinstance(model, LogitsModel) else model.eval()
    xb = x[:2] if len(x) >= 2 else torch.cat([x, x])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ep = torch.export.export(m, (xb, ), dynamic_shapes=({0: torch.export.Dim('batch', min=1, max=4096)}, ))
        torch.export.save(ep, path)
    return ep


# -- the whole export ---------------------------------------------------------------------------------------
def _nbytes(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def export_pruned(cfg, checkpoint: str, out_dir: str, onnx: bool = False, torch_export: bool = False,
                  shape: Optional[Sequence[int]] = None, inputs: str = 'auto', trust: bool = False,
                  cfg_name: str = 'the config', num_check: int = 8, log=print, round_to: int = 1,
                  graph_conv: str = 'matmul') -> Dict:
    """Export (see module docstring): load and check, compact and verify, count, write. Writes into
    ``out_dir`` only after every check passed; returns the report dict (also written as ``report.json``).
    ``round_to``: channel widths in multiples of it (GPU alignment; 1 removes every unread channel);
    ``graph_conv``: what the exported config runs (:mod:`.graph_conv`; the exactness check runs it)."""
    t0 = time.time()
    masked = load_pruned_model(cfg, checkpoint, trust=trust, cfg_name=cfg_name)
    x, x_source = example_inputs(cfg, masked, num_check, shape, inputs)
    if x.dim() != 5:
        raise ExportError(f'check inputs must be (N, M, T, V, C), got shape {tuple(x.shape)}')
    c = _compact_and_verify(cfg, masked, x, checkpoint, cfg_name, out_dir, round_to, graph_conv)
    report = _count_report(c, masked, x, x_source, checkpoint, cfg_name)
    _write_export(c, report, out_dir, checkpoint, cfg_name, onnx, torch_export, x)
    report['seconds'] = round(time.time() - t0, 1)
    with open(osp.join(out_dir, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    return report


def _compact_and_verify(cfg, masked, x, checkpoint, cfg_name, out_dir, round_to=1, graph_conv='matmul') -> Dict:
    """Compact state dict, exported config and compact model; raises if its class scores on ``x`` differ
    from the masked model's by more than the tolerance. Returns the pieces as a dict."""
    rep_pr = masked.pruner.report()
    ref = logits(masked, x)
    compact_sd, info = compact_state_dict(masked, round_to=round_to, example=x)
    dense_sd = info['dense_sd']
    compact_shapes = {k: format_shape(v.shape) for k, v in compact_sd.items()
                      if torch.is_tensor(v) and tuple(v.shape) != tuple(dense_sd[k].shape)}
    meta = dict(source_config=cfg_name, source_checkpoint=osp.basename(checkpoint), mode=rep_pr['mode'],
                target_rate=float(rep_pr['target_rate']), rate_params=float(rep_pr['rate_params']))
    out_cfg = exported_config(cfg, compact_shapes, meta,
                              work_dir=f'./work_dirs/{osp.basename(osp.normpath(out_dir))}_exported',
                              graph_conv=graph_conv)
    with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
        warnings.simplefilter('ignore')
        stored = sparse_state_dict(compact_sd)
    model = build_compact(out_cfg.model, stored, out_cfg.get('default_scope', 'mmaction'))
    err_pt = _err(logits(model, x), ref)
    scale = max(1.0, float(ref.abs().max()))
    if not err_pt <= TOL * scale:
        raise ExportError(f'the compact model differs from the masked model by {err_pt:.3g} (tolerance '
                          f'{TOL * scale:.3g}); this is a bug in the export, please report it with the config')
    return dict(rep_pr=rep_pr, ref=ref, compact_sd=compact_sd, info=info, dense_sd=dense_sd, meta=meta,
                out_cfg=out_cfg, stored=stored, model=model, err_pt=err_pt, scale=scale)


def _count_report(c: Dict, masked, x, x_source, checkpoint, cfg_name) -> Dict:
    """The report dict: parameters, MACs (mmengine.analysis) dense / masked / exported, structural share,
    exactness."""
    info, dense_sd, rep_pr, out_cfg = c['info'], c['dense_sd'], c['rep_pr'], c['out_cfg']
    x1 = x[:1]
    dense_model = build_compact(dict(out_cfg.model, compact_shapes=None), dense_sd,
                                out_cfg.get('default_scope', 'mmaction'))
    flops_dense = count_flops(dense_model, x1)
    flops_exp = count_flops(c['model'], x1)
    traffic_dense, traffic_exp = count_traffic(dense_model, x1), count_traffic(c['model'], x1)
    pos = conv_positions(dense_model, x1)
    conv_dense = sum(dense_sd[f'{n}.weight'].numel() * p for n, p in pos.items())
    zero_macs = 0
    for key, z in info['masked_zeros'].items():
        mod, pname = key.rsplit('.', 1)
        if pname == 'weight' and mod in pos:
            zero_macs += z * pos[mod]
    masked_zeros = sum(info['masked_zeros'].values())
    pruned_removed = masked_zeros - sum(info['remaining_zeros'].values())
    dense_params, exp_params = info['dense_params'], info['compact_params']
    report = dict(
        config=cfg_name, checkpoint=checkpoint, seconds=None,
        mode=rep_pr['mode'], target_rate=float(rep_pr['target_rate']),
        check_inputs=dict(shape=list(x.shape), source=x_source),
        params=dict(dense=dense_params, masked=dense_params - masked_zeros, exported=exp_params,
                    exported_nonzero=exp_params - sum(info['remaining_zeros'].values()),
                    prunable=sum(info['prunable_numel'].values()), rate_prunable=float(rep_pr['rate_params'])),
        flops=dict(counter='mmengine.analysis.FlopAnalyzer, MACs per clip (1, M, T, V, C)',
                   dense=flops_dense['total'], masked=flops_dense['total'] - zero_macs, exported=flops_exp['total'],
                   ratio_dense_over_exported=flops_dense['total'] / max(flops_exp['total'], 1.0),
                   ratio_dense_over_masked=flops_dense['total'] / max(flops_dense['total'] - zero_macs, 1.0),
                   conv_linear_dense_by_hooks=float(conv_dense),
                   conv_linear_dense_by_mmengine=flops_dense['by_operator'].get('conv', 0.0) +
                   flops_dense['by_operator'].get('linear', 0.0),
                   by_operator_dense=flops_dense['by_operator'], by_operator_exported=flops_exp['by_operator']),
        traffic=dict(counter='bytes written by all operators of one eager forward, per clip (count_traffic), '
                     'dense and exported in the exported graph convolution', graph_conv=graph_conv_of(c['model']),
                     dense=traffic_dense, exported=traffic_exp,
                     ratio_dense_over_exported=traffic_dense / max(traffic_exp, 1)),
        structural=dict(share_realized=pruned_removed / max(masked_zeros, 1),
                        share_predicted=float(rep_pr['structural_share']),
                        pruned_entries=masked_zeros, pruned_entries_removed=pruned_removed,
                        channels={k: v for k, v in info['channels'].items()},
                        channel_sets=len(info['channels'])),
        exactness=dict(tolerance=TOL * c['scale'], tolerance_rule='1e-4 * max(1, max |class score|)',
                       logits_max_abs=float(c['ref'].abs().max()), pytorch_max_abs_err=c['err_pt']),
        files={})
    if not info['channels']:
        report['structural']['note'] = (f'{type(masked.backbone).__name__} declares no channel sets: masks are baked, '
                                        'no channel is physically removed (entry-wise zeros stored sparsely)')
    return report


def _write_export(c: Dict, report: Dict, out_dir, checkpoint, cfg_name, onnx, torch_export, x) -> None:
    """Write model.pth, config.py and (optionally) model.onnx / model.pt2, checking each against the masked
    model's class scores; fills ``report['files']`` and ``report['exactness']``."""
    os.makedirs(out_dir, exist_ok=True)
    pth = osp.join(out_dir, 'model.pth')
    torch.save(dict(state_dict=c['stored'], meta=dict(mmsemiprune_export=c['meta'])), pth)
    cfg_path = osp.join(out_dir, 'config.py')
    c['out_cfg'].dump(cfg_path)
    with open(cfg_path, encoding='utf-8') as f:
        body = f.read()
    with open(cfg_path, 'w', encoding='utf-8') as f:
        f.write(f'# Compact model exported by tools/export.py from {cfg_name} + {osp.basename(checkpoint)}.\n'
                '# python tools/test.py <this file> <model.pth next to it>\n' + body)
    files = dict(source_checkpoint=os.path.getsize(checkpoint),
                 dense_state_dict=_nbytes(dict(state_dict=c['dense_sd'])),
                 exported_dense_format=_nbytes(dict(state_dict=c['compact_sd'])),
                 model_pth=os.path.getsize(pth))
    model, ref = c['model'], c['ref']
    if onnx:
        opath = osp.join(out_dir, 'model.onnx')
        report['onnx_exporter'] = export_onnx(model, x, opath)
        report['exactness']['onnxruntime_max_abs_err'] = _err(run_onnx(opath, x), ref)
        files['model_onnx'] = sum(os.path.getsize(osp.join(out_dir, f)) for f in os.listdir(out_dir)
                                  if f.startswith('model.onnx'))
    if torch_export:
        ppath = osp.join(out_dir, 'model.pt2')
        export_pt2(model, x, ppath)
        ep = torch.export.load(ppath)
        with torch.no_grad():
            o = torch.cat([ep.module()(x[i:i + 16]) for i in range(0, len(x), 16)])
        report['exactness']['torch_export_max_abs_err'] = _err(o, ref)
        files['model_pt2'] = os.path.getsize(ppath)
    report['files'] = files
    report['exactness']['ok'] = all(v <= report['exactness']['tolerance'] for k, v in report['exactness'].items()
                                    if k.endswith('_err'))


def _mb(b):
    return f'{b / 2**20:.2f} MB'


def format_export_report(r: Dict) -> str:
    p, f, s, e, fl = r['params'], r['files'], r['structural'], r['exactness'], r['flops']
    L = [f'export of {r["checkpoint"]} ({r["mode"]}, target rate {r["target_rate"]})',
         f'{"":<22}{"dense":>14}{"masked":>14}{"exported":>14}',
         f'{"params":<22}{p["dense"]:>14,}{p["masked"]:>14,}{p["exported"]:>14,}   '
         f'(exported non-zero {p["exported_nonzero"]:,})',
         f'{"MACs / clip":<22}{fl["dense"] / 1e6:>13.1f}M{fl["masked"] / 1e6:>13.1f}M{fl["exported"] / 1e6:>13.1f}M   '
         f'(dense/exported = {fl["ratio_dense_over_exported"]:.2f}x, '
         f'dense/masked = {fl["ratio_dense_over_masked"]:.2f}x)',
         f'file size: dense state dict {_mb(f["dense_state_dict"])}, exported model.pth {_mb(f["model_pth"])} '
         f'(compact dense-format {_mb(f["exported_dense_format"])}, input checkpoint {_mb(f["source_checkpoint"])})'
         + (f', model.onnx {_mb(f["model_onnx"])}' if 'model_onnx' in f else '')
         + (f', model.pt2 {_mb(f["model_pt2"])}' if 'model_pt2' in f else ''),
         f'structural share of the pruning: realized {s["share_realized"]:.3f} '
         f'({s["pruned_entries_removed"]:,} of {s["pruned_entries"]:,} pruned weights physically removed), '
         f'predicted by the pruner report {s["share_predicted"]:.3f}']
    if 'traffic' in r:  # older reports have none
        t = r['traffic']
        L.insert(3, f'{"memory traffic / clip":<22}{t["dense"] / 1e6:>13.1f}M{"":>14}{t["exported"] / 1e6:>13.1f}M   '
                    f'(bytes written; dense/exported = {t["ratio_dense_over_exported"]:.2f}x: a memory-bound GPU '
                    'batch speeds up by about this, not by the MACs ratio)')
    ch = [f'{k}: {a}->{b}' for k, (a, b) in s['channels'].items() if a != b]
    L.append('channels removed: ' + (', '.join(ch) if ch else 'none') + ('' if 'note' not in s else f' [{s["note"]}]'))
    ex = [f'PyTorch {e["pytorch_max_abs_err"]:.2e}']
    if 'onnxruntime_max_abs_err' in e:
        ex.append(f'onnxruntime {e["onnxruntime_max_abs_err"]:.2e}')
    if 'torch_export_max_abs_err' in e:
        ex.append(f'torch.export {e["torch_export_max_abs_err"]:.2e}')
    L.append(f'exactness vs masked model, max |Δ class score| (|scores| ≤ {e["logits_max_abs"]:.3g}, tol '
             f'{e["tolerance"]:g}): ' + ', '.join(ex) + (' OK' if e['ok'] else ' FAILED') +
             f'  on {r["check_inputs"]["source"]}, {r["check_inputs"]["shape"][0]} clips')
    return '\n'.join(L)
