import pytest
import torch

from mmsemiprune.core.gate import Gate


def test_learned_gate_formula_and_hard():
    g = Gate(4)
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
    g = Gate(3, init=0.5)
    assert torch.allclose(g.logit.detach(), torch.full((3, ), 0.5))
    (g(0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    s = torch.sigmoid(torch.tensor(1.0))
    expected = s * (1 - s) / 0.5 * torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(g.logit.grad, expected)


def test_zero_touch_keeps_logit_in_graph():
    g = Gate(5)
    z = g.zero_touch()
    assert z.item() == 0.0
    z.backward()
    assert g.logit.grad is not None
    assert torch.equal(g.logit.grad, torch.zeros(5))


@pytest.mark.parametrize('mode, value', [('group', 1.0), ('entry', 0.0)])
def test_fixed_gates_have_no_parameters(mode, value):
    g = Gate(3, mode)
    assert list(g.parameters()) == []
    assert torch.equal(g(0.1), torch.full((3, ), value))
    assert g.hard().tolist() == [bool(value)] * 3
    assert g.zero_touch().item() == 0.0


def test_invalid_mode():
    with pytest.raises(ValueError, match="'foo'"):
        Gate(3, 'foo')
