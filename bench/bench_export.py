"""CPU latency of the dense vs the exported (baked + channel-shrunk) GCN (ST-GCN by default), in PyTorch and
onnxruntime, and the training-time overhead of the pruning parametrization.

    python bench/bench_export.py                                  # full: 3 modes x 4 rates, batch 1 and 16
    python bench/bench_export.py --rates 0.9 --reps 3             # quick (a few minutes on 2 busy cores)
    python bench/bench_export.py --modes structured --batches 16 --runtimes ort --no-train-bench
    python bench/bench_export.py --config configs/ctrgcn_semiprune_ntu60.py --targets attention=1 \
        --modes structured semi --rates 0.9 --batches 1 4 --reps 3 --no-train-bench   # CTR-GCN (AAGCN: aagcn_...)

Model: the ``model`` of ``configs/stgcn_semiprune_ntu60.py`` (stock MMAction2 ST-GCN, NTU-60 head); input one
NTU-size clip per batch row: 2 persons x 100 frames x 25 joints x 3. The dense baseline is the stock
``RecognizerGCN`` with the same weights; each pruned variant is ``SemiPruneRecognizerGCN`` at (mode, rate) whose
masks are frozen by ``pruner.freeze()`` on those (randomly initialised, MMEngine-initialised) weights, or after
``--train-iters`` SGD steps on synthetic skeletons with the pruning schedule. In 'semi' mode on untrained
weights every gate logit is 0, so the hard gates pick the entry-wise mask everywhere: semi at init is the
unstructured mask (say so in any table). The exported model is what ``tools/export.py`` writes
(``mmsemiprune.CompactRecognizerGCN``); its class scores are checked against the masked model.

Timing: warm-up, then ``--reps`` rounds in which every model runs once in turn (dense included), so that the
load of a shared machine drifts equally over all of them; medians per model; speedup = dense median / model
median, printed next to the FLOPs ratio dense / exported (MACs by mmengine's FlopAnalyzer), the speedup a dense
kernel could reach at best. A variant whose exported shapes equal the dense ones (no channel removed, e.g.
at low rates) is the same graph as the dense model: it is not timed again (shown as '=dense'), and a variant
whose exported shapes equal an earlier variant's (semi = unstructured at init) reuses its timing (marked '*'),
unless ``--time-all``: dense kernels take the same time whatever the weight values (checked: a dense-shaped
model with 95 % zero weights ran 5.73 s vs 5.45 s dense, within the noise). Odd rounds run the models in
reverse order. Threads: ``--threads`` for both PyTorch and onnxruntime (default 1: on 2 cores shared
with other jobs, multi-threaded small kernels mostly measure the other jobs).

GPU (``--device cuda``): models and input on the GPU, every timed call ends with
``torch.cuda.synchronize()``, cuDNN autotuning on, default batches 1 and 64 and runtimes ``torch`` (eager),
``compile`` (``torch.compile(mode='reduce-overhead')``: CUDA graphs, against the launch-bound batch 1; its scores
are checked against eager) and ``ort`` (onnxruntime's CUDA provider when the installed build has it, else
skipped with a message; its times include the input's host-to-device copy). ``--channels-last`` converts the
weights' memory format. The exported ``config.py`` / ``model.onnx`` are the CPU-loadable files of
``tools/export.py``: nothing here changes them.

    python bench/bench_export.py --device cuda --rates 0.9 0.95 --modes structured semi --reps 20

Graph convolution (``--graph-conv``): the PyTorch runtimes run every model in MMAction2's einsum formulation
(``stock``, the default, in which the recorded tables were measured) or as two matrix products without layout
copies (``matmul``, :mod:`mmsemiprune.export.graph_conv`, what the exported ``config.py`` runs); with ``matmul``
each model is also timed in the stock formulation in the same rounds (``<name>-stock``) and the paired
stock / matmul ratios are printed (eager only: a ``MatmulUnitGCN`` being compiled traces the stock forward, which
Inductor compiled faster, so compiled twins would be the same graph, and onnxruntime gets the stock graph); the
eager runtime stops if the two formulations' scores differ by more than 1e-3 (float16: 1e-2) × max(1, max |score|).

Training overhead: seconds per ``model.train_step`` (data preprocessor + forward + loss + backward + SGD step,
what MMEngine's loop runs each iteration) of the pruned model (semi, rate 0.9) during the soft phase (masks
recomputed and thresholds re-solved every step, progress 0.5) and after freezing, over the stock
``RecognizerGCN``, as ratios.

Memory traffic (``traffic x`` in the table): the bytes every dispatched operator writes in one eager forward (views
excluded, in-place writes included; ``mmsemiprune.export.exporter.count_traffic``, counted on the CPU at batch 1
in the ``--graph-conv`` formulation and ``--channels-last`` format), dense / exported. On a GPU at large batches
ST-GCN is memory-bound (BatchNorm, residual adds, activations, layout copies), so eager speed-ups track this ratio
rather than the FLOPs ratio: a CPU-countable proxy of what a GPU can gain (a fused kernel's internal traffic is not
seen: convolution bias adds, separate kernels on CUDA, are inside the CPU's convolution).
"""
import argparse
import contextlib
import copy
import json
import logging
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (ROOT, osp.join(ROOT, 'bench')):  # the plugin; bench_train's profiling helper
    if _p not in sys.path:
        sys.path.insert(0, _p)
warnings.filterwarnings('ignore')

import torch  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--config', default=osp.join(ROOT, 'configs/stgcn_semiprune_ntu60.py'),
                   help='config whose model is benchmarked (default: the stock NTU-60 ST-GCN)')
    p.add_argument('--modes', nargs='+', default=['semi', 'structured', 'unstructured'])
    p.add_argument('--rates', nargs='+', type=float, default=[0.5, 0.8, 0.9, 0.95])
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'],
                   help='where the models run (cuda: timings bracketed by torch.cuda.synchronize(), cuDNN autotuning '
                        'on, onnxruntime with its CUDA provider, default batches 1 and 64)')
    p.add_argument('--batches', nargs='+', type=int, default=None, help='default: 1 16 (cpu), 1 64 (cuda)')
    p.add_argument('--runtimes', nargs='+', choices=['torch', 'ort', 'compile'], default=None,
                   help="torch: eager; ort: onnxruntime; compile: torch.compile (mode 'reduce-overhead' on cuda, i.e. "
                        "CUDA graphs against launch-bound small batches; default mode on cpu). Default: torch ort "
                        "(cpu), torch compile ort (cuda)")
    p.add_argument('--channels-last', action='store_true', help='channels-last memory format (cuda: may pick faster '
                   'cuDNN kernels for the (N, C, T, V) convolutions)')
    p.add_argument('--graph-conv', default='stock', choices=['stock', 'matmul'],
                   help="PyTorch runtimes: MMAction2's einsum graph convolution, or the same as two matrix products "
                        'without layout copies (mmsemiprune.export.graph_conv), for dense and exported alike; with '
                        "matmul every model is timed in the stock one too, in the same rounds, as '<name>-stock' "
                        '(onnxruntime always gets the stock graph)')
    p.add_argument('--compile-mode', default=None,
                   choices=['default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'],
                   help="torch.compile mode of the compile runtime (default: 'reduce-overhead' on cuda, 'default' "
                        "on cpu; 'max-autotune' also benchmarks Triton / cuDNN kernels per shape: slower to compile)")
    p.add_argument('--inductor-freezing', action='store_true',
                   help="compile runtime: torch._inductor.config.freezing = True (weights become constants: conv + "
                        "BatchNorm folding and constant folding; inference only)")
    p.add_argument('--half', action='store_true',
                   help='cuda: dense and exported models and inputs in float16 (torch and compile runtimes; ort is '
                        'skipped: the ONNX export is float32)')
    p.add_argument('--kernel-table', type=int, default=0, metavar='N',
                   help='after timing, profile 5 eager calls of dense and each timed variant at the largest batch '
                        '(torch.profiler): device-busy (cuda) or host ms per call and the N costliest operators / '
                        'kernels, in the --channels-last / --half format')
    p.add_argument('--reps', type=int, default=5, help='timed rounds (median over them)')
    p.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    p.add_argument('--threads', type=int, default=1, help='intra-op threads for PyTorch and onnxruntime')
    p.add_argument('--frames', type=int, default=100)
    p.add_argument('--persons', type=int, default=2)
    p.add_argument('--train-iters', type=int, default=0,
                   help='SGD steps (pruning schedule, synthetic skeletons) before freezing; 0: freeze at init')
    p.add_argument('--time-all', action='store_true', help='also time variants whose graph equals the dense one')
    p.add_argument('--no-train-bench', action='store_true', help='skip the training-overhead measurement')
    p.add_argument('--train-batch', type=int, default=4, help='clips per training iteration')
    p.add_argument('--train-reps', type=int, default=5)
    p.add_argument('--train-rate', type=float, default=0.9)
    p.add_argument('--round-to', type=int, default=1, metavar='K',
                   help='exported channel widths in multiples of K (tools/export.py --round-to; GPU alignment)')
    p.add_argument('--targets', nargs='+', default=[], metavar='ROLE=0|1', type=_role,
                   help="override prune_cfg.targets roles of the config, e.g. attention=1: AAGCN's conv_a / conv_b and "
                        "CTR-GCN's conv1 / conv2 / conv4 pruned too, so that their block streams can shrink")
    p.add_argument('--json', help='also write all numbers here')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def _role(text):
    from mmsemiprune.models.prunable import ROLES
    role, sep, val = text.partition('=')
    if not sep or role not in ROLES or val not in ('0', '1'):
        raise argparse.ArgumentTypeError(f'--targets {text!r}: write ROLE=1 or ROLE=0 with ROLE one of '
                                         f'{", ".join(ROLES)} (e.g. --targets attention=1)')
    return role, val == '1'


def log(*a):
    print(*a, flush=True)


def quiet_mmengine():
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)


# -- models ---------------------------------------------------------------------------------------------------
def dense_cfg(model_cfg):
    d = copy.deepcopy(dict(model_cfg))
    d.pop('prune_cfg', None)
    d['type'] = 'RecognizerGCN'
    return d


def pruned_cfg(model_cfg, mode, rate):
    d = copy.deepcopy(dict(model_cfg))
    d['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
    d['prune_cfg'] = dict(d.get('prune_cfg') or {}, target_rate=rate, mode=mode)
    return d


def init_weights(model, cfg):
    """MMEngine initialisation in the config's registry scope (AAGCN's 'ConvBranch' initialiser is MMAction2's)."""
    import mmaction.engine  # noqa: F401  (registers MMAction2's weight initialisers)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmaction') or 'mmaction'):
        model.init_weights()


def brief_train(model, iters, batch, shape, seed):
    """``iters`` SGD steps with the pruning schedule on synthetic skeletons and random labels (the schedule
    freezes the masks at 80 % of the steps)."""
    from mmsemiprune.export.exporter import synthetic_skeletons
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    ncls = model.cls_head.num_classes
    model.train()
    for it in range(iters):
        model.pruner.set_progress(it / iters)
        x = synthetic_skeletons((batch, ) + tuple(shape[1:]), seed=seed * 1000 + it)
        y = torch.randint(0, ncls, (batch, ), generator=g)
        loss = torch.nn.functional.cross_entropy(model.cls_head(model.backbone(x)), y) + model.pruner.budget_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def build_variants(args, cfg, shape):
    from mmsemiprune.export.compact import format_shape
    from mmsemiprune.export.exporter import (build_compact, build_model, compact_state_dict, count_flops,
                                             exported_config, logits, synthetic_skeletons)
    torch.manual_seed(args.seed)
    dense = build_model(dense_cfg(cfg.model))
    init_weights(dense, cfg)
    dense.eval()
    dense_sd = dense.state_dict()
    x1 = synthetic_skeletons((1, ) + tuple(shape[1:]), seed=1)
    xc = synthetic_skeletons((2, ) + tuple(shape[1:]), seed=2)
    f_dense = count_flops(dense, x1)['total']
    p_dense = sum(p.numel() for p in dense.parameters())
    b_dense = bytes_written(dense, x1, args.graph_conv, args.channels_last)
    log(f'dense: {p_dense:,} params, {f_dense / 1e9:.3f} GMACs per clip {tuple(shape[1:])}, operators write '
        f'{b_dense / 1e6:.1f} MB per clip ({args.graph_conv} graph convolution)')
    variants = []
    for mode in args.modes:
        for rate in args.rates:
            t0 = time.time()
            model = build_model(pruned_cfg(cfg.model, mode, rate))
            missing, unexpected = model.load_state_dict(dense_sd, strict=False)
            assert not unexpected and all('_psi.' in k or k.startswith('pruner.') for k in missing)
            model.eval()
            model.profile(x1[:, None])
            if args.train_iters > 0:
                brief_train(model, args.train_iters, args.train_batch, shape, args.seed)
            if not model.pruner.frozen:
                model.pruner.freeze()
            rep = model.pruner.report()
            gate = statistics.mean(L['gate_group_share'] for L in rep['layers'])
            ref = logits(model, xc)
            csd, info = compact_state_dict(model, round_to=args.round_to, example=xc)
            shapes = {k: format_shape(v.shape) for k, v in csd.items() if tuple(v.shape) != tuple(dense_sd[k].shape)}
            ocfg = exported_config(cfg, shapes)
            compact = build_compact(ocfg.model, csd)
            err = float((logits(compact, xc) - ref).abs().max())
            f_exp = count_flops(compact, x1)['total']
            b_exp = bytes_written(compact, x1, args.graph_conv, args.channels_last)
            pruned = sum(info['masked_zeros'].values())
            removed = pruned - sum(info['remaining_zeros'].values())
            sig = tuple(sorted(shapes.items()))
            twin = next((u['name'] for u in variants if u['signature'] == sig), None)
            v = dict(name=f'{mode}@{rate}', mode=mode, rate=rate, achieved=rep['rate_params'], gate_group_share=gate,
                     signature=sig, twin=twin,
                     structural_realized=removed / max(pruned, 1), structural_predicted=rep['structural_share'],
                     params_exported=info['compact_params'], flops_exported=f_exp, flops_ratio=f_dense / f_exp,
                     bytes_exported=b_exp, traffic_ratio=b_dense / b_exp,
                     same_graph=not shapes, max_abs_err=err, logits_max=float(ref.abs().max()), model=compact)
            variants.append(v)
            log(f'{v["name"]:<18} achieved {v["achieved"]:.3f}  gate->group {gate:.2f}  structural '
                f'{v["structural_realized"]:.3f} (pred {v["structural_predicted"]:.3f})  params {p_dense:,} -> '
                f'{v["params_exported"]:,}  MACs x{v["flops_ratio"]:.2f}  traffic x{v["traffic_ratio"]:.2f}  '
                f'|err| {err:.1e}  ({time.time() - t0:.0f} s)')
            del model
    base = dict(params=p_dense, flops=f_dense, bytes=b_dense)
    if args.graph_conv != 'stock':  # the stock dense model, what the '-stock' twins and MMAction2 run
        base['bytes_stock'] = bytes_written(dense, x1, 'stock', args.channels_last)
        log(f'dense in the stock formulation: operators write {base["bytes_stock"] / 1e6:.1f} MB per clip')
    return dense, base, variants


# -- memory traffic -----------------------------------------------------------------------------------------
def bytes_written(module, x, graph_conv='stock', channels_last=False) -> int:
    """:func:`mmsemiprune.export.exporter.count_traffic` of ``module`` on ``x`` in the timed models' formulation and
    format (a converted copy; ``module`` is left as it is)."""
    from mmsemiprune.export.exporter import count_traffic
    return count_traffic(on_device(module, 'cpu', channels_last, False, graph_conv), x)


# -- timing ---------------------------------------------------------------------------------------------------
def on_device(module, device, channels_last=False, half=False, graph_conv='stock'):
    """``module`` itself on the CPU in its own format, else a copy moved / converted (``.to`` works in place, and
    the CPU-side model is still needed by the other runtimes); ``half``: in float16; ``graph_conv``: the
    copy's ``unit_gcn`` formulation (:func:`mmsemiprune.export.graph_conv.set_graph_conv`)."""
    from mmsemiprune.export.graph_conv import graph_conv_of, set_graph_conv
    if device == 'cpu' and not channels_last and not half and graph_conv_of(module) in (graph_conv, 'none'):
        return module
    m = copy.deepcopy(module).to(device)
    set_graph_conv(m, graph_conv)
    if half:
        m = m.half()
    return m.to(memory_format=torch.channels_last) if channels_last else m


def make_runner(runtime, module, tmpdir, name, threads, example, device='cpu', channels_last=False,
                compile_mode=None, half=False, freezing=False, graph_conv='stock'):
    """A callable x -> class scores that has finished on return (CUDA: synchronised), or None with a message when
    the runtime is unavailable here (e.g. no CUDA provider in this onnxruntime build). ``freezing``: the compile
    runtime compiles (at each new batch size: ``dynamic=False``) with ``torch._inductor.config.freezing``."""
    from mmsemiprune.export import LogitsModel
    from mmsemiprune.export.exporter import export_onnx
    cuda = device == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if runtime in ('torch', 'compile'):
        m = LogitsModel(on_device(module, device, channels_last, half, graph_conv)).eval()
        if runtime == 'compile':
            mode = compile_mode or ('reduce-overhead' if cuda else 'default')
            m = torch.compile(m, mode=None if mode == 'default' else mode, dynamic=False)

        if runtime == 'compile' and freezing:
            import torch._inductor.config as inductor_config
            freeze_ctx = inductor_config.patch(freezing=True)  # read when a graph compiles, under inference_mode
        else:
            freeze_ctx = contextlib.nullcontext()

        def run(x):
            with torch.inference_mode(), freeze_ctx:
                out = m(x)
            sync()
            return out
        return run
    if half:
        log('ort: --half times PyTorch runtimes only (the ONNX export is float32): not timed')
        return None
    import onnxruntime as ort
    providers = ['CUDAExecutionProvider', 'CPUExecutionProvider'] if cuda else ['CPUExecutionProvider']
    if cuda and 'CUDAExecutionProvider' not in ort.get_available_providers():
        log(f'ort: no CUDAExecutionProvider in this onnxruntime ({ort.get_available_providers()}): not timed')
        return None
    path = osp.join(tmpdir, f'{name}.onnx')
    export_onnx(LogitsModel(module).eval(), example, path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_cpu_mem_arena = False  # a dozen sessions at batch 16 would otherwise each keep an arena
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=providers)
    iname = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {iname: x.detach().cpu().numpy()})[0]  # ort copies to and from the device itself
    return run


_STOCK = '-stock'  # --graph-conv matmul: the name suffix of a model's run in the stock formulation


def _graph_conv_of_name(name, args):
    """The ``unit_gcn`` formulation a timed model runs in: the stock one for its '-stock' twin."""
    return 'stock' if name.endswith(_STOCK) else args.graph_conv


def kernel_tables(args, dense, variants, shape):
    """Where an eager call's time goes, per model: torch.profiler over 5 calls of the eager runner at the largest
    batch (kernels on CUDA, operators' self CPU time on the CPU)."""
    from bench_train import profile_calls  # (bench/ is on sys.path: this script's folder)

    from mmsemiprune.export.exporter import synthetic_skeletons
    cuda = args.device == 'cuda'
    b = max(args.batches)
    x = synthetic_skeletons((b, ) + tuple(shape[1:]), seed=4).to(args.device)
    if args.half:
        x = x.half()
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    out = {}
    models = [('dense', dense)] + [(v['name'], v['model']) for v in variants if not v['same_graph']]
    if args.graph_conv != 'stock':
        models.append(('dense' + _STOCK, dense))
    for n, m in models:
        run = make_runner('torch', m, None, n, args.threads, x, args.device, args.channels_last, half=args.half,
                          graph_conv=_graph_conv_of_name(n, args))
        for _ in range(3):  # warm-up (cuDNN autotuning)
            run(x)
        ka, busy, host = profile_calls(lambda: run(x), 5, cuda)
        out[n] = busy if cuda else host
        log(f'\n### {n}, eager, batch {b}: {"device busy" if cuda else "host (self CPU)"} {out[n]:.2f} ms per call')
        log(ka.table(sort_by=key, row_limit=args.kernel_table, max_name_column_width=60))
    return out


def allow_recompiles(n: int) -> int:
    """Let dynamo keep ``n`` compiled graphs of one function: every timed model is a ``LogitsModel`` whose
    ``forward`` is one code object, and each (model, batch) is another graph of it. At torch's default limit (8)
    the ninth falls back to eager without an error (measured on an H200: a 6-model run's compiled batch-64
    column timed eager models). Never lowers the limit; returns it."""
    import torch._dynamo.config as dcfg
    name = 'recompile_limit' if hasattr(dcfg, 'recompile_limit') else 'cache_size_limit'
    setattr(dcfg, name, max(getattr(dcfg, name), int(n)))
    return getattr(dcfg, name)


def _check_scores(got, ref, half: bool, what: str) -> None:
    """Raise ``what`` unless |got − ref| ≤ 1e-3 (float16: 1e-2) × max(1, max |ref|)."""
    err = float((got - ref).abs().max())
    if err > (1e-2 if half else 1e-3) * max(1.0, float(ref.abs().max())):
        raise RuntimeError(f'{what}: |err| {err:.2e}')


def time_all(args, dense, variants, shape):
    from mmsemiprune.export import LogitsModel
    from mmsemiprune.export.exporter import synthetic_skeletons
    timed = [('dense', dense)] + [(v['name'], v['model']) for v in variants
                                  if args.time_all or (not v['same_graph'] and v['twin'] is None)]
    if args.graph_conv != 'stock':  # every model in the stock formulation too: what the formulation alone gains
        timed += [(n + _STOCK, m) for n, m in timed]
    if 'compile' in args.runtimes:
        allow_recompiles(len(timed) * len(args.batches) + 8)
    results = {}  # (runtime, batch) -> {name: median seconds}
    example = synthetic_skeletons((2, ) + tuple(shape[1:]), seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in args.runtimes:
            t0 = time.time()
            # onnxruntime always runs the stock graph (export traces it), and a compiled MatmulUnitGCN traces the
            # stock forward: there a '-stock' twin would time the same graph again
            wanted = [(n, m) for n, m in timed if not (runtime in ('ort', 'compile') and n.endswith(_STOCK))]
            runners = []
            for n, m in wanted:  # a runtime this machine lacks says so once and is skipped
                run = make_runner(runtime, m, tmp, n.replace('@', '_'), args.threads, example, args.device,
                                  args.channels_last, args.compile_mode, args.half, args.inductor_freezing,
                                  _graph_conv_of_name(n, args))
                if run is None:
                    break
                runners.append((n, run))
            if len(runners) < len(wanted):
                continue
            if runtime == 'ort':
                log(f'exported {len(runners)} ONNX models in {time.time() - t0:.0f} s')
            for b in args.batches:
                x = synthetic_skeletons((b, ) + tuple(shape[1:]), seed=4).to(args.device)
                if args.half:
                    x = x.half()
                times = {n: [] for n, _ in runners}
                t0 = time.time()
                for r in range(args.warmup + args.reps):
                    for n, run in (runners if r % 2 == 0 else runners[::-1]):  # cancel position effects
                        t = time.perf_counter()
                        run(x)
                        dt = time.perf_counter() - t
                        if r >= args.warmup:
                            times[n].append(dt)
                med = {n: statistics.median(ts) for n, ts in times.items()}
                results[(runtime, b)] = dict(median=med, all=times)
                run_of = dict(runners)
                if runtime == 'compile':  # the compiled graph must give the eager model's scores
                    for n, m in wanted:
                        with torch.inference_mode():
                            ref = LogitsModel(on_device(m, args.device, half=args.half)).eval()(x)
                        _check_scores(torch.as_tensor(run_of[n](x)).to(ref.device), ref, args.half,
                                      f'torch.compile changed the scores of {n}')
                if runtime == 'torch' and args.graph_conv != 'stock':  # each formulation must give the same scores
                    for n, _ in timed:
                        if not n.endswith(_STOCK):
                            _check_scores(torch.as_tensor(run_of[n](x)).float(),
                                          torch.as_tensor(run_of[n + _STOCK](x)).float(), args.half,
                                          f'--graph-conv {args.graph_conv} changed the scores of {n}')
                d = sorted(times['dense'])
                log(f'{runtime} batch {b}: dense {med["dense"] * 1e3:.1f} ms (median of {args.reps}, range '
                    f'{d[0] * 1e3:.0f}-{d[-1] * 1e3:.0f} ms; {time.time() - t0:.0f} s for all models)')
            del runners
    return results


# -- training overhead -----------------------------------------------------------------------------------------
def train_overhead(args, cfg, shape):
    from mmaction.structures import ActionDataSample
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from mmsemiprune.export.exporter import build_model, synthetic_skeletons
    torch.manual_seed(args.seed)
    dense = build_model(dense_cfg(cfg.model))
    init_weights(dense, cfg)
    pruned = build_model(pruned_cfg(cfg.model, 'semi', args.train_rate))
    pruned.load_state_dict(dense.state_dict(), strict=False)
    frozen = copy.deepcopy(pruned)
    B = args.train_batch
    x = synthetic_skeletons((B, ) + tuple(shape[1:]), seed=7)
    ncls = dense.cls_head.num_classes
    data = dict(inputs=[x[i:i + 1] for i in range(B)],  # one clip per sample: (num_clips=1, M, T, V, C)
                data_samples=[ActionDataSample().set_gt_labels(torch.tensor([i % ncls])) for i in range(B)])
    hub = MessageHub.get_current_instance()
    variants = []
    for name, model, it in (('stock RecognizerGCN', dense, None), ('pruned, soft masks (progress 0.5)', pruned, 50),
                            ('pruned, frozen masks', frozen, 99)):
        model.train()
        ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
        variants.append((name, model, ow, it))
    times = {n: [] for n, *_ in variants}
    for r in range(2 + args.train_reps):
        for name, model, ow, it in variants:
            if it is not None:
                hub.update_info('iter', it)
                hub.update_info('max_iters', 100)
            t = time.perf_counter()
            model.train_step(copy.copy(data), ow)
            dt = time.perf_counter() - t
            if r >= 2:
                times[name].append(dt)
    med = {n: statistics.median(ts) for n, ts in times.items()}
    return dict(batch=B, median=med, all=times, frozen_ok=bool(frozen.pruner.frozen),
                soft_ok=not bool(pruned.pruner.frozen))


def summary(args, res, variants, base):
    """The printed table: per variant, speedup over dense / FLOPs ratio for every (runtime, batch) that was timed
    (fills ``speedup_<rt>_b<b>`` / ``ms_<rt>_b<b>`` into the variants). Returns (lines, cols)."""
    # a runtime this machine lacks (e.g. onnxruntime without its CUDA provider) was skipped: no column
    cols = [(rt, b) for rt in args.runtimes for b in args.batches if (rt, b) in res]
    head = f'{"variant":<18}{"achieved":>9}{"struct":>8}{"params":>10}{"MACs x":>8}{"traffic x":>10}' + ''.join(
        f'{rt + " b" + str(b):>14} ' for rt, b in cols)
    lines = ['', 'speedup over dense (median), next to the FLOPs ratio dense/exported (its physical limit):',
             'dense latency: ' + ', '.join(f'{rt} b{b} {res[(rt, b)]["median"]["dense"] * 1e3:.3g} ms'
                                            for rt, b in cols), head]
    for v in variants:
        row = (f'{v["name"]:<18}{v["achieved"]:>9.3f}{v["structural_realized"]:>8.3f}'
               f'{v["params_exported"] / base["params"]:>10.3f}{v["flops_ratio"]:>8.2f}{v["traffic_ratio"]:>10.2f}')
        for rt, b in cols:
            med = res[(rt, b)]['median']
            src = v['name'] if v['name'] in med else v['twin']
            if src in med:
                s = med['dense'] / med[src]
                v[f'speedup_{rt}_b{b}'] = s
                v[f'ms_{rt}_b{b}'] = med[src] * 1e3
                row += f'{s:>8.2f}/{v["flops_ratio"]:<5.2f}' + ('*' if src != v['name'] else ' ')
            else:
                row += f'{"=dense":>14} '
        lines.append(row)
    lines.append('columns: achieved = pruned share of the prunable weights; struct = share of the pruned weights '
                 'physically removed; params = exported/dense parameters; MACs x = dense/exported MACs; '
                 'traffic x = dense/exported bytes written by all operators (the memory-bound limit); '
                 'runtime cells = speedup/FLOPs ratio; =dense: exported graph identical to the dense one (not '
                 're-timed); *: exported graph identical to an earlier row\'s (timed once, values do not change '
                 'dense kernels\' time)')
    lines.append('median ms per call: ' + '; '.join(
        f'{v["name"]} ' + ', '.join(f'{rt} b{b} {v[f"ms_{rt}_b{b}"]:.3g}' for rt, b in cols if f'ms_{rt}_b{b}' in v)
        for v in variants))
    stock_cols = [(rt, b) for rt, b in cols if 'dense' + _STOCK in res[(rt, b)]['median']]
    if stock_cols:  # --graph-conv matmul: every model also ran in the stock formulation, in the same rounds
        lines.append(f'--graph-conv {args.graph_conv} (PyTorch runtimes; the table above compares models in it): '
                     'each model in the stock formulation -> in this one, median ms (stock / this, median of the '
                     'per-round ratios):')
        for n in ['dense'] + [v['name'] for v in variants]:
            cells = []
            for rt, b in stock_cols:
                r = res[(rt, b)]
                if n not in r['median'] or n + _STOCK not in r['median']:
                    continue
                paired = statistics.median(a / t for a, t in zip(r['all'][n + _STOCK], r['all'][n]))
                cells.append(f'{rt} b{b} {r["median"][n + _STOCK] * 1e3:.3g} -> {r["median"][n] * 1e3:.3g} '
                             f'({paired:.2f}x)')
            if cells:
                lines.append(f'  {n:<18}' + ', '.join(cells))
        for v in variants:
            cells = []
            for rt, b in stock_cols:
                med = res[(rt, b)]['median']
                src = v['name'] if v['name'] in med else (v['twin'] if v['twin'] in med else 'dense')
                s = med['dense' + _STOCK] / med[src]
                v[f'speedup_vs_stock_{rt}_b{b}'] = s
                cells.append(f'{rt} b{b} {s:.2f}x ({s / v["flops_ratio"]:.2f} of the FLOPs ratio)')
            lines.append(f'  {v["name"]} over the stock dense model: ' + ', '.join(cells)
                         + f'; traffic x {base["bytes_stock"] / v["bytes_exported"]:.2f}')
    for v in variants:
        if v['mode'] == 'semi' and abs(v['rate'] - 0.9) < 1e-9 and 16 in args.batches:
            parts = [f'{rt} {v[f"speedup_{rt}_b16"]:.2f}x' if f'speedup_{rt}_b16' in v else f'{rt} =dense (1x)'
                     for rt in dict.fromkeys(rt for rt, _ in cols)]
            lines.append(f'semi ST-GCN rate 0.9, batch 16: speedup {", ".join(parts)} vs FLOPs ratio '
                         f'{v["flops_ratio"]:.2f}x (structural share {v["structural_realized"]:.3f})')
    return lines, cols


# -- main ---------------------------------------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise SystemExit('bench_export: --device cuda but torch.cuda.is_available() is False (a CPU-only torch build or '
                         'no visible GPU); run with --device cpu')
    if args.half and not cuda:
        raise SystemExit('bench_export: --half times float16 inference on a GPU (--device cuda); CPU convolutions in '
                         'float16 are not what a CPU deployment runs: drop --half')
    if args.batches is None:
        args.batches = [1, 64] if cuda else [1, 16]
    if args.inductor_freezing:
        if args.runtimes is not None and 'compile' not in args.runtimes:
            raise SystemExit('bench_export: --inductor-freezing changes the compile runtime only: add '
                             '--runtimes ... compile')
    if args.runtimes is None:
        args.runtimes = ['torch', 'compile', 'ort'] if cuda else ['torch', 'ort']
    if cuda:
        torch.backends.cudnn.benchmark = True  # autotuned kernels per input shape (the warm-up rounds pay for it)
        if not args.no_train_bench:
            log('bench_export: the training overhead is measured on the CPU here; on CUDA use bench/bench_train.py '
                '--device cuda (skipped)')
            args.no_train_bench = True
    torch.set_num_threads(args.threads)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()
    mmsemiprune.register_all()
    from mmengine.config import Config
    quiet_mmengine()
    cfg = Config.fromfile(args.config)
    if args.targets:
        pc = dict(cfg.model.get('prune_cfg') or {})
        pc['targets'] = dict(pc.get('targets') or {}, **dict(args.targets))
        cfg.model.prune_cfg = pc
        log(f'bench_export: prune_cfg.targets {pc["targets"]}')
    V = 25
    shape = (1, args.persons, args.frames, V, 3)
    t_start = time.time()
    dev = torch.cuda.get_device_name() if cuda else 'cpu'
    log(f'bench_export: {osp.relpath(args.config, ROOT)} model on {dev}, clips {shape[1:]}, threads {args.threads}, '
        f'masks frozen {"after %d SGD steps" % args.train_iters if args.train_iters else "at (random) init"}, '
        f'channel widths rounded to {args.round_to}; graph convolution {args.graph_conv}; '
        f'{"float16; " if args.half else ""}'
        f'{"compile mode " + args.compile_mode + "; " if args.compile_mode else ""}'
        f'{"inductor freezing; " if args.inductor_freezing else ""}'
        f'torch {torch.__version__}')
    dense, base, variants = build_variants(args, cfg, shape)
    res = time_all(args, dense, variants, shape)
    busy = kernel_tables(args, dense, variants, shape) if args.kernel_table else None

    lines, cols = summary(args, res, variants, base)
    log('\n'.join(lines))

    out = dict(args=vars(args), shape=list(shape), dense=base, torch=torch.__version__,
               variants=[{k: val for k, val in v.items() if k not in ('model', 'signature')} for v in variants],
               latency={f'{rt}_b{b}': res[(rt, b)] for rt, b in cols}, profiled_ms_per_call=busy)
    if not args.no_train_bench:
        t0 = time.time()
        tr = train_overhead(args, cfg, shape)
        stock = tr['median']['stock RecognizerGCN']
        log(f'\ntraining iteration (train_step: forward + backward + SGD), batch {tr["batch"]} clips, median of '
            f'{args.train_reps} ({time.time() - t0:.0f} s):')
        for n, t in tr['median'].items():
            log(f'  {n:<36} {t:7.2f} s   x{t / stock:.2f} of stock')
        out['train'] = tr
    log(f'\ntotal {time.time() - t_start:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1, default=float)
    return out


if __name__ == '__main__':
    main()
