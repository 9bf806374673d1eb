"""The fused fast path: the quantities of the per-tensor reference code computed for all masked tensors at once,
over one flat vector, with a number of operators that does not grow with the number of tensors.

- :mod:`.flat`       the static flat index of a mask list (:class:`~.flat.FlatIndex`), the flat scores, and the
                     version keys (:func:`~.flat.versions` / :func:`~.flat.unchanged`) its caches are checked by
- :mod:`.segment`    segment sums, maxima and gathers over static segment ids (atomic-free scans and sorts on GPUs)
- :mod:`.select`     exact weighted selection and per-segment k-th largest values (the threshold search's quantiles)
- :mod:`.batch`      all soft masks (and the stored masks' products) of a pruner in one pass
                     (:class:`~.batch.SoftBatch`)
- :mod:`.macs`       MACs after channel removal for all tensors at once (:class:`~.macs.FlatMacs`)
- :mod:`.cudagraph`  the soft phase's threshold search replayed from a captured CUDA graph

Each has a per-tensor reference it is tested against (tests/core/fused): :class:`~mmsemiprune.core.cascade.SemiMask`
for the soft masks, :func:`~mmsemiprune.core.compute.masked_macs_tensor` for the MACs, the eager
:func:`~mmsemiprune.core.budget.solve_thresholds` for the graphed search, ``index_add_`` and sorts for the reductions
and selections. This package imports nothing at import time: its modules import the core modules they build on.
"""
