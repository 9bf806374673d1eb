import pytest
import torch

from mmsemiprune.core.bandstop import band_stop
from mmsemiprune.core.cascade import MODES, SemiMask

SHAPE = (6, 4, 3, 3)


def _mask(mode, groups=('out', ), te=0.8, tg=0.9, tau=0.2, gate_tau=1.0, shape=SHAPE):
    m = SemiMask(shape, list(groups), mode, name='layer.weight')
    m.thr_entry.fill_(te)
    m.thr_group.fill_(tg)
    m.temperature.fill_(tau)
    m.gate_temperature.fill_(gate_tau)
    return m


def _reference(w, mode, te, tg, tau, logits=None, gate_tau=1.0):
    """ψ by hand for groups = ['out', 'in'] on a 4-D weight (docstring formulas)."""
    x = w / w.pow(2).mean().sqrt()
    pe = band_stop(x, te, tau)
    s_out = torch.stack([x[i].pow(2).mean().sqrt() for i in range(w.shape[0])])
    s_in = torch.stack([x[:, j].pow(2).mean().sqrt() for j in range(w.shape[1])])
    po = band_stop(s_out, tg, tau * s_out.std())[:, None, None, None]
    pi = band_stop(s_in, tg, tau * s_in.std())[None, :, None, None]
    pg = (po * pi).expand_as(w)
    if mode == 'unstructured':
        return pe
    if mode == 'structured':
        return pg
    if mode == 'ctf':
        return pg * pe
    g = torch.sigmoid(logits / (gate_tau * logits.abs().mean()))[:, None, None, None]  # relative gate temperature
    return g * pg + (1 - g) * pe


@pytest.mark.parametrize('mode', MODES)
def test_forward_matches_formula(mode):
    w = torch.randn(SHAPE) * 0.05
    m = _mask(mode, groups=('out', 'in'), gate_tau=0.5)
    logits = torch.linspace(-2, 2, 6)
    if mode == 'semi':
        with torch.no_grad():
            m.gate.logit.copy_(logits)
    psi = m(w)
    assert psi.shape == w.shape
    ref = _reference(w, mode, 0.8, 0.9, 0.2, logits, 0.5)
    assert torch.allclose(psi, ref, atol=1e-5)
    assert m.last_psi is psi


def test_scale_invariant():
    w = torch.randn(SHAPE)
    for mode in MODES:
        m = _mask(mode)
        assert torch.allclose(m(w), m(w * 37.0), atol=1e-5)


def test_dense_at_zero_thresholds():
    w = torch.randn(SHAPE)
    for mode in MODES:
        m = SemiMask(SHAPE, ['out'], mode)
        assert torch.allclose(m(w), torch.ones(SHAPE), atol=1e-5)
        assert m.hard(w).all()


def test_gradients_reach_latent_and_gate_through_cascade():
    w = (torch.randn(SHAPE) * 0.1).requires_grad_()
    m = _mask('semi', groups=('out', 'in'), tau=0.3)
    psi = m(w)
    (psi * torch.randn(SHAPE)).sum().backward()  # through ψ only (not the W = Ŵ ⊙ ψ product)
    for g in (w.grad, m.gate.logit.grad):
        assert g is not None
        assert torch.isfinite(g).all()
        assert g.abs().max() > 0
    assert (m.gate.logit.grad != 0).all()


def test_frozen_uses_stored_mask_exactly():
    w = torch.randn(SHAPE, requires_grad=True)
    m = _mask('semi')
    stored = torch.rand(SHAPE) > 0.5
    m.freeze(stored)
    assert bool(m.frozen)
    psi = m(w)
    assert torch.equal(psi, stored.float())
    assert set(psi.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(m(w.detach() * 0 + 5.0), stored.float())  # independent of the latent now
    assert torch.equal(m.hard(w), stored)
    (w * m(w)).sum().backward()
    assert torch.equal(w.grad, stored.float())  # d(Ŵ⊙ψ)/dŴ = ψ, ψ constant
    assert m.gate.logit.grad is None  # the frozen forward no longer reads the gates (the pruner's budget_loss
    # keeps them in the graph for DDP: tests/core/test_pruner.py::test_gate_logits_get_grad_after_freeze)
    with pytest.raises(ValueError, match=r'\(6, 4\)'):
        m.freeze(torch.ones(6, 4, dtype=torch.bool))


def _group_states(mask, gid):
    """For every group: 'all0', 'all1' or 'mixed'."""
    out = []
    for g in range(int(gid.max()) + 1):
        v = mask[gid == g]
        out.append('all1' if v.all() else 'all0' if not v.any() else 'mixed')
    return out


def test_structured_hard_mask_is_groupwise():
    w = torch.randn(SHAPE)
    m = _mask('structured', te=0.0, tg=1.0)
    h = m.hard(w)
    st = _group_states(h, m.gid0)
    assert 'mixed' not in st and 'all0' in st and 'all1' in st


def test_unstructured_hard_mask_is_entrywise():
    w = torch.randn(SHAPE)
    m = _mask('unstructured', te=0.8)
    h = m.hard(w)
    assert torch.equal(h, (w / w.pow(2).mean().sqrt()).abs() > 0.8)
    assert 'mixed' in _group_states(h, m.gid0)


def test_semi_produces_both():
    torch.manual_seed(3)
    w = torch.randn(SHAPE)
    m = _mask('semi', te=0.8, tg=1.0)
    with torch.no_grad():
        m.gate.logit.copy_(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0]))
    h = m.hard(w)
    st = _group_states(h, m.gid0)
    assert all(s != 'mixed' for s in st[:3])
    assert 'all0' in st[:3]  # a whole group removed by the group mask
    assert 'mixed' in st[3:]  # entry-wise pruning inside other groups
    x = (w / w.pow(2).mean().sqrt()).abs()
    assert torch.equal(h[3:], x[3:] > 0.8)


def test_ctf_is_intersection():
    w = torch.randn(SHAPE)
    h = _mask('ctf', te=0.8, tg=1.0).hard(w)
    hg = _mask('structured', te=0.8, tg=1.0).hard(w)
    he = _mask('unstructured', te=0.8, tg=1.0).hard(w)
    assert torch.equal(h, hg & he)


@pytest.mark.parametrize('mode', MODES)
def test_soft_tends_to_hard(mode):
    w = torch.randn(SHAPE)
    m = _mask(mode, groups=('out', 'in'), te=0.7, tg=0.95, tau=1e-5, gate_tau=1e-5)
    if mode == 'semi':
        with torch.no_grad():
            m.gate.logit.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]))
    psi, h = m(w), m.hard(w)
    assert torch.allclose(psi, h.float(), atol=1e-4)
    assert 0 < h.sum() < h.numel()


def test_errors():
    with pytest.raises(ValueError, match="'foo'"):
        SemiMask(SHAPE, ['out'], 'foo')
    with pytest.raises(ValueError, match="'structured'"):
        SemiMask(SHAPE, [], 'structured', name='x.weight')
    SemiMask(SHAPE, [], 'unstructured')  # fine without groups
    m = SemiMask(SHAPE, ['out'], 'semi', name='net.c1.weight')
    with pytest.raises(ValueError) as e:
        m(torch.randn(4, 6, 3, 3))
    assert '(4, 6, 3, 3)' in str(e.value) and '(6, 4, 3, 3)' in str(e.value) and 'net.c1.weight' in str(e.value)
    with pytest.raises(ValueError, match=r'\(4, 6, 3, 3\)'):
        m.hard(torch.randn(4, 6, 3, 3))
