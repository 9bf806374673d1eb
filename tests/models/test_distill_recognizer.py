"""DistillRecognizerGCN: a narrow plain model distilled from a wider teacher checkpoint."""
import pytest
import torch

pytest.importorskip('mmaction')

from mmaction.registry import MODELS  # noqa: E402
from mmaction.structures import ActionDataSample  # noqa: E402
from mmaction.utils import register_all_modules  # noqa: E402

import mmsemiprune  # noqa: E402,F401

register_all_modules(init_default_scope=True)


def _parts(width, classes=5):
    return dict(backbone=dict(type='STGCN', graph_cfg=dict(layout='coco', mode='stgcn_spatial'), in_channels=3,
                              base_channels=width, num_stages=2, inflate_stages=[2], down_stages=[2]),
                cls_head=dict(type='GCNHead', num_classes=classes, in_channels=2 * width))


def _batch(n=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 1, 16, 17, 3, generator=g)
    samples = [ActionDataSample().set_gt_labels(i % 5) for i in range(n)]
    return x, samples


def test_distill_loss_against_the_teacher_checkpoint(tmp_path):
    torch.manual_seed(0)
    teacher = MODELS.build(dict(type='RecognizerGCN', **_parts(8)))
    ckpt = tmp_path / 't.pth'
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    student = MODELS.build(dict(type='mmsemiprune.DistillRecognizerGCN', **_parts(4),
                                distill=dict(teacher=_parts(8), checkpoint=str(ckpt), weight=2.0, temperature=3.0)))
    x, samples = _batch()
    losses = student.loss(x, samples)
    assert set(losses) >= {'loss_cls', 'loss_distill'}
    # the same number by hand: 2 · 3² · KL(softmax(t/3) ‖ softmax(s/3))
    teacher.eval()
    with torch.no_grad():
        t = teacher.cls_head(teacher.backbone(x.flatten(0, 1)))
        s = student.cls_head(student.backbone(x.flatten(0, 1)))
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 3, 1), torch.softmax(t / 3, 1), reduction='batchmean')
    assert torch.allclose(losses['loss_distill'], 2 * 9 * kl, rtol=1e-4, atol=1e-6)
    assert not any(k.startswith('_teacher') for k in student.state_dict())  # teacher out of the state dict
    losses['loss_distill'].backward()
    assert student.backbone.data_bn.weight.grad is not None


def test_without_distill_it_is_recognizer_gcn():
    m = MODELS.build(dict(type='mmsemiprune.DistillRecognizerGCN', **_parts(4)))
    x, samples = _batch()
    assert 'loss_cls' in m.loss(x, samples) and 'loss_distill' not in m.loss(x, samples)


@pytest.mark.parametrize('distill, match', [
    (dict(teacher=_parts(8)), 'checkpoint is required'),
    (dict(checkpoint='x.pth'), 'teacher must be'),
    (dict(teacher=_parts(8), checkpoint='x.pth', temperature=0), 'temperature > 0'),
    (dict(teacher=_parts(8), checkpoint='x.pth', alpha=1), 'unknown keys'),
])
def test_bad_distill_config(distill, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='mmsemiprune.DistillRecognizerGCN', **_parts(4), distill=distill))


def test_teacher_checkpoint_of_another_architecture(tmp_path):
    other = MODELS.build(dict(type='RecognizerGCN', **_parts(4)))
    ckpt = tmp_path / 'o.pth'
    torch.save(dict(state_dict={k: v for k, v in other.state_dict().items() if 'cls_head' not in k}), ckpt)
    student = MODELS.build(dict(type='mmsemiprune.DistillRecognizerGCN', **_parts(4),
                                distill=dict(teacher=_parts(4), checkpoint=str(ckpt))))
    with pytest.raises(ValueError, match='lacks cls_head'):
        student.loss(*_batch())
