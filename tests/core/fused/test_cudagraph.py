"""core/fused/cudagraph.py: the soft phase's threshold search replayed from a captured CUDA graph. No GPU here: a
stand-in graph class captures the search's operator sequence and replays it by running the search again, checking
that the sequence cannot have changed (a real graph replays kernels, not Python) and that nothing in it would
break a capture (host syncs, tensors made from host data)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmsemiprune.core.budget import solve_thresholds
from mmsemiprune.core.fused import segment
from mmsemiprune.core.fused.cudagraph import GraphedSearch
from mmsemiprune.core.fused.flat import flat_for

_NOT_CAPTURABLE = ('_local_scalar_dense', 'nonzero', 'lift_fresh', 'item')


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        shapes = tuple(tuple(a.shape) for a in args if torch.is_tensor(a))
        self.ops.append((func.overloadpacket.__name__, shapes))
        return out


class StandInGraph:
    """``torch.cuda.CUDAGraph`` on the CPU: records the operator sequence at capture, replays by running ``fn``
    and asserts the same sequence (what a replay executes) and no operator a capture refuses."""
    made = 0

    def __init__(self, fn):
        StandInGraph.made += 1
        self.fn = fn
        self.seq = self._run()
        bad = [n for n, _ in self.seq if n in _NOT_CAPTURABLE]
        assert not bad, f'not capturable in a CUDA graph: {bad}'

    def _run(self):
        rec = _Ops()
        with rec:
            self.fn()
        return rec.ops

    def replay(self):
        assert self._run() == self.seq, 'the search ran another operator sequence than the captured one'


def _latents(pr):
    return [w for _, w in pr.items()]


def _thresholds(pr):
    return torch.stack([t for m in pr.masks for t in (m.thr_entry, m.thr_group)])


@pytest.mark.parametrize('force', [False, True])
@pytest.mark.parametrize('mode', ['semi', 'structured', 'unstructured', 'ctf'])
def test_replayed_search_gives_the_eager_thresholds(toy, mode, force):
    """Rates and latents change between steps (in place, as an optimizer does): every replay of the one capture
    writes the thresholds the eager search writes, bit for bit, on both reduction paths."""
    net, pr = toy.make_pruner(mode, 'params', 0.8, layer_floor=0.02)
    toy.random_gates(pr, torch.Generator().manual_seed(3))
    twin = copy.deepcopy(pr)  # the pruner's masks, latents (a deepcopy of the items) for the eager reference
    items = [(m, w) for _, m, w in pr.items()]
    ref_items = [(m, w) for _, m, w in twin.items()]
    search = GraphedSearch(graph_cls=StandInGraph)
    g = torch.Generator().manual_seed(5)
    with segment.force(force):
        for step, rate in enumerate([0.3, 0.5, 0.5, 0.7, 0.85]):
            with torch.no_grad():
                for (_, w), (_, w2) in zip(items, ref_items):
                    d = 0.05 * torch.randn(w.shape, generator=g)
                    w.add_(d)
                    w2.add_(d)
            search(items, rate, 0.02)
            solve_thresholds(ref_items, rate, 0.02, stats=False)
            assert torch.equal(_thresholds(pr), _thresholds(twin)), step
    assert search.captures == 1 and search.replays == 5


def test_recaptures_when_what_the_capture_read_changes(toy):
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    items = [(m, w) for _, m, w in pr.items()]
    search = GraphedSearch(graph_cls=StandInGraph)
    search(items, 0.5, 0.0)
    search(items, 0.6, 0.0)
    assert search.captures == 1
    pr.masks[0].cost.fill_(2.0)  # MAC profiling rewrites the cost buffers: the capture read the old ones
    search(items, 0.6, 0.0)
    assert search.captures == 2
    ref = copy.deepcopy(pr)
    solve_thresholds([(m, w) for _, m, w in ref.items()], 0.6, 0.0, stats=False)
    assert torch.equal(_thresholds(pr), _thresholds(ref))
    search(items, 0.6, 0.01)  # another floor
    assert search.captures == 3
    new = [(m, w.detach().clone().requires_grad_()) for m, w in items]  # re-created parameters (a device move)
    search(new, 0.6, 0.01)
    assert search.captures == 4


def test_the_batched_masks_reuse_the_replayed_scale(toy):
    """The search leaves each tensor's rms on the flat index for the batched masks; a replay runs no Python, so the
    wrapper refreshes the versions it is checked against."""
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    items = [(m, w) for _, m, w in pr.items()]
    search = GraphedSearch(graph_cls=StandInGraph)
    search(items, 0.5, 0.0)
    with torch.no_grad():
        for _, w in items:
            w.mul_(1.5)
    search(items, 0.5, 0.0)
    flat = flat_for(pr.masks, items[0][1].device)
    scale, vers = flat.scale
    assert scale is search._scale and [v for _, v in vers] == [w._version for _, w in items]
    from mmsemiprune.core.fused.flat import flat_scale
    assert torch.equal(scale, flat_scale([w for _, w in items]))


def test_recapturing_every_step_falls_back_to_the_eager_search(toy):
    """Inputs rewritten before every search (as DDP's broadcast_buffers=True copies the mask buffers in place): after
    a capture at each of 4 consecutive steps the search runs eagerly, with one warning, the same thresholds."""
    net, pr = toy.make_pruner('semi', 'params', 0.8)
    ref = copy.deepcopy(pr)
    items = [(m, w) for _, m, w in pr.items()]
    search = GraphedSearch(graph_cls=StandInGraph)
    with pytest.warns(UserWarning, match='recaptured at 4 consecutive steps'):
        for step in range(5):
            with torch.no_grad():
                for m, _ in items:
                    m.cost.copy_(m.cost.clone())  # same values, new version: a broadcast
            search(items, 0.5 + 0.01 * step, 0.0)
    assert search.failed and search.captures == 4  # the first and 3 recaptures; the 4th gives up
    search(items, 0.6, 0.0)  # eager, no second warning
    solve_thresholds([(m, w) for _, m, w in ref.items()], 0.6, 0.0, stats=False)
    assert torch.equal(_thresholds(pr), _thresholds(ref))


def test_a_failed_capture_falls_back_to_the_eager_search(toy):
    class Broken:
        def __init__(self, fn):
            raise RuntimeError('operation not permitted when stream is capturing')

    net, pr = toy.make_pruner('semi', 'params', 0.8)
    ref = copy.deepcopy(pr)
    items = [(m, w) for _, m, w in pr.items()]
    search = GraphedSearch(graph_cls=Broken)
    with pytest.warns(UserWarning, match='search runs eagerly'):
        search(items, 0.5, 0.0)
    assert search.failed
    search(items, 0.6, 0.0)  # no second warning, eager
    solve_thresholds([(m, w) for _, m, w in ref.items()], 0.6, 0.0, stats=False)
    assert torch.equal(_thresholds(pr), _thresholds(ref))


def test_pruner_option_trains_as_the_eager_search(toy):
    """SemiPruner(cuda_graphs=True) with the stand-in graph: the same losses and thresholds through soft steps
    (through the hard phase and the freeze the search is not graphed); on the CPU without the stand-in the option
    is ignored (no capture)."""
    x, y = toy.data(64)

    def run(graphs, stand_in):
        net, pr = toy.make_pruner('semi', 'params', 0.8, cuda_graphs=graphs)
        if stand_in:
            pr._graphed = GraphedSearch(graph_cls=StandInGraph)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for it in range(12):
            pr.set_progress(it / 12)
            loss = F.cross_entropy(net(x), y) + pr.budget_loss()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return torch.stack(losses), _thresholds(pr), pr

    ref_l, ref_t, _ = run(False, False)
    got_l, got_t, pr = run(True, True)
    assert torch.equal(ref_l, got_l) and torch.equal(ref_t, got_t)
    assert pr._graphed.captures == 1 and pr._graphed.replays >= 5
    cpu_l, _, pr_cpu = run(True, False)
    assert torch.equal(ref_l, cpu_l) and pr_cpu._graphed.captures == 0


def test_option_is_validated_and_copies_capture_their_own(toy):
    with pytest.raises(ValueError, match='cuda_graphs must be True or False'):
        toy.make_pruner('semi', 'params', 0.8, cuda_graphs='yes')
    net, pr = toy.make_pruner('semi', 'params', 0.8, cuda_graphs=True)
    pr._graphed = GraphedSearch(graph_cls=StandInGraph)
    pr.set_progress(0.5)
    dup = copy.deepcopy(pr)
    assert dup._graphed is not pr._graphed and dup._graphed.captures == 0


def test_a_replayed_step_dispatches_a_handful_of_operators(toy):
    """What the host still dispatches per soft step when the search is a graph replay (a stand-in whose replay
    does nothing, as a real replay runs no Python): the temperatures, the rate, the scale copy's bookkeeping, not
    the search (NTU ST-GCN, GPU path: 188 operators per set_progress eagerly, 7 by replay)."""
    from torch.profiler import ProfilerActivity, profile

    class Silent:
        def __init__(self, fn):
            fn()

        def replay(self):
            pass

    def ops(pr):
        pr.set_progress(0.5)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            pr.set_progress(0.5)
        return sum(1 for e in prof.events() if e.name.startswith('aten::') and
                   (e.cpu_parent is None or not e.cpu_parent.name.startswith('aten::')))

    _, eager = toy.make_pruner('semi', 'params', 0.8)
    _, graphed = toy.make_pruner('semi', 'params', 0.8, cuda_graphs=True)
    graphed._graphed = GraphedSearch(graph_cls=Silent)
    n_eager, n_graphed = ops(eager), ops(graphed)
    assert n_eager > 50 and n_graphed <= 10, (n_eager, n_graphed)
