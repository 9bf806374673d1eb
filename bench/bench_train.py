"""ms per training step (MMEngine ``model.train_step``) of the stock recognizer vs the pruned one with soft masks
(progress 0.5) and with frozen masks, plus host syncs and launched operators per step (torch.profiler).

    python bench/bench_train.py --device cpu --batch 2 --reps 5            # CPU, small batch
    python bench/bench_train.py --device cuda --amp fp16                    # GPU, batch 32, fp16 AMP

Models: the ``model`` of ``configs/stgcn_semiprune_ntu60.py`` and ``configs/ctrgcn_semiprune_ntu60.py`` (stock
NTU-60 backbones, semi 0.9), input ``--batch`` clips of 2 persons x 100 frames x 25 joints x 3 (default 32).
Timing: ``--warmup`` untimed rounds, then ``--reps`` rounds in which stock, soft and frozen run once each in
turn (odd rounds reversed), medians. Optimizer: SGD (momentum 0.9, nesterov, weight decay 5e-4) in MMEngine's
``OptimWrapper``, or ``AmpOptimWrapper`` with ``--amp fp16|bf16``. Syncs: ``aten::_local_scalar_dense`` (not
the one torch.std runs inside its CPU kernel) + ``aten::nonzero``; operators: top-level ``aten::`` calls.
"""
import argparse
import copy
import logging
import os.path as osp
import statistics
import sys
import time
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore')

import torch  # noqa: E402

CONFIGS = dict(stgcn='configs/stgcn_semiprune_ntu60.py', ctrgcn='configs/ctrgcn_semiprune_ntu60.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'])
    p.add_argument('--amp', choices=['fp16', 'bf16'], default=None)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--frames', type=int, default=100)
    p.add_argument('--reps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--rate', type=float, default=0.9)
    p.add_argument('--target-macs', type=float, default=None,
                   help='compute target of the pruned model (soft projection on; what the leaderboard semi uses)')
    p.add_argument('--update-every', type=int, default=1,
                   help='prune_cfg.update_every (mask update interval); counts are averaged over that many steps')
    p.add_argument('--malloc', choices=['retain', 'default'], default='retain',
                   help="CPU: 'retain' keeps freed heap memory for reuse as a training run with SemiPruneHook does "
                        "(glibc mallopt, mmsemiprune/engine/allocator.py); 'default': glibc's defaults")
    p.add_argument('--projection-search', choices=['auto', 'secant', 'bisect'], default=None,
                   help="prune_cfg.projection_search (with --target-macs): 'bisect' is the published leaderboards' "
                        "search (bisection at N = 1), 'secant' the secant step at every N; default 'auto' (= 'secant' "
                        'with --target-macs)')
    p.add_argument('--ramp', action='store_true',
                   help='soft step in the warm-up ramp (progress 0.1 of a 1,000-step run, +1 step per round: the rate '
                        'moves at every step, so with target_macs and update_every 1 the projection searches anew '
                        'each step) instead of at progress 0.5 (the steady state)')
    p.add_argument('--no-profile', action='store_true')
    p.add_argument('--eager-search', action='store_true',
                   help='prune_cfg.cuda_graphs=False: the soft-phase threshold search dispatched operator by operator '
                        'instead of one CUDA graph replay (the default on CUDA; no effect on the CPU)')
    p.add_argument('--atomic-free', action='store_true',
                   help="CPU: run the reductions the GPU runs (core/fused/segment.py: scans and sorts, not index_add_) "
                        "to count its operators here")
    p.add_argument('--kernel-table', type=int, default=0, metavar='N',
                   help='also profile 3 steps of each variant and print its N costliest operators by device (or, on '
                        'CPU, self CPU) time and by host time, with the device-busy time per step')
    return p.parse_args(argv)


def count(fn):
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        fn()
    syncs = ops = launches = dev_syncs = 0
    for e in prof.events():
        # launches from the host: kernels one by one, and a CUDA graph's replay as one (its kernels are launched
        # by the driver: the graphed search adds 1)
        if e.name in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernelEx',
                      'cudaGraphLaunch', 'cuGraphLaunch'):
            launches += 1
        elif e.name in ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize'):
            dev_syncs += 1
        if not e.name.startswith('aten::'):
            continue
        p = e.cpu_parent
        if e.name == 'aten::nonzero':
            syncs += 1
        elif e.name == 'aten::_local_scalar_dense':
            q = p
            while q is not None and q.name != 'aten::std':
                q = q.cpu_parent
            syncs += q is None
        while p is not None and not p.name.startswith('aten::'):
            p = p.cpu_parent
        ops += p is None
    return syncs, ops, launches, dev_syncs


def build(cfg_model, pruned, rate, **prune):
    from mmsemiprune.export.exporter import build_model
    d = copy.deepcopy(dict(cfg_model))
    if pruned:
        d['type'] = 'mmsemiprune.SemiPruneRecognizerGCN'
        d['prune_cfg'] = dict(d.get('prune_cfg') or {}, target_rate=rate, mode='semi', **prune)
    else:
        d.pop('prune_cfg', None)
        d['type'] = 'RecognizerGCN'
    return build_model(d)


def bench(name, args):
    from mmaction.structures import ActionDataSample
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from mmsemiprune.export.exporter import synthetic_skeletons
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[name]))
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    stock = build(cfg.model, False, args.rate)
    stock.init_weights()
    if args.amp == 'bf16':  # stock MMAction2 1.1.0 cannot train in bf16 (top_k_accuracy on bf16 scores): give the
        from mmsemiprune.models.recognizer import bf16_scores_to_float  # stock step the pruned one's cast
        stock.cls_head.register_forward_hook(bf16_scores_to_float)
    extra = dict(update_every=args.update_every)
    if args.eager_search:
        extra['cuda_graphs'] = False
    if args.target_macs is not None:
        extra['target_macs'] = args.target_macs
    if args.projection_search is not None:
        extra['projection_search'] = args.projection_search
    soft = build(cfg.model, True, args.rate, **extra)
    soft.load_state_dict(stock.state_dict(), strict=False)
    frozen = copy.deepcopy(soft)
    B = args.batch
    x = synthetic_skeletons((B, 2, args.frames, 25, 3), seed=7)
    ncls = stock.cls_head.num_classes
    data = dict(inputs=[x[i:i + 1] for i in range(B)],
                data_samples=[ActionDataSample().set_gt_labels(torch.tensor([i % ncls])) for i in range(B)])
    hub = MessageHub.get_current_instance()
    variants = []
    # soft: progress 0.5 (the scheduled rate is the target: the steady state), or with --ramp progress 0.1 + 0.001 per
    # round (the warm-up ramp of a 1,000-step run: the rate moves at every step)
    span = 1000 if args.ramp else 100
    for vname, model, it in (('stock', stock, None), ('soft', soft, span // 10 if args.ramp else 50),
                             ('frozen', frozen, span - 1)):
        model.to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
        if args.amp:
            ow = AmpOptimWrapper(optimizer=opt, dtype={'fp16': 'float16', 'bf16': 'bfloat16'}[args.amp])
        else:
            ow = OptimWrapper(opt)
        variants.append([vname, model, ow, it])

    def step(model, ow, it):
        if it is not None:
            hub.update_info('iter', it)
            hub.update_info('max_iters', span)
        model.train_step(copy.copy(data), ow)
        if dev.type == 'cuda':
            torch.cuda.synchronize()

    times = {v[0]: [] for v in variants}
    for r in range(args.warmup + args.reps):
        order = variants if r % 2 == 0 else variants[::-1]
        for vname, model, ow, it in order:
            if args.ramp and vname == 'soft':
                it = span // 10 + r
            t = time.perf_counter()
            step(model, ow, it)
            if r >= args.warmup:
                times[vname].append(time.perf_counter() - t)
    assert not soft.pruner.frozen and frozen.pruner.frozen
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    mean = {k: 1000 * statistics.fmean(v) for k, v in times.items()}
    # paired: the median over rounds of (variant's step / stock's step in the same round), robust to drifts that
    # move every variant's step together (clocks, other load) which the ratio of medians is not
    paired = {k: statistics.median(a / b for a, b in zip(v, times['stock'])) for k, v in times.items()}
    counts = {}
    if not args.no_profile:  # per step, averaged over one mask update interval
        n = max(args.update_every, 1)
        for vname, model, ow, it in variants:
            tot = [0, 0, 0, 0]
            for _ in range(n):
                for k, c in enumerate(count(lambda: step(model, ow, it))):
                    tot[k] += c
            counts[vname] = tuple(t / n for t in tot)
    if args.kernel_table:
        kernel_tables(variants, step, args.kernel_table, dev)
    mem = (torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()) if dev.type == 'cuda' else None
    return med, mean, paired, counts, len(soft.pruner.masks), mem


def profile_calls(fn, calls: int, cuda: bool):
    """torch.profiler over ``calls`` calls of ``fn``: (key averages, device-busy ms per call (sum of the kernels'
    self device time; nan off CUDA), host ms per call (self CPU time of all events)). Also bench_export's."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
    ka = prof.key_averages()
    busy = sum(getattr(e, 'self_device_time_total', 0) for e in ka) / (calls * 1e3) if cuda else float('nan')
    return ka, busy, sum(e.self_cpu_time_total for e in ka) / (calls * 1e3)


def kernel_tables(variants, step, n, dev):
    """Where a step's time goes: device-busy ms per step (kernels) and the costliest operators (torch.profiler)."""
    cuda = dev.type == 'cuda'
    for vname, model, ow, it in variants:
        ka, busy, host = profile_calls(lambda: step(model, ow, it), 3, cuda)
        print(f'\n### {vname}: device busy {busy:.1f} ms/step, host (self CPU of all events) {host:.1f} ms/step')
        key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
        print(ka.table(sort_by=key, row_limit=n, max_name_column_width=48))
        if cuda:
            print(ka.table(sort_by='self_cpu_time_total', row_limit=n, max_name_column_width=48))


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('bench_train: --device cuda but torch.cuda.is_available() is False (a CPU-only torch build or '
                         'no visible GPU); run with --device cpu')
    torch.set_num_threads(args.threads)
    import mmsemiprune
    mmsemiprune.apply_mmengine_patches()
    mmsemiprune.register_all()
    from mmsemiprune.core.fused import segment
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    dev = torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'
    malloc = 'glibc defaults'
    if args.device == 'cpu' and args.malloc == 'retain':  # what SemiPruneHook does on a CPU run
        from mmsemiprune.engine.allocator import retain_freed_memory
        malloc = f'freed memory retained ({retain_freed_memory()})'
    print(f'device {dev}, torch {torch.__version__}, threads {args.threads}, batch {args.batch} clips of '
          f'2x{args.frames}x25x3, amp {args.amp or "off (fp32)"}, {args.reps} interleaved steps; pruned: '
          f'target_macs {args.target_macs}, update_every {args.update_every}'
          f'{", eager search (--eager-search)" if args.eager_search else ""}'
          f'{", soft step in the warm-up ramp (--ramp)" if args.ramp else ""}'
          f'{f", projection_search {args.projection_search}" if args.projection_search else ""}'
          f'{", GPU reductions forced (--atomic-free)" if args.atomic_free else ""}'
          f'{f", malloc: {malloc}" if args.device == "cpu" else ""} (syncs / operators averaged over '
          f'{args.update_every} step(s))')
    cuda = args.device == 'cuda'
    print('| model | step | median ms | ratio to stock | mean ms | ratio | paired ratio | syncs/step | operators/step | '
          'ops ratio |'
          + (' CUDA launches/step | launches ratio | CUDA syncs/step (incl. the bench\'s own 1) |' if cuda else ''))
    print('|---|---|---|---|---|---|---|---|---|---|' + ('---|---|---|' if cuda else ''))
    for name in args.models:
        with segment.force(True if args.atomic_free else None):
            med, mean, paired, counts, L, mem = bench(name, args)
        for v in ('stock', 'soft', 'frozen'):
            s, o, nl, ds = counts.get(v, ('-', ) * 4)
            _, so, snl, _ = counts.get('stock', (0, 0, 0, 0))
            ratio_o = f'{o / so:.2f}' if counts else '-'
            ratio_l = f'{nl / snl:.2f}' if counts and snl else '-'  # kernels launched one by one (a graph replay: 0)
            s, o, nl, ds = (f'{s:g}', f'{o:g}', f'{nl:g}', f'{ds:g}') if counts else (s, o, nl, ds)
            print(f'| {name} ({L} masks) | {v} | {med[v]:.1f} | {med[v] / med["stock"]:.2f} | {mean[v]:.1f} | '
                  f'{mean[v] / mean["stock"]:.2f} | {paired[v]:.2f} | {s} | {o} | {ratio_o} |'
                  + (f' {nl} | {ratio_l} | {ds} |' if cuda else ''), flush=True)
        if cuda:  # the three variants' models, optimizer states and caches (with the search's graph pool)
            print(f'| {name} | CUDA memory after the runs: {mem[0] / 2**20:.0f} MiB allocated, peak '
                  f'{mem[1] / 2**20:.0f} MiB |', flush=True)


if __name__ == '__main__':
    main()
