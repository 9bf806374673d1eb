import pytest
import torch

from mmsemiprune.core.gate import Gate


def test_learned_gate_formula_and_hard():
    g = Gate(4, relative=False)
    params = dict(g.named_parameters())
    assert list(params) == ['logit'] and params['logit'].shape == (4, )
    assert torch.allclose(g(), torch.full((4, ), 0.5))
    with torch.no_grad():
        g.logit.copy_(torch.tensor([-2.0, -0.1, 0.1, 3.0]))
    for tau in (1.0, 0.25):
        assert torch.allclose(g(tau), torch.sigmoid(g.logit.detach() / tau))
    assert g.hard().tolist() == [False, False, True, True]
    # a lower temperature sharpens towards the hard gate
    assert ((g(0.01) > 0.5) == g.hard()).all()
    assert (g(0.01) - g.hard().float()).abs().max() < (g(1.0) - g.hard().float()).abs().max()


def test_learned_gate_gradient():
    g = Gate(3, init=0.5, relative=False)
    assert torch.allclose(g.logit.detach(), torch.full((3, ), 0.5))
    (g(0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    s = torch.sigmoid(torch.tensor(1.0))
    expected = s * (1 - s) / 0.5 * torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(g.logit.grad, expected)


@pytest.mark.parametrize('mode, value', [('group', 1.0), ('entry', 0.0)])
def test_fixed_gates_have_no_parameters(mode, value):
    g = Gate(3, mode)
    assert list(g.parameters()) == []
    assert torch.equal(g(0.1), torch.full((3, ), value))
    assert g.hard().tolist() == [bool(value)] * 3


def test_invalid_mode():
    with pytest.raises(ValueError, match="'foo'"):
        Gate(3, 'foo')


def test_relative_temperature_decides_small_logits():
    """g = σ(γ/(τ·mean|γ|)): logits of any scale are decided once τ is small (measured: SBU logits ~0.01-0.15)."""
    logits = torch.tensor([-0.03, -0.004, 0.002, 0.02])
    rel, ab = Gate(4), Gate(4, relative=False)
    with torch.no_grad():
        rel.logit.copy_(logits)
        ab.logit.copy_(logits)
    assert torch.allclose(rel(0.5), torch.sigmoid(logits / (0.5 * logits.abs().mean())))
    decided = lambda g: ((g < 0.05) | (g > 0.95)).float().mean().item()  # noqa: E731
    assert decided(rel(0.025)) > decided(ab(0.025))
    assert decided(rel(0.005)) == 1.0 and decided(ab(0.005)) < 1.0
    assert torch.equal(Gate(3)(0.1), torch.full((3, ), 0.5))  # all-zero logits: undecided, no NaN
