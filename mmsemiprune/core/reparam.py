"""Install a mask ψ on a module parameter so that the module computes with W = Ŵ ⊙ ψ(Ŵ).

Unlike ``torch.nn.utils.parametrize`` this keeps the **stock parameter names** (``conv.weight``,
``gcn.PA`` stay in the state dict and load from dense MMAction2 checkpoints), and MMEngine's weight
initialisation still writes into the real parameter Ŵ. The mask module lives next to the parameter
under ``<param>_psi`` (e.g. ``conv.weight_psi.thr_entry``).

Two mechanisms:

- ``weight`` of ``nn.Conv1d/2d/3d`` and ``nn.Linear``: the instance's class is swapped to a subclass
  whose ``forward`` uses ``self.masked_weight()``; ``module.weight`` is still the Parameter Ŵ.
- any other parameter (an adjacency ``PA``/``A``): the instance's class is swapped to a subclass with a
  read-only property of that name returning Ŵ ⊙ ψ(Ŵ); the Parameter stays in ``_parameters``.
  (Reading ``module.PA`` then gives the masked value: initialise such a parameter through
  ``module._parameters['PA']``. Property-masked modules deep-copy but cannot be pickled whole with
  ``torch.save(model)``; state dicts work, as usual for MMEngine.)

:func:`bake` writes Ŵ ⊙ ψ back into the parameter and restores the stock class.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .cascade import SemiMask

__all__ = ['install_mask', 'bake', 'strip_masks', 'get_mask', 'masked_tensor', 'is_masked']

_PSI = '_psi'


def masked_tensor(module: nn.Module, pname: str) -> torch.Tensor:
    """Ŵ ⊙ ψ(Ŵ) for ``module.<pname>``."""
    latent = module._parameters[pname]
    mask = getattr(module, pname + _PSI)
    hit = mask.batched(latent)  # soft masks: the slice of the pruner's batched Ŵ ⊙ ψ (core/fused/batch.py)
    if hit is not None:
        return hit[0]
    return latent * mask(latent)


class _MaskedConvMixin:
    _stock_class = None

    def masked_weight(self):
        return masked_tensor(self, 'weight')

    def masked_params(self):
        """(Ŵ ⊙ ψ, b ⊙ β): with ``mask_bias`` on the mask, the bias of an output row whose weights are all
        masked is masked too, β_o = max_i ψ_{o,i} (so a pruned channel emits exactly 0, not a bias pattern
        that BatchNorm and the adjacency turn into a signal the next layer learns to read)."""
        latent = self._parameters['weight']
        mask = getattr(self, 'weight' + _PSI)
        bias = self.bias
        hit = mask.batched(latent, bias if mask.mask_bias else None)  # soft masks, batched (core/fused/batch.py)
        if hit is not None:
            return hit[0], (hit[1] if mask.mask_bias else bias)
        psi = mask(latent)
        if bias is not None and mask.mask_bias and not mask.bias_untouched():
            bias = bias * mask.row_keep(psi)
        return latent * psi, bias


class MaskedConv1d(_MaskedConvMixin, nn.Conv1d):
    _stock_class = nn.Conv1d

    def forward(self, x):
        return self._conv_forward(x, *self.masked_params())


class MaskedConv2d(_MaskedConvMixin, nn.Conv2d):
    _stock_class = nn.Conv2d

    def forward(self, x):
        return self._conv_forward(x, *self.masked_params())


class MaskedConv3d(_MaskedConvMixin, nn.Conv3d):
    _stock_class = nn.Conv3d

    def forward(self, x):
        return self._conv_forward(x, *self.masked_params())


class MaskedLinear(_MaskedConvMixin, nn.Linear):
    _stock_class = nn.Linear

    def forward(self, x):
        return F.linear(x, *self.masked_params())


_SWAP = {nn.Conv1d: MaskedConv1d, nn.Conv2d: MaskedConv2d, nn.Conv3d: MaskedConv3d, nn.Linear: MaskedLinear}
_PROP_CLASSES = {}


def _property_class(base, pnames):
    key = (base, tuple(sorted(pnames)))
    if key not in _PROP_CLASSES:
        ns = {'_stock_class': base, '_masked_params': key[1]}
        for p in key[1]:
            ns[p] = property(lambda self, _p=p: masked_tensor(self, _p))
        _PROP_CLASSES[key] = type(f'Masked{base.__name__}', (base, ), ns)
    return _PROP_CLASSES[key]


def is_masked(module: nn.Module, pname: str) -> bool:
    return hasattr(module, pname + _PSI) and isinstance(getattr(module, pname + _PSI), SemiMask)


def get_mask(module: nn.Module, pname: str) -> SemiMask:
    return getattr(module, pname + _PSI)


def install_mask(module: nn.Module, pname: str, mask: SemiMask, qualname: str = '') -> None:
    """Attach ``mask`` to ``module.<pname>`` (in place)."""
    where = f'{qualname}.{pname}' if qualname else pname
    if pname not in module._parameters or module._parameters[pname] is None:
        have = ', '.join(n for n, p in module._parameters.items() if p is not None) or 'none'
        raise ValueError(f'cannot prune {where}: {type(module).__name__} has no parameter {pname!r} '
                         f'(its parameters: {have})')
    if is_masked(module, pname):
        raise ValueError(f'{where} is already masked')
    if tuple(module._parameters[pname].shape) != mask.shape:
        raise ValueError(f'mask for {where} has shape {mask.shape}, parameter has '
                         f'{tuple(module._parameters[pname].shape)}')
    cls = type(module)
    if pname != 'weight' and cls in _SWAP.values():
        raise ValueError(f'{where}: only the weight of a {cls.__name__} can be masked')
    module.add_module(pname + _PSI, mask)
    if pname == 'weight' and cls in _SWAP:
        module.__class__ = _SWAP[cls]
    elif pname == 'weight' and isinstance(module, _MaskedConvMixin):
        pass
    else:
        base = getattr(cls, '_stock_class', None) or cls
        pnames = set(getattr(cls, '_masked_params', ())) | {pname}
        if cls in _SWAP.values():
            raise ValueError(f'{where}: only the weight of a {base.__name__} can be masked')
        module.__class__ = _property_class(base, pnames)


@torch.no_grad()
def bake(module: nn.Module) -> None:
    """Replace every masked parameter of ``module`` (not recursive) by Ŵ ⊙ ψ(Ŵ) and restore the stock
    class; afterwards the module is a plain torch / MMAction2 module with identical outputs."""
    names = [n[:-len(_PSI)] for n, m in module.named_children() if n.endswith(_PSI) and isinstance(m, SemiMask)]
    if not names:
        return
    for p in names:
        if p == 'weight' and isinstance(module, _MaskedConvMixin):
            w, b = module.masked_params()
            if b is not None:
                module._parameters['bias'].data.copy_(b.detach())
            value = w.detach().clone()
        else:
            value = masked_tensor(module, p).detach().clone()
        module._parameters[p].data.copy_(value)
        delattr(module, p + _PSI)
    stock = getattr(type(module), '_stock_class', None)
    if stock is not None:
        module.__class__ = stock


def strip_masks(model: nn.Module) -> nn.Module:
    """Remove every mask below ``model`` (in place) without applying it: the stock modules computing with
    the latent Ŵ itself (e.g. a dense teacher made from a deep copy). Returns ``model``."""
    for module in list(model.modules()):
        names = [n for n, m in module.named_children() if n.endswith(_PSI) and isinstance(m, SemiMask)]
        for n in names:
            delattr(module, n)
        stock = getattr(type(module), '_stock_class', None)
        if names and stock is not None:
            module.__class__ = stock
    return model
