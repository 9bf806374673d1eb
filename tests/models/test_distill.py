"""prune_cfg.distill: a dense teacher (an unmasked copy of the weights at the first step, or a checkpoint)
and the KL term ``loss_distill``; available to every mode, kept out of the state dict and the optimizer."""
import pytest
import torch

from mmsemiprune.compat import ConfigError

from tests.models.test_recognizer import batch, build, fresh_hub, short_run

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('mode,extra', [('semi', {}), ('unstructured', dict(oneshot=True, normalize=False))])
def test_distill_loss_starts_at_zero_and_grows(mode, extra):
    model = build('stgcn', mode, 0.9, distill=dict(weight=2.0, temperature=3.0), **extra)
    hub = fresh_hub()
    hub.update_info('max_iters', 10)
    hub.update_info('iter', 0)
    x, ds = batch()
    model.eval()  # the teacher runs in eval mode (the dense BatchNorm statistics): compare like with like
    losses = model.loss(x, ds)
    assert 'loss_distill' in losses and torch.isfinite(losses['loss_distill'])
    if mode == 'semi':  # first step: ψ ≡ 1, the student is the teacher
        assert losses['loss_distill'].item() == pytest.approx(0.0, abs=1e-5)
    else:  # one-shot: pruned at once, the teacher is still the dense model
        assert losses['loss_distill'].item() > 1e-4
    losses['loss_distill'].backward()
    assert model.backbone.gcn[0].gcn.conv.weight.grad is not None
    assert not any('_teacher' in k for k in model.state_dict())
    assert all(p is not q for p in model.parameters() for q in model._teacher[0].parameters())
    model.train()
    short_run(model, iters=10)
    assert model.pruner.frozen


def test_distill_from_checkpoint(tmp_path):
    dense = build('stgcn', 'semi', 0.5)
    path = tmp_path / 'dense.pth'
    torch.save(dict(state_dict={k: v for k, v in dense.state_dict().items() if '_psi.' not in k}), path)
    torch.manual_seed(1)
    model = build('stgcn', 'semi', 0.5, distill=dict(checkpoint=str(path)))
    with torch.no_grad():  # the student drifts from the checkpoint: the teacher must not
        for p in model.backbone.parameters():
            p.add_(0.1)
    model._make_teacher(torch.device('cpu'))
    t_bb = model._teacher[0]
    assert torch.equal(t_bb.gcn[0].gcn.conv.weight, dense.backbone.gcn[0].gcn.conv.weight)


@pytest.mark.parametrize('bad,msg', [(dict(weight=0), 'distill.weight'), (dict(temp=2), 'unknown prune_cfg.distill'),
                                     ('yes', 'must be a dict')])
def test_bad_distill(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        build('stgcn', 'semi', 0.5, distill=bad)
