import pytest
import torch

from mmsemiprune.core.bandstop import band_stop, band_stop_hard

X = torch.cat([torch.linspace(-6, 6, 2001), torch.tensor([0.0, 1e-8, -1e-8, 1e4, -1e4])])


@pytest.mark.parametrize('tau', [1e-4, 1e-2, 0.3, 1.0, 50.0])
def test_identity_at_zero_threshold(tau):
    psi = band_stop(X, 0.0, tau)
    # σ(u) + σ(−u) = 1 analytically; float32 rounding leaves at most a couple of ulps
    assert (psi - 1).abs().max().item() < 1e-6


def test_identity_at_zero_threshold_tensor_args():
    psi = band_stop(X, torch.tensor(0.0), torch.tensor(0.05))
    assert torch.allclose(psi, torch.ones_like(psi), atol=1e-6)


def test_tends_to_step():
    a = 0.7
    hard = band_stop_hard(X, a)
    assert hard.dtype == torch.bool
    assert torch.equal(hard, X.abs() > a)
    far = (X.abs() - a).abs() > 0.05  # away from the band edges
    errs = [(band_stop(X, a, tau) - hard.float())[far].abs().max().item() for tau in (0.3, 0.03, 3e-3, 1e-4)]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-6
    assert errs[0] > 0.05  # a wide band is genuinely soft
    # stop band centre ≈ 0, pass band ≈ 1 for a small temperature
    assert band_stop(torch.tensor(0.0), a, 1e-3).item() < 1e-6
    assert band_stop(torch.tensor(2.0), a, 1e-3).item() == pytest.approx(1.0, abs=1e-6)


def test_symmetric_and_bounded():
    for a, tau in [(0.5, 0.1), (1.0, 1.0), (0.2, 1e-3)]:
        p, m = band_stop(X, a, tau), band_stop(-X, a, tau)
        assert torch.equal(p, m)
        assert (p >= 0).all() and (p <= 1 + 1e-6).all()
        # monotone non-decreasing in |x|
        xs = torch.linspace(0, 5, 500)
        v = band_stop(xs, a, tau)
        assert (v[1:] - v[:-1] >= -1e-7).all()
    # at the edge |x| = a: σ(0) + σ(−2a/τ)
    assert band_stop(torch.tensor(0.5), 0.5, 0.1).item() == pytest.approx(0.5 + torch.sigmoid(torch.tensor(-10.)).item())


def test_gradient_wrt_x_matches_analytic():
    a, tau = 0.5, 0.2
    x = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64, requires_grad=True)
    band_stop(x, a, tau).sum().backward()
    s = torch.sigmoid
    u1, u2 = (x.detach() - a) / tau, (-x.detach() - a) / tau
    expected = (s(u1) * (1 - s(u1)) - s(u2) * (1 - s(u2))) / tau
    assert torch.allclose(x.grad, expected, atol=1e-12)
    assert x.grad.abs().max() > 1.0
    assert torch.isfinite(x.grad).all()
    # odd gradient of an even function; zero at x = 0
    assert torch.allclose(x.grad, -x.grad.flip(0), atol=1e-12)
    assert x.grad[30].item() == pytest.approx(0.0, abs=1e-12)


def test_gradcheck_x_a_tau():
    x = torch.randn(7, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(band_stop, (x, a, tau))
