"""``SemiPruneHook``: reporting, end-of-training freeze + BatchNorm re-estimation, NaN guard, and a
weights-only export of the final pruned weights. Masks and the schedule live in the model
(:class:`~mmsemiprune.models.SemiPruneRecognizerGCN`); this hook never adds parameters.

Add it with ``custom_hooks = [dict(type='mmsemiprune.SemiPruneHook')]`` (our configs do).
"""
import copy
import math
import os.path as osp
import random
from typing import Optional

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm
from mmengine.dist import all_reduce_params, is_distributed
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..compat import CheckpointError, checkpoint_source, trust_path
from ..core.finalize import recalibrate_bn
from ..core.report import format_report
from ..core.schedule import run_progress
from ..registry import HOOKS
from . import allocator

__all__ = ['SemiPruneHook', 'NonFiniteError', 'NonFiniteLossError', 'NonFiniteGradientError']


class NonFiniteError(RuntimeError):
    """Training produced NaN/inf (loss or gradients); the message names the step and the last good checkpoint."""


class NonFiniteLossError(NonFiniteError):
    pass


class NonFiniteGradientError(NonFiniteError):
    pass


def _on_cpu(model) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.device.type == 'cpu'


def _pruned_model(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return model if hasattr(model, 'pruner') else None


def _band_params(model) -> set:
    """ids of the learned band fractions (``thresholds='learned'``)."""
    bands = [m._modules.get('bands') for m in model.pruner.masks]
    return {id(p) for b in bands if b is not None for p in b.parameters()}


def _mask_state_params(model) -> set:
    """ids of the trained mask parameters that are not masked latents: the gate logits (``gates='param'``) and the
    learned band fractions."""
    return {id(m.gate.logit) for m in model.pruner.masks if getattr(m.gate, 'logit', None) is not None} | \
        _band_params(model)


@HOOKS.register_module()
class SemiPruneHook(Hook):
    """Args:
        log_interval: iterations between scalar logs of the pruning state.
        bn_batches: training batches used to re-estimate BatchNorm statistics when the masks are frozen
            by this hook at the end of training (schedule ``freeze=1.0``); 0 disables it.
        save_pruned: write ``<work_dir>/<name>_pruned.pth`` (plain tensors, loads with weights_only=True).
        check_finite: stop with a clear error on a NaN/inf loss, or on a NaN/inf gradient (checked by an
            optimizer step pre-hook, after gradient clipping and the DDP all-reduce, before the weights change;
            it names the parameters). Under AMP the loss scaler skips steps with inf gradients by design, and
            such steps never reach the optimizer, so they are not reported.
        reseed_epochs: reseed Python's, NumPy's and torch's global RNGs at the start of every training epoch
            from (the run's seed, epoch). MMEngine does not save RNG states in checkpoints and MMAction2's
            test-mode ``UniformSampleFrames`` reseeds NumPy during validation, so without this a run killed
            and resumed with ``--resume`` samples other clips than an uninterrupted run and ends with other
            weights (and in general other masks); with it, resuming from an epoch checkpoint reproduces the
            uninterrupted run exactly (epoch-based loops; tests/reliability/test_rel_training.py).
        gate_group: give the gate logits their own optimizer parameter group (ours; an ablation switch: None, the
            default, reads ``prune_cfg.ablation.gate_group``, True unless set there): no weight decay (it would
            pull every gate towards "undecided"; learned band fractions get a group of their own, also without
            momentum), the run's learning rate while masks are soft, and once the
            masks are frozen lr 0 with the momentum buffers cleared, so nothing carries the logits on past the
            freeze (their decisions are frozen in buffers anyway). The group is added before checkpoints are
            loaded, so ``--resume`` restores its state; MMEngine's LR schedulers leave it alone.
        reset_momentum: when the masks become hard (hard phase or freeze), clear the optimizer state of the
            masked tensors once (ours): a fine-tune with fresh momentum, like the one-shot baselines get. None
            (the default) reads ``prune_cfg.ablation.reset_momentum`` (True unless set there).
        log_transitions: before each step at which the masks change kind (soft → hard phase, soft or hard →
            frozen), log ``loss_cls`` of that step's batch with the current masks and with the next ones, on a
            copy of the model with the same weights (train-mode BatchNorm), and the structural share of both:
            the check that the trained mask is the mask that is kept (a jump means the network trained on a
            mask it does not get). Also stored in the MessageHub info ``prune_transitions``.
        retain_freed_memory: on the CPU, keep freed heap memory for reuse by the next step (glibc ``mallopt``,
            :mod:`mmsemiprune.engine.allocator`; ours): the soft-mask step frees and faults back ~100 MB of
            temporaries per step otherwise (measured on NTU ST-GCN: ~30,000 page faults and ~56 ms of system time
            per step; soft step 1.138x -> 1.114x stock). Skipped under jemalloc / tcmalloc, with glibc's own
            ``MALLOC_*_`` variables set, or with ``MMSEMIPRUNE_MALLOC=default``.
    """
    priority = 'NORMAL'

    def __init__(self, log_interval: int = 10, bn_batches: int = 20, save_pruned: bool = True,
                 check_finite: bool = True, reseed_epochs: bool = True, gate_group: Optional[bool] = None,
                 reset_momentum: Optional[bool] = None, log_transitions: bool = True, retain_freed_memory: bool = True):
        self.retain_freed_memory = retain_freed_memory
        self.gate_group = gate_group
        self.log_transitions = log_transitions
        self.transitions = []
        self.reset_momentum = reset_momentum
        self._momentum_reset = False
        self._gates_stopped = False
        self.reseed_epochs = reseed_epochs
        self.log_interval = log_interval
        self.bn_batches = bn_batches
        self.save_pruned = save_pruned
        self.check_finite = check_finite

    def before_run(self, runner):
        trust_path(runner.work_dir)  # the run's own checkpoints may be unpickled on resume
        model = _pruned_model(runner)
        self._resolve_switches(model)
        if model is None:
            runner.logger.warning('SemiPruneHook: the model has no pruner (use type='
                                  "'mmsemiprune.SemiPruneRecognizerGCN'); the hook does nothing")
        elif self.gate_group:
            self._split_gate_group(runner, model)
        if model is not None and self.retain_freed_memory and _on_cpu(model):
            runner.logger.info(f'SemiPruneHook: CPU run, glibc keeps freed memory for reuse: {allocator.retain_freed_memory()} '
                               '(SemiPruneHook(retain_freed_memory=False) or MMSEMIPRUNE_MALLOC=default: off)')

    def _resolve_switches(self, model) -> None:
        """``gate_group`` / ``reset_momentum`` left at None: the model's ``prune_cfg.ablation`` (True without one)."""
        ablation = getattr(getattr(getattr(model, 'pruner', None), 'config', None), 'ablation', None)
        for k in ('gate_group', 'reset_momentum'):
            if getattr(self, k) is None:
                setattr(self, k, bool(getattr(ablation, k, True)))

    @staticmethod
    def _optimizers(runner):
        wrappers = runner.optim_wrapper.values() if hasattr(runner.optim_wrapper, 'values') else [runner.optim_wrapper]
        return [w.optimizer for w in wrappers if isinstance(getattr(w, 'optimizer', None), torch.optim.Optimizer)]

    def _split_gate_group(self, runner, model):
        """Move the gate logits into their own parameter group with weight_decay 0 (see ``gate_group``)."""
        gates = _mask_state_params(model)
        if not gates or not hasattr(runner, 'optim_wrapper') or isinstance(runner.optim_wrapper, dict):
            return
        for opt in self._optimizers(runner):
            moved = []
            for group in opt.param_groups:
                keep = [p for p in group['params'] if id(p) not in gates]
                moved += [p for p in group['params'] if id(p) in gates]
                if len(keep) != len(group['params']):
                    template = group
                    group['params'] = keep
            if moved:
                new = {k: v for k, v in template.items() if k != 'params'}
                new.update(params=moved, weight_decay=0.0, gate_group=True)
                opt.param_groups[:] = [g for g in opt.param_groups if g['params']]
                bands = [p for p in moved if id(p) in _band_params(model)]
                if bands and 'momentum' in new:  # learned band fractions: no momentum (measured: it overshoots)
                    new['params'] = [p for p in moved if id(p) not in _band_params(model)]
                    opt.add_param_group(dict(new, params=bands, momentum=0.0, nesterov=False))
                if new['params']:
                    opt.add_param_group(new)
                runner.logger.info(f'SemiPruneHook: {len(moved)} gate logit / band fraction tensors in their own '
                                   'parameter group (weight_decay 0; lr 0 and momentum cleared once the masks freeze)')

    def _reset_momentum(self, runner, model):
        """Clear the optimizer state (momentum) of every masked latent once the masks are hard: it was built
        from the soft masks' gradients, whose band-stop term grows like 1/τ near the threshold, and would
        keep pushing the kept weights for tens of steps into the fine-tune."""
        latents = {id(w) for _, _, w in model.pruner.items()}
        latents |= _mask_state_params(model)
        n = 0
        for opt in self._optimizers(runner):
            for group in opt.param_groups:
                for p in group['params']:
                    if id(p) in latents and opt.state.pop(p, None) is not None:
                        n += 1
        self._momentum_reset = True
        runner.logger.info(f'SemiPruneHook: masks are hard from now on; cleared the optimizer state of {n} '
                           'masked tensors')

    def _stop_gates(self, runner):
        for opt in self._optimizers(runner):
            for group in opt.param_groups:
                if group.get('gate_group'):
                    group['lr'] = 0.0
                    for p in group['params']:
                        opt.state.pop(p, None)
        self._gates_stopped = True

    def after_load_checkpoint(self, runner, checkpoint):
        # runs before MMEngine reads the message hub / optimizer of a resumed checkpoint
        if getattr(runner, '_resume', False) and isinstance(checkpoint, dict) and 'message_hub' not in checkpoint:
            src = checkpoint_source(checkpoint.get('state_dict', checkpoint))
            raise CheckpointError(
                f'cannot resume from {src}: it is a weights-only file (no message hub / optimizer state, e.g. the '
                '*_pruned.pth export): --resume needs a full training checkpoint <work_dir>/epoch_N.pth; to start '
                'a new run from these weights use --load-from instead')

    def before_train(self, runner):
        self._grad_hooks = []
        if not self.check_finite:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        names = {id(p): n for n, p in model.named_parameters()}
        self._losses = {}

        def keep_losses(module, args, kwargs, output):  # the loss dict of the training forward
            if module.training and isinstance(output, dict):
                self._losses = output
        self._grad_hooks.append(model.register_forward_hook(keep_losses, with_kwargs=True))
        wrappers = runner.optim_wrapper.values() if hasattr(runner.optim_wrapper, 'values') \
            else [runner.optim_wrapper]
        for wrapper in wrappers:
            opt = getattr(wrapper, 'optimizer', None)
            if isinstance(opt, torch.optim.Optimizer):
                self._grad_hooks.append(opt.register_step_pre_hook(
                    lambda optimizer, args, kwargs: self._check_grads(runner, optimizer, names, self._losses)))

    def after_train(self, runner):
        for h in getattr(self, '_grad_hooks', []):
            h.remove()
        self._grad_hooks = []
        self._after_train(runner)

    @staticmethod
    def _check_grads(runner, optimizer, names, losses):
        """Optimizer step pre-hook: raise on NaN/inf gradients of a finite loss (a non-finite loss is reported,
        with the loss values, by after_train_iter)."""
        params = [p for g in optimizer.param_groups for p in g['params'] if p.grad is not None]
        if not params or bool(torch.stack([torch.isfinite(p.grad).all() for p in params]).all()):
            return
        if not all(bool(torch.isfinite(v).all()) for v in losses.values() if torch.is_tensor(v)):
            return
        bad = [names.get(id(p), f'<unnamed {tuple(p.shape)}>') for p in params if not torch.isfinite(p.grad).all()]
        last = runner.message_hub.get_info('last_ckpt')
        more = f' and {len(bad) - 3} more' if len(bad) > 3 else ''
        raise NonFiniteGradientError(
            f'non-finite gradient at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            f'{len(bad)} parameter(s) have NaN/inf gradients ({", ".join(bad[:3])}{more}); the loss was finite and the '
            f'weights were not updated. Last good checkpoint: {last or "none saved yet"}. Lower the learning rate, '
            'add gradient clipping (optim_wrapper=dict(clip_grad=dict(max_norm=20))), check the data for NaN/inf, '
            'then resume with --resume.')

    def before_train_epoch(self, runner):
        if self.reseed_epochs and getattr(runner, 'seed', None) is not None:
            seed = int(np.random.SeedSequence([int(runner.seed) % 2**32, int(runner.epoch)]).generate_state(1)[0])
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    # -- phase transitions ---------------------------------------------------------------------------------
    @staticmethod
    def _share(pr) -> float:
        """Mean share of group-decided gates over the semi masks (NaN without semi masks)."""
        semi = [m for m in pr.masks if m.prune_mode.gated]
        return sum(float(m.current_gates().float().mean()) for m in semi) / len(semi) if semi else float('nan')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.log_transitions or data_batch is None or runner.iter == 0:
            return  # at the first step a one-shot freeze is the pruning itself, not a transition
        model = _pruned_model(runner)
        if model is None or model.pruner.frozen:
            return
        p = run_progress(runner.iter, runner.max_iters)  # what the recognizer's set_progress will get
        now, nxt = model.pruner.phase, model.pruner.phase_at(p)
        if now != nxt:
            self._probe(runner, model, data_batch, p, now, nxt)

    def _probe(self, runner, model, data_batch, p, now, nxt):
        from ..models.recognizer import SemiPruneRecognizerGCN
        try:
            c = copy.deepcopy(model)
            c.train()
            with torch.no_grad():
                data = c.data_preprocessor(copy.copy(data_batch), True)
                base = super(SemiPruneRecognizerGCN, c).loss  # the stock loss: no schedule step, no distillation
                before, share_before = float(base(data['inputs'], data['data_samples'])['loss_cls']), self._share(c.pruner)
                c.pruner.set_progress(p)
                after, share_after = float(base(data['inputs'], data['data_samples'])['loss_cls']), self._share(c.pruner)
        except Exception as e:  # a diagnostic: never stops training
            runner.logger.warning(f'SemiPruneHook: transition check skipped ({type(e).__name__}: {e})')
            return
        change = after / before - 1.0 if before > 0 else float('nan')
        rec = dict(iter=runner.iter + 1, transition=f'{now}->{nxt}', loss_cls_before=before, loss_cls_after=after,
                   change=change, share_before=share_before, share_after=share_after)
        self.transitions.append(rec)
        runner.message_hub.update_info('prune_transitions', list(self.transitions))
        learned = c.pruner.hard_stats.get('learned_kept') if nxt == 'frozen' else None  # thresholds='learned'
        rec['learned_kept'] = learned
        runner.logger.info(f'SemiPruneHook: masks {now} -> {nxt} at iteration {runner.iter + 1}: loss_cls of this '
                           f'batch with the same weights {before:.4f} -> {after:.4f} ({change:+.1%}), structural '
                           f'share {share_before:.3f} -> {share_after:.3f}'
                           + (f'; the learned bands kept {learned:.4f} of the cost before the exact projection'
                              if learned is not None else ''))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.check_finite and outputs:
            bad = {k: float(v.detach()) for k, v in outputs.items()
                   if torch.is_tensor(v) and v.numel() == 1 and not math.isfinite(float(v.detach()))}
            if bad:
                last = runner.message_hub.get_info('last_ckpt')
                raise NonFiniteLossError(
                    f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {bad}. '
                    f'Last good checkpoint: {last or "none saved yet"}. Lower the learning rate or '
                    'budget_weight, check the data for NaN/inf, then resume with --resume.')
        model = _pruned_model(runner)
        if model is not None and (self.gate_group is None or self.reset_momentum is None):
            self._resolve_switches(model)
        if model is not None and self.reset_momentum and not self._momentum_reset \
                and (model.pruner.in_hard_phase or model.pruner.frozen) and float(model.pruner.progress) > 0:
            self._reset_momentum(runner, model)
        if model is not None and self.gate_group and not self._gates_stopped and model.pruner.frozen:
            self._stop_gates(runner)
        if model is None or not self.every_n_train_iters(runner, self.log_interval):
            return
        share = self._share(model.pruner)
        if not math.isnan(share):
            runner.message_hub.update_scalar('train/prune_gate_group_share', share)

    def after_train_epoch(self, runner):
        # before CheckpointHook (VERY_LOW) and before the last validation
        if runner.epoch + 1 >= getattr(runner, 'max_epochs', float('inf')):
            self._finish(runner)

    def _after_train(self, runner):
        self._finish(runner)
        model = _pruned_model(runner)
        if model is None:
            return
        rep = model.pruner.report()
        runner.logger.info('pruning report\n' + format_report(rep))
        if self.save_pruned and runner.rank == 0:
            name = osp.splitext(osp.basename(getattr(runner.cfg, 'filename', None) or 'model'))[0]
            path = osp.join(runner.work_dir, f'{name}_pruned.pth')
            sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            meta = dict(mmsemiprune=dict(target_rate=rep['target_rate'], rate_params=rep['rate_params'],
                                         mode=rep['mode'], structural_share=rep['structural_share']),
                        epoch=runner.epoch, iter=runner.iter)
            torch.save(dict(state_dict=sd, meta=meta), path)
            runner.logger.info(f'weights-only pruned checkpoint: {path}')

    @torch.no_grad()
    def _finish(self, runner):
        """Freeze if the schedule did not; re-estimate BN statistics when the masks were frozen with
        (almost) no fine-tuning left (< 5 % of the run), since stale statistics ruin hard masks."""
        model = _pruned_model(runner)
        if model is None or getattr(self, '_finished', False):
            return
        self._finished = True
        if not model.pruner.frozen:
            stats = model.pruner.freeze()
            runner.logger.info(f'SemiPruneHook: froze masks at the end of training: {stats}')
        if self.bn_batches > 0 and float(model.pruner.frozen_at) >= 0.95:
            loader = runner.train_dataloader

            def run(batch):
                data = model.data_preprocessor(batch, True)
                model.extract_feat(data['inputs'])
            n = recalibrate_bn(model, run, loader, self.bn_batches)
            if is_distributed():
                # every rank re-estimated on its own shard after SyncBuffersHook ran: average again so that
                # all ranks (and the checkpoints rank 0 writes) hold the same statistics
                all_reduce_params([b for mod in model.modules() if isinstance(mod, _BatchNorm)
                                   for b in (mod.running_mean, mod.running_var) if b is not None], op='mean')
            runner.logger.info(f'SemiPruneHook: re-estimated BatchNorm statistics on {n} training batches '
                               'under the final masks')

    def _add_metrics(self, runner, metrics, mode):
        model = _pruned_model(runner)
        if model is None or metrics is None:
            return
        rep = model.pruner.report()
        new = dict(prune_rate=round(rep['rate_params'], 4))
        if 'rate_flops' in rep:
            new['prune_rate_flops'] = round(rep['rate_flops'], 4)
        new['prune_structural_share'] = round(rep['structural_share'], 4)
        metrics.update(new)
        # RuntimeInfoHook (VERY_HIGH) already copied the metrics into the message hub; LoggerHook
        # (BELOW_NORMAL, after this hook) logs from there: add ours so the val/test line and scalars.json show them
        for k, v in new.items():
            runner.message_hub.update_scalar(f'{mode}/{k}', v)

    def after_val_epoch(self, runner, metrics=None):
        self._add_metrics(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics=None):
        self._add_metrics(runner, metrics, 'test')
