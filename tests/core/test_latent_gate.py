"""gates='latent': the gate of a group computed from the latent (group flatness against the tensor's), no gate
parameter; hard decisions before the freeze."""
import pytest
import torch
import torch.nn.functional as F

from mmsemiprune.core.cascade import SemiMask
from mmsemiprune.core.config import PruneConfig
from mmsemiprune.core.latent_gate import LatentGate, flatness_logits, use_latent_gates


def test_flatness_logits():
    # group 0: four equal magnitudes (flat, ρ = 1); group 1: one large entry among small ones (peaked)
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [3.0, 0.1, -0.1, 0.1]])
    gid = torch.tensor([[0] * 4, [1] * 4])
    u = flatness_logits(x, gid, 2)
    rho = torch.stack([x[i].abs().mean() / x[i].pow(2).mean().sqrt() for i in range(2)])
    pooled = x.abs().mean() / x.pow(2).mean().sqrt()
    assert torch.allclose(u, rho - pooled)
    assert torch.isclose(rho[0], torch.tensor(1.0))
    assert u[0] > 0 > u[1]  # flat group: group-wise; peaked group: entry-wise


def test_latent_gate_has_no_parameters_and_follows_the_latent():
    m = SemiMask((6, 8), ['out'], 'semi')
    use_latent_gates([m])
    assert isinstance(m.gate, LatentGate) and list(m.parameters()) == []
    assert m.needs_reference
    w = torch.randn(6, 8)
    w[0] = 0.5  # a flat row
    w[1] = 0.01
    w[1, 0] = 4.0  # a peaked row
    w.requires_grad_(True)
    m.temperature.fill_(0.1)
    m.gate_temperature.fill_(0.01)
    m(w)
    g = m.gate()
    assert float(g[0].detach()) > 0.99 and float(g[1].detach()) < 0.01
    assert m.gate.hard()[:2].tolist() == [True, False]
    # the gate is differentiable in the latent (at a temperature where the sigmoid is not saturated)
    m.gate_temperature.fill_(1.0)
    m(w)
    gw, = torch.autograd.grad(m.gate().sum(), w)
    assert gw.abs().sum() > 0


def test_pruner_with_latent_gates_trains_only_the_latent(toy):
    net, pr = toy.make_pruner('semi', rate=0.8, gates='latent')
    mask_params = [n for n, _ in net.named_parameters() if '_psi' in n]
    assert mask_params == []  # the latents Ŵ (the stock parameters) are the only trained mask state
    assert not pr._batch.ok and pr._graphed is None


def test_latent_gates_reach_hard_decisions_before_the_freeze(toy):
    """Default schedule (hard phase at 72.5 % of the run): at the last soft step ≤ 2 % of the gates are in
    (0.05, 0.95); the hard phase starts from those decisions and the freeze keeps them."""
    for rate, seed in ((0.8, 0), (0.9, 1)):
        net, pr = toy.make_pruner('semi', rate=rate, seed=seed, gates='latent')
        x, y = toy.data()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        iters, last = 40, None
        for it in range(iters):
            pr.set_progress(it / iters)
            if pr.phase == 'hard' and last is not None and 'snap' not in last:
                last['snap'] = torch.cat([m.gate.decided for m in pr.masks])
            idx = torch.randint(0, len(x), (32, ), generator=g)
            out = net(x[idx])
            if pr.phase == 'soft':
                soft = torch.cat([m.gate().detach() for m in pr.masks])
                last = dict(soft=soft, live=torch.cat([m.gate.live_hard() for m in pr.masks]))
            loss = F.cross_entropy(out, y[idx]) + pr.budget_loss()
            opt.zero_grad()
            loss.backward()
            opt.step()
        undecided = ((last['soft'] > 0.05) & (last['soft'] < 0.95)).float().mean()
        assert undecided <= 0.02, float(undecided)
        assert torch.equal((last['soft'] > 0.5), last['live'])
        assert pr.frozen and torch.equal(torch.cat([m.gate.decided for m in pr.masks]), last['snap'])
        assert abs(pr.report()['rate_params'] - rate) < 5e-3


def test_a_copy_of_a_trained_step_deep_copies(toy):
    import copy
    net, pr = toy.make_pruner('semi', rate=0.8, gates='latent')
    x, _ = toy.data()
    pr.set_progress(0.2)
    net(x[:4]).sum()
    copy.deepcopy(net)  # the gate's g of the last forward (a graph tensor) is not copied


@pytest.mark.parametrize('cfg, match', [
    (dict(gates='logit'), 'gates'),
    (dict(gates='latent', mode='unstructured'), "mode='semi'"),
    (dict(gates='latent', gate_init='score'), 'gate_init'),
])
def test_validation(cfg, match):
    with pytest.raises(ValueError, match=match):
        PruneConfig.from_dict(dict(target_rate=0.9, **cfg))
