"""Load-time validation of PoseDataset annotation pickles.

Expected file content (MMAction2 ``PoseDataset``)::

    dict(split={split_name: [frame_dir, ...], ...},
         annotations=[dict(frame_dir=str, label=int >= 0,
                           keypoint=float array (M, T, V, C=3 or 2),
                           total_frames=T,
                           keypoint_score=(M, T, V) optional), ...])

(a bare list of annotations is accepted when no split is requested).

:func:`validate_pose_annotations` and :class:`CheckedPoseDataset` (a
``PoseDataset`` registered in MMAction2's ``DATASETS``) check this once at
load time and raise one :class:`AnnotationError` naming the file, the
sample (index and ``frame_dir``), the problem and the fix, instead of an
``AssertionError``/``KeyError`` deep inside a transform during training.
Only the samples of the selected split are checked.

:func:`check_dataset_cfgs` runs the same checks on the dataset *configs*
of a training / test config (MMAction2's stock ``PoseDataset`` too, inside
wrappers such as ``RepeatDataset``), before anything is built: the tools
call it so that the one-line path gets the same errors.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
from typing import Any, List, Optional

import numpy as np
from mmaction.datasets import PoseDataset
from mmaction.registry import DATASETS

from .graph_layouts import num_joints_of

__all__ = ['AnnotationError', 'validate_pose_annotations', 'check_dataset_cfgs',
           'CheckedPoseDataset']

_CONVERTERS = ('the converters in tools/data/ (convert_sbu.py, '
               'convert_fpha.py, convert_msr3d.py, convert_ntu.py) or '
               'tools/make_demo_data.py')
_RECONVERT = 're-create the file with ' + _CONVERTERS


class AnnotationError(ValueError):
    """A PoseDataset annotation file is unusable.

    Attributes: ``path``, ``sample`` (``'#index (frame_dir)'`` or None),
    ``problem``, ``fix``.
    """

    def __init__(self, path: str, problem: str, fix: str,
                 sample: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        self.path, self.problem, self.fix, self.sample = (path, problem, fix,
                                                          sample)
        self.field = field
        where = f' sample {sample}' if sample else ''
        src = f' (config: {field})' if field else ''
        super().__init__(f'Bad pose annotation file {path!r}{where}: '
                         f'{problem}. Fix: {fix}.{src}')


def _load(path: str) -> Any:
    if not path:
        raise AnnotationError(str(path), 'no annotation file given',
                              'set ann_file to a .pkl file')
    if not osp.exists(path):
        raise AnnotationError(
            path, 'file not found',
            'check ann_file / data_root (relative paths are resolved from '
            f'the working directory {os.getcwd()!r}); create it with '
            + _CONVERTERS)
    if osp.isdir(path):
        raise AnnotationError(path, 'is a directory, not a .pkl file',
                              'point ann_file to the .pkl file inside it')
    if not path.endswith('.pkl'):
        raise AnnotationError(path, 'PoseDataset only reads .pkl files',
                              'convert the annotations to a pickle (.pkl)')
    if osp.getsize(path) == 0:
        raise AnnotationError(path, 'file is empty (0 bytes)',
                              'the conversion was probably interrupted; '
                              + _RECONVERT)
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError) as e:
        raise AnnotationError(
            path, 'not a readable pickle (truncated, corrupted or not a '
            f'pickle at all): {type(e).__name__}: {e}',
            'the file is damaged; ' + _RECONVERT) from None


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _require_ident(path: str, i: int, a: Any, ident: str) -> None:
    if not isinstance(a, dict):
        raise AnnotationError(path, f'annotation is a {type(a).__name__}, '
                              'not a dict', 'each annotation must be '
                              'dict(frame_dir, label, keypoint, '
                              'total_frames)', f'#{i}')
    if ident not in a:
        raise AnnotationError(path, f'annotation has no {ident!r}',
                              f'add {ident}=<sample name used in the split '
                              'lists>', f'#{i}')


def _check_sample(path: str, i: int, a: Any, ident: str,
                  num_joints: Optional[int], joints_src: str,
                  coord_dim: Optional[int]) -> None:
    name = a.get(ident)
    sample = f'#{i} ({ident}={name!r})'

    def err(problem: str, fix: str) -> AnnotationError:
        return AnnotationError(path, problem, fix, sample)

    _check_label(a, err)
    kp = _check_keypoint(a, err, num_joints, joints_src, coord_dim)
    _check_frames_and_scores(a, kp, err)


def _check_label(a: dict, err) -> None:
    """``label``: a non-negative int (or a list of ints for multi-label
    data); ``err(problem, fix)`` makes the error to raise."""
    label = a.get('label')
    if label is None:
        raise err("has no 'label'", "add label=<0-based class index>")
    if _is_int(label):
        if label < 0:
            raise err(f'label {label} is negative',
                      'labels are 0-based class indices (>= 0)')
    elif isinstance(label, (list, tuple, np.ndarray)):
        if not all(_is_int(x) or (isinstance(x, (float, np.floating))
                                  and float(x).is_integer())
                   for x in np.asarray(label).ravel().tolist()):
            raise err(f'label {label!r} is not a list of ints',
                      'use an int class index (or int lists for '
                      'multi-label data)')
    else:
        raise err(f'label {label!r} ({type(label).__name__}) is not an int',
                  'store label as a 0-based int class index')


def _check_keypoint(a: dict, err, num_joints: Optional[int], joints_src: str,
                    coord_dim: Optional[int]) -> np.ndarray:
    """``keypoint``: a finite numeric (M, T, V, C) array with the expected
    joints and coordinates; returns it."""
    if 'keypoint' not in a:
        raise err("has no 'keypoint'", 'add keypoint as a float32 array '
                  '(M persons, T frames, V joints, 3)')
    kp = a['keypoint']
    if not isinstance(kp, np.ndarray):
        raise err(f'keypoint is a {type(kp).__name__}, not a numpy array',
                  'store keypoint as np.float32 array (M, T, V, 3)')
    if not (np.issubdtype(kp.dtype, np.floating)
            or np.issubdtype(kp.dtype, np.integer)):
        raise err(f'keypoint has non-numeric dtype {kp.dtype}',
                  'store keypoint as np.float32')
    if kp.ndim != 4:
        raise err(f'keypoint has shape {kp.shape} (ndim {kp.ndim}); '
                  'expected 4 dims (M persons, T frames, V joints, C coords)',
                  'reshape to (M, T, V, C), e.g. add a person axis with '
                  'kp[None] for single-person data')
    M, T, V, C = kp.shape
    if C not in (2, 3) or (coord_dim is not None and C != coord_dim):
        want = coord_dim if coord_dim is not None else '3 (x, y, z) or 2'
        raise err(f'keypoint last dim is {C} (shape {kp.shape}); expected '
                  f'{want}', 'the last axis must hold the coordinates; '
                  'drop confidence columns or transpose the array')
    if M < 1 or T < 1 or V < 1:
        raise err(f'keypoint is empty (shape {kp.shape})',
                  'remove this sample or re-convert it')
    if num_joints is not None and V != num_joints:
        raise err(f'keypoint has {V} joints but {joints_src} expects '
                  f'{num_joints}', 'use the graph layout that matches the '
                  'data (e.g. nturgb+d=25, openni15=15, kinect20=20, '
                  'hand21=21) or the right ann_file')
    bad = ~np.isfinite(kp)
    if bad.any():
        m, t, v, _ = np.argwhere(bad)[0]
        raise err(f'keypoint has {int(bad.sum())} NaN/inf values (first at '
                  f'person {m}, frame {t}, joint {v})',
                  'interpolate or drop the broken frames (or zero them if '
                  'untracked) before writing the pickle')
    return kp


def _check_frames_and_scores(a: dict, kp: np.ndarray, err) -> None:
    """``total_frames`` equal to the keypoint's T; ``keypoint_score``, when
    present, finite and of shape (M, T, V)."""
    T = kp.shape[1]
    if 'total_frames' not in a:
        raise err("has no 'total_frames'",
                  f'add total_frames=keypoint.shape[1] (= {T})')
    tf = a['total_frames']
    if not _is_int(tf) or tf != T:
        raise err(f'total_frames={tf!r} but keypoint has T={T} frames '
                  f'(shape {kp.shape})', 'set total_frames = '
                  'keypoint.shape[1]')
    if 'keypoint_score' in a:
        ks = a['keypoint_score']
        if not isinstance(ks, np.ndarray) or ks.shape != kp.shape[:3]:
            shape = getattr(ks, 'shape', type(ks).__name__)
            raise err(f'keypoint_score has shape {shape}, expected '
                      f'{kp.shape[:3]}', 'keypoint_score must be (M, T, V)')
        if not np.all(np.isfinite(ks)):
            raise err('keypoint_score has NaN/inf values',
                      'replace them with 0 (untracked)')


def validate_pose_annotations(path: str,
                              num_joints: Optional[int] = None,
                              split: Optional[str] = None,
                              layout: Optional[str] = None,
                              coord_dim: Optional[int] = None,
                              strict_split: bool = True) -> List[dict]:
    """Load and validate a PoseDataset pickle.

    Args:
        path: the ``.pkl`` file.
        num_joints: expected joint count V (optional).
        split: split name to select (``None`` = all annotations).
        layout: graph layout name; gives ``num_joints`` if that is None.
        coord_dim: expected coordinate count C (3 for 3D), optional.
        strict_split: error if the split lists names that have no
            annotation (otherwise they are ignored, as ``PoseDataset`` does).

    Returns:
        The selected annotation dicts (the ``data_list`` of the dataset).

    Raises:
        AnnotationError: on the first problem found.
    """
    joints_src = 'num_joints'
    if layout is not None:
        n = num_joints_of(layout)
        if num_joints is not None and num_joints != n:
            raise ValueError(f'num_joints={num_joints} contradicts layout '
                             f'{layout!r} ({n} joints); give only one')
        num_joints, joints_src = n, f'graph layout {layout!r}'
    return _select_and_check(path, _load(path), num_joints, joints_src, split,
                             coord_dim, strict_split)


def _select_and_check(path: str, obj: Any, num_joints: Optional[int],
                      joints_src: str, split: Optional[str],
                      coord_dim: Optional[int],
                      strict_split: bool) -> List[dict]:
    """The checks of :func:`validate_pose_annotations` on a loaded pickle."""
    keys_fix = ("expected dict(split={name: [frame_dir, ...]}, "
                "annotations=[...]); " + _RECONVERT)
    annos, split_map = _unpack(path, obj, split, keys_fix)
    ident = ('filename' if isinstance(annos[0], dict)
             and 'filename' in annos[0] else 'frame_dir')
    if split is None:
        selected = list(enumerate(annos))
    else:
        selected = _select_split(path, annos, ident, split, split_map,
                                 strict_split, keys_fix)
    for i, a in selected:
        _require_ident(path, i, a, ident)
        _check_sample(path, i, a, ident, num_joints, joints_src, coord_dim)
    return [a for _, a in selected]


def _unpack(path: str, obj: Any, split: Optional[str], keys_fix: str):
    """(annotations, split map or None) of a loaded pickle: a bare list or
    dict(split=..., annotations=...), the annotations a non-empty list."""
    if isinstance(obj, list):
        if split is not None:
            raise AnnotationError(
                path, f'file holds a bare list of annotations, so split '
                f'{split!r} cannot be selected', 'set split=None or write '
                "dict(split=..., annotations=...)")
        annos, split_map = obj, None
    elif isinstance(obj, dict):
        if 'annotations' not in obj:
            raise AnnotationError(path, "pickle has no 'annotations' key "
                                  f'(keys: {sorted(map(str, obj))})',
                                  keys_fix)
        annos, split_map = obj['annotations'], obj.get('split')
        if not isinstance(annos, (list, tuple)):
            raise AnnotationError(path, "'annotations' is a "
                                  f'{type(annos).__name__}, not a list',
                                  keys_fix)
        if split is not None and split_map is None:
            raise AnnotationError(path, f"pickle has no 'split' key, so "
                                  f'split {split!r} cannot be selected',
                                  'set split=None to use all annotations, '
                                  'or ' + keys_fix)
    else:
        raise AnnotationError(path, f'pickle holds a {type(obj).__name__}, '
                              'not a dict', keys_fix)
    if not annos:
        raise AnnotationError(path, "'annotations' is empty", _RECONVERT)
    return annos, split_map


def _select_split(path: str, annos, ident: str, split: str, split_map: Any,
                  strict_split: bool, keys_fix: str) -> list:
    """[(index, annotation)] of the annotations the split names (every
    name found unless not ``strict_split``; at least one)."""
    if not isinstance(split_map, dict):
        raise AnnotationError(path, "'split' is a "
                              f'{type(split_map).__name__}, not a dict',
                              keys_fix)
    if split not in split_map:
        raise AnnotationError(
            path, f'unknown split {split!r}; available splits: '
            f'{sorted(map(str, split_map))}',
            'set split= (e.g. via --cfg-options '
            'train_dataloader.dataset.split=...) to one of them')
    names = split_map[split]
    if isinstance(names, (str, bytes)) or not hasattr(names,
                                                      '__iter__'):
        raise AnnotationError(path, f'split {split!r} is a '
                              f'{type(names).__name__}, not a list of '
                              'names', keys_fix)
    wanted = set(names)
    if not wanted:
        raise AnnotationError(path, f'split {split!r} is empty',
                              'pick a non-empty split or re-convert')
    selected, found = [], set()
    for i, a in enumerate(annos):
        _require_ident(path, i, a, ident)
        if a[ident] in wanted:
            selected.append((i, a))
            found.add(a[ident])
    missing = wanted - found
    if missing and strict_split:
        ex = sorted(map(str, missing))[:5]
        raise AnnotationError(
            path, f'split {split!r} lists {len(missing)} names with no '
            f'annotation, e.g. {ex}', 'the split and the annotations '
            'are out of sync; ' + _RECONVERT + ' (or pass '
            'strict_split=False to ignore them)')
    if not selected:
        raise AnnotationError(path, f'split {split!r} selects no '
                              'annotation', _RECONVERT)
    return selected


@DATASETS.register_module()
class CheckedPoseDataset(PoseDataset):
    """``PoseDataset`` that validates its pickle when loading.

    Same arguments as ``PoseDataset`` plus:

    Args:
        num_joints (int, optional): expected joint count V.
        layout (str, optional): graph layout name (e.g. ``'openni15'``)
            giving ``num_joints``.
        coord_dim (int, optional): expected coordinate count C.
        strict_split (bool): error when the split lists names without an
            annotation. Defaults to True.

    Raises :class:`AnnotationError` (a ``ValueError``) on bad files.
    """

    def __init__(self,
                 ann_file: str,
                 pipeline: list,
                 split: Optional[str] = None,
                 num_joints: Optional[int] = None,
                 layout: Optional[str] = None,
                 coord_dim: Optional[int] = None,
                 strict_split: bool = True,
                 **kwargs) -> None:
        if layout is not None:
            n = num_joints_of(layout)  # clear error for unknown layouts
            if num_joints is not None and num_joints != n:
                raise ValueError(f'CheckedPoseDataset: num_joints='
                                 f'{num_joints} contradicts layout '
                                 f'{layout!r} ({n} joints); give only one')
        self.num_joints = num_joints
        self.layout = layout
        self.coord_dim = coord_dim
        self.strict_split = strict_split
        super().__init__(ann_file, pipeline=pipeline, split=split, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = validate_pose_annotations(
            self.ann_file, num_joints=self.num_joints, split=self.split,
            layout=self.layout, coord_dim=self.coord_dim,
            strict_split=self.strict_split)
        if 'video' in self.data_prefix:  # same behaviour as PoseDataset
            for item in data_list:
                for key in ('filename', 'frame_dir'):
                    if key in item:
                        item[key] = osp.join(self.data_prefix['video'],
                                             item[key])
        return data_list


# -- checks of dataset configs, before anything is built --------------------
def _walk(node: Any, field: str):
    """(field, dict) of a dataset config and of the datasets it wraps
    (``dataset=`` of RepeatDataset / ClassBalancedDataset, ``datasets=`` of
    ConcatDataset)."""
    if not isinstance(node, dict):
        return
    yield field, node
    yield from _walk(node.get('dataset'), f'{field}.dataset')
    inner = node.get('datasets')
    if isinstance(inner, (list, tuple)):
        for i, d in enumerate(inner):
            yield from _walk(d, f'{field}.datasets.{i}')


def _dataset_class(type_: Any, scope: str):
    if isinstance(type_, type):
        return type_
    if not isinstance(type_, str):
        return None
    from mmengine.registry import DefaultScope
    try:
        with DefaultScope.overwrite_default_scope(scope):
            return DATASETS.get(type_)
    except Exception:  # an unknown type: the Runner reports it
        return None


def _model_joints(cfg) -> tuple:
    """(joint count, description) of ``model.backbone.graph_cfg.layout``."""
    model = cfg.get('model')
    bb = model.get('backbone') if isinstance(model, dict) else None
    graph = bb.get('graph_cfg') if isinstance(bb, dict) else None
    layout = graph.get('layout') if isinstance(graph, dict) else None
    if layout is None:
        return None, ''
    try:
        return num_joints_of(layout), (f'the model (model.backbone.graph_cfg.'
                                       f'layout={layout!r})')
    except Exception:  # unknown layout: the backbone reports it
        return None, ''


def check_dataset_cfgs(cfg, loaders=('train_dataloader', 'val_dataloader',
                                     'test_dataloader')) -> List[str]:
    """Check the annotation files of every pose dataset config of
    ``loaders`` (MMAction2's ``PoseDataset``, :class:`CheckedPoseDataset` and
    their subclasses, also inside dataset wrappers) before anything is built.

    The joint count is the dataset's own ``layout`` / ``num_joints``
    (CheckedPoseDataset) or else that of ``model.backbone.graph_cfg.layout``.
    Split names listed without an annotation are ignored for the stock
    ``PoseDataset``, as it does. Each file is read once.

    Returns the checked config fields; raises :class:`AnnotationError` whose
    message also names the config field.
    """
    scope = cfg.get('default_scope') or 'mmaction'
    model_joints = _model_joints(cfg)
    loaded, done, checked = {}, set(), []
    for key in loaders:
        dl = cfg.get(key)
        if not isinstance(dl, dict):
            continue
        for field, ds in _walk(dl.get('dataset'), f'{key}.dataset'):
            cls = _dataset_class(ds.get('type'), scope)
            if cls is None or not issubclass(cls, PoseDataset):
                continue
            ann = str(ds.get('ann_file') or '')
            root = ds.get('data_root') or ''
            if ann and root and not osp.isabs(ann):
                ann = osp.join(root, ann)
            own = issubclass(cls, CheckedPoseDataset)
            joints, src = model_joints
            if own and ds.get('layout') is not None:
                joints = num_joints_of(ds['layout'])
                src = f"graph layout {ds['layout']!r}"
            elif own and ds.get('num_joints') is not None:
                joints, src = ds['num_joints'], 'num_joints'
            coord = ds.get('coord_dim') if own else None
            strict = ds.get('strict_split', True) if own else False
            split = ds.get('split')
            todo = (ann, split, joints, coord, strict)
            if todo in done:
                continue
            try:
                if ann not in loaded:
                    loaded[ann] = _load(ann)
                _select_and_check(ann, loaded[ann], joints, src or 'the model',
                                  split, coord, strict)
            except AnnotationError as e:
                where, fix = 'ann_file', e.fix
                if e.problem.startswith('unknown split'):
                    where = 'split'
                    fix = (f'set {field}.split to one of them (e.g. '
                           f'--cfg-options {field}.split=NAME)')
                raise AnnotationError(e.path, e.problem, fix, e.sample,
                                      field=f'{field}.{where}') from None
            done.add(todo)
            checked.append(field)
    return checked
