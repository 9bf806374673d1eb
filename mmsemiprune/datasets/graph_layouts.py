"""Extra skeleton graph layouts for MMAction2's ``Graph``.

MMAction2 1.1.0 hard-codes three layouts (``'openpose'``, ``'nturgb+d'``,
``'coco'``) in ``mmaction.models.utils.graph.Graph``. This module keeps a
lookup table of extra layouts and patches ``Graph.__init__`` /
``Graph.set_layout`` (once, idempotently) so that a layout *name* from the
table works everywhere a stock name works, e.g.::

    import mmsemiprune.datasets  # registers the layouts
    STGCN(graph_cfg=dict(layout='openni15', mode='stgcn_spatial'))

Every layout is a tree given as ``inward`` edges ``(child, parent)`` (0-based
joint indices) that point towards ``center``; this is the convention the
stock layouts use, which the ``'spatial'`` mode (identity / inward / outward)
and the ``'stgcn_spatial'`` mode (root / closer / further w.r.t. ``center``)
rely on.

Extra layouts (joint order = the dataset's own file order, 0-based):

``'openni15'`` (15 joints, SBU Kinect Interaction, OpenNI):
    0 head, 1 neck, 2 torso, 3 left shoulder, 4 left elbow, 5 left hand,
    6 right shoulder, 7 right elbow, 8 right hand, 9 left hip, 10 left knee,
    11 left foot, 12 right hip, 13 right knee, 14 right foot.
    Centre: 2 (torso).
``'hand21'`` (21 joints, First-Person Hand Action benchmark):
    0 wrist, 1-5 MCP of thumb/index/middle/ring/pinky, then per finger
    (thumb, index, middle, ring, pinky) PIP, DIP, TIP: thumb 6-8,
    index 9-11, middle 12-14, ring 15-17, pinky 18-20.
    Centre: 0 (wrist, the kinematic root of the hand).
``'kinect20'`` (20 joints, MSR Action3D order, *not* the Kinect SDK order):
    0 right shoulder, 1 left shoulder, 2 neck (shoulder centre), 3 spine,
    4 right hip, 5 left hip, 6 hip centre, 7 right elbow, 8 left elbow,
    9 right wrist, 10 left wrist, 11 right hand, 12 left hand,
    13 right knee, 14 left knee, 15 right ankle, 16 left ankle,
    17 right foot, 18 left foot, 19 head.
    Centre: 3 (spine).
"""
from __future__ import annotations

import functools
from typing import Dict, List, Sequence, Tuple

__all__ = [
    'EXTRA_LAYOUTS', 'LAYOUT_NUM_JOINTS', 'STOCK_LAYOUTS', 'JOINT_NAMES',
    'PRENORM_AXES',
    'UnknownLayoutError', 'register_layout', 'register_graph_layouts',
    'get_layout', 'available_layouts', 'num_joints_of'
]

#: Layouts that MMAction2's ``Graph`` knows natively, with joint counts.
STOCK_LAYOUTS: Dict[str, int] = {'openpose': 18, 'nturgb+d': 25, 'coco': 17}

_OPENNI15_NAMES = [
    'head', 'neck', 'torso', 'left_shoulder', 'left_elbow', 'left_hand',
    'right_shoulder', 'right_elbow', 'right_hand', 'left_hip', 'left_knee',
    'left_foot', 'right_hip', 'right_knee', 'right_foot'
]
_OPENNI15_INWARD = [(0, 1), (1, 2), (3, 1), (4, 3), (5, 4), (6, 1), (7, 6),
                    (8, 7), (9, 2), (10, 9), (11, 10), (12, 2), (13, 12),
                    (14, 13)]

_HAND21_NAMES = [
    'wrist', 'thumb_mcp', 'index_mcp', 'middle_mcp', 'ring_mcp', 'pinky_mcp',
    'thumb_pip', 'thumb_dip', 'thumb_tip', 'index_pip', 'index_dip',
    'index_tip', 'middle_pip', 'middle_dip', 'middle_tip', 'ring_pip',
    'ring_dip', 'ring_tip', 'pinky_pip', 'pinky_dip', 'pinky_tip'
]
# MCPs hang off the wrist; each finger's PIP hangs off its MCP, DIP off PIP,
# TIP off DIP. Finger f (0=thumb..4=pinky): MCP = 1+f, PIP/DIP/TIP = 6+3f...
_HAND21_INWARD = [(1 + f, 0) for f in range(5)]
for _f in range(5):
    _mcp, _pip = 1 + _f, 6 + 3 * _f
    _HAND21_INWARD += [(_pip, _mcp), (_pip + 1, _pip), (_pip + 2, _pip + 1)]

_KINECT20_NAMES = [
    'right_shoulder', 'left_shoulder', 'neck', 'spine', 'right_hip',
    'left_hip', 'hip_center', 'right_elbow', 'left_elbow', 'right_wrist',
    'left_wrist', 'right_hand', 'left_hand', 'right_knee', 'left_knee',
    'right_ankle', 'left_ankle', 'right_foot', 'left_foot', 'head'
]
_KINECT20_INWARD = [(2, 3), (19, 2), (0, 2), (7, 0), (9, 7), (11, 9), (1, 2),
                    (8, 1), (10, 8), (12, 10), (6, 3), (4, 6), (13, 4),
                    (15, 13), (17, 15), (5, 6), (14, 5), (16, 14), (18, 16)]

#: name -> dict(num_node, inward, center), the dict form ``Graph`` accepts.
EXTRA_LAYOUTS: Dict[str, dict] = {
    'openni15': dict(num_node=15, inward=_OPENNI15_INWARD, center=2),
    'hand21': dict(num_node=21, inward=_HAND21_INWARD, center=0),
    'kinect20': dict(num_node=20, inward=_KINECT20_INWARD, center=3),
}

#: Joint names per extra layout (index = joint index in the keypoint array).
JOINT_NAMES: Dict[str, List[str]] = {
    'openni15': _OPENNI15_NAMES,
    'hand21': _HAND21_NAMES,
    'kinect20': _KINECT20_NAMES,
}

#: ``PreNormalize3D(zaxis=..., xaxis=...)`` joint indices per layout: zaxis
#: = (bottom, top) of the spine (wrist -> middle MCP for the hand), xaxis =
#: (right, left) shoulder (pinky MCP, index MCP for the hand). Note that in
#: MMAction2 1.1.0 ``PreNormalize3D`` centres on joint 1 only when V == 25
#: and on the *last* joint otherwise, so the dataset configs of the non-NTU
#: layouts leave it out (their converters already centre the data).
PRENORM_AXES: Dict[str, dict] = {
    'nturgb+d': dict(zaxis=[0, 1], xaxis=[8, 4]),
    'openni15': dict(zaxis=[2, 1], xaxis=[6, 3]),
    'kinect20': dict(zaxis=[6, 3], xaxis=[0, 1]),
    'hand21': dict(zaxis=[0, 3], xaxis=[5, 2]),
}

#: Joint count of every layout name usable in ``graph_cfg=dict(layout=...)``.
LAYOUT_NUM_JOINTS: Dict[str, int] = dict(STOCK_LAYOUTS)
LAYOUT_NUM_JOINTS.update({k: v['num_node'] for k, v in EXTRA_LAYOUTS.items()})


class UnknownLayoutError(ValueError, AssertionError):
    """Unknown graph layout name.

    Subclasses ``AssertionError`` too, because stock ``Graph`` raised an
    ``AssertionError`` for unknown names; code catching that keeps working.
    """


def available_layouts() -> List[str]:
    """All layout names (stock + extra), sorted."""
    return sorted(LAYOUT_NUM_JOINTS)


def _unknown(layout) -> UnknownLayoutError:
    return UnknownLayoutError(
        f'Unknown skeleton graph layout {layout!r}. Available layouts: '
        f'{available_layouts()}. Fix: use one of these names in '
        "graph_cfg=dict(layout=...), import mmsemiprune.datasets before "
        'building the model (it registers the extra ones), or register '
        'your own with mmsemiprune.datasets.register_layout(name, '
        'num_node, inward, center).')


def num_joints_of(layout: str) -> int:
    """Joint count of a layout name; raises :class:`UnknownLayoutError`."""
    if isinstance(layout, dict):
        return int(layout['num_node'])
    if layout not in LAYOUT_NUM_JOINTS:
        raise _unknown(layout)
    return LAYOUT_NUM_JOINTS[layout]


def get_layout(name: str) -> dict:
    """Return a copy of an extra layout as ``dict(num_node, inward, center)``."""
    if name not in EXTRA_LAYOUTS:
        raise _unknown(name)
    d = EXTRA_LAYOUTS[name]
    return dict(num_node=d['num_node'], inward=list(d['inward']),
                center=d['center'])


def _check_tree(name: str, num_node: int, inward: Sequence[Tuple[int, int]],
                center: int) -> None:
    """Validate that ``inward`` is a spanning tree pointing to ``center``."""
    if not (isinstance(num_node, int) and num_node > 0):
        raise ValueError(f'layout {name!r}: num_node must be a positive int, '
                         f'got {num_node!r}')
    if not 0 <= center < num_node:
        raise ValueError(f'layout {name!r}: center {center} outside '
                         f'[0, {num_node})')
    parent = {}
    for edge in inward:
        i, j = edge
        if not (0 <= i < num_node and 0 <= j < num_node) or i == j:
            raise ValueError(f'layout {name!r}: bad edge {edge} for '
                             f'{num_node} joints')
        if i in parent:
            raise ValueError(f'layout {name!r}: joint {i} has two parents '
                             f'({parent[i]} and {j}); inward edges must be '
                             '(child, parent) pairs of a tree')
        parent[i] = j
    if center in parent or len(parent) != num_node - 1:
        raise ValueError(f'layout {name!r}: inward edges must form a tree of '
                         f'{num_node} joints rooted at center {center} '
                         f'(got {len(inward)} edges)')
    for v in range(num_node):  # every joint must reach the centre
        seen, u = set(), v
        while u != center:
            if u in seen or u not in parent:
                raise ValueError(f'layout {name!r}: joint {v} does not reach '
                                 f'center {center} along inward edges')
            seen.add(u)
            u = parent[u]


def register_layout(name: str,
                    num_node: int,
                    inward: Sequence[Tuple[int, int]],
                    center: int,
                    joint_names: Sequence[str] = None,
                    force: bool = False) -> None:
    """Add a named layout usable as ``Graph(layout=name)``.

    Args:
        name: layout name (must not shadow a stock layout).
        num_node: number of joints V.
        inward: ``(child, parent)`` 0-based edges of a tree rooted at
            ``center``.
        center: the root joint used by the ``stgcn_spatial`` partition.
        joint_names: optional names, ``len == num_node``.
        force: overwrite an existing extra layout of the same name.
    """
    if name in STOCK_LAYOUTS:
        raise ValueError(f'{name!r} is a stock MMAction2 layout; pick '
                         'another name')
    if name in EXTRA_LAYOUTS and not force:
        raise ValueError(f'layout {name!r} is already registered; pass '
                         'force=True to overwrite it')
    inward = [tuple(int(x) for x in e) for e in inward]
    _check_tree(name, num_node, inward, center)
    if joint_names is not None and len(joint_names) != num_node:
        raise ValueError(f'layout {name!r}: {len(joint_names)} joint names '
                         f'for {num_node} joints')
    EXTRA_LAYOUTS[name] = dict(num_node=num_node, inward=inward,
                               center=center)
    if joint_names is not None:
        JOINT_NAMES[name] = list(joint_names)
    LAYOUT_NUM_JOINTS[name] = num_node
    register_graph_layouts()


_PATCH_FLAG = '_mmsemiprune_extra_layouts'


def register_graph_layouts() -> None:
    """Patch MMAction2's ``Graph`` to accept the extra layout names.

    Idempotent: patching happens once per process; later calls are no-ops
    (the table :data:`EXTRA_LAYOUTS` is read at ``Graph`` construction
    time, so layouts added afterwards work without re-patching).
    """
    from mmaction.models.utils.graph import Graph

    if getattr(Graph.__init__, _PATCH_FLAG, False):
        return
    orig_init = Graph.__init__
    orig_set_layout = Graph.set_layout

    @functools.wraps(orig_init)
    def __init__(self, layout='coco', mode='spatial', max_hop=1):
        if isinstance(layout, str):
            if layout in EXTRA_LAYOUTS:
                orig_init(self, layout=get_layout(layout), mode=mode,
                          max_hop=max_hop)
                self.layout = layout  # keep the name, as stock layouts do
                return
            if layout not in STOCK_LAYOUTS:
                raise _unknown(layout)
        orig_init(self, layout=layout, mode=mode, max_hop=max_hop)

    @functools.wraps(orig_set_layout)
    def set_layout(self, layout):
        if isinstance(layout, str) and layout in EXTRA_LAYOUTS:
            return orig_set_layout(self, get_layout(layout))
        if isinstance(layout, str) and layout not in STOCK_LAYOUTS:
            raise _unknown(layout)
        return orig_set_layout(self, layout)

    setattr(__init__, _PATCH_FLAG, True)
    setattr(set_layout, _PATCH_FLAG, True)
    Graph.__init__ = __init__
    Graph.set_layout = set_layout
