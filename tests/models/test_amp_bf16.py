"""bf16 autocast training of the pruned recognizer (what ``tools/train.py --amp`` with bf16 runs): MMAction2
1.1.0's ``BaseHead.loss_by_feat`` computes ``top_k_accuracy`` in NumPy, which fails on bf16 scores
(``TypeError: Got unsupported ScalarType BFloat16``); the recognizer hands the head's scores on as float32.
Checked on CPU with ``torch.autocast('cpu', bfloat16)`` (MMEngine's AmpOptimWrapper needs a GPU)."""
import copy

import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmaction.utils import register_all_modules
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from mmsemiprune.models import SemiPruneRecognizerGCN  # noqa: F401

pytestmark = pytest.mark.usefixtures('one_thread')
register_all_modules(init_default_scope=True)


def test_bf16_autocast_train_step_to_frozen():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='mmsemiprune.SemiPruneRecognizerGCN',
        backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'), base_channels=16,
                      num_stages=4, inflate_stages=[3], down_stages=[3]),
        cls_head=dict(type='GCNHead', num_classes=4, in_channels=32), prune_cfg=dict(target_rate=0.8)))
    x = torch.randn(4, 1, 2, 16, 25, 3, generator=torch.Generator().manual_seed(0))
    data = dict(inputs=[x[i] for i in range(4)],
                data_samples=[ActionDataSample().set_gt_labels(torch.tensor([i])) for i in range(4)])
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    hub = MessageHub.get_instance('sp-test-bf16')
    hub.update_info('max_iters', 6)
    model.train()
    for it in range(6):
        hub.update_info('iter', it)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model.train_step(copy.copy(data), ow)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert model.pruner.frozen and 'top1_acc' in out
