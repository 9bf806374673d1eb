"""Extra graph layouts registered into MMAction2's Graph."""
import numpy as np
import pytest
import torch
from conftest import built_real
from mmaction.models import STGCN
from mmaction.models.utils.graph import Graph

import mmsemiprune.datasets as D
from mmsemiprune.datasets import graph_layouts as GL

EXTRA = {'openni15': 15, 'hand21': 21, 'kinect20': 20}


@pytest.mark.parametrize('layout', sorted(EXTRA))
@pytest.mark.parametrize('mode', ['stgcn_spatial', 'spatial'])
def test_extra_layouts_build(layout, mode):
    V = EXTRA[layout]
    g = Graph(layout=layout, mode=mode)
    assert g.layout == layout and g.num_node == V
    assert g.A.shape == (3, V, V) and np.isfinite(g.A).all()
    assert D.LAYOUT_NUM_JOINTS[layout] == V
    assert len(g.inward) == V - 1  # a tree
    far = Graph(layout=layout, mode=mode, max_hop=V)
    assert np.isfinite(far.hop_dis).all()  # connected
    if mode == 'spatial':
        np.testing.assert_array_equal(g.A[0], np.eye(V))


@pytest.mark.parametrize('layout', ['openpose', 'nturgb+d', 'coco'])
def test_stock_layouts_unchanged(layout):
    g = Graph(layout=layout, mode='stgcn_spatial')
    assert g.layout == layout
    assert g.num_node == D.LAYOUT_NUM_JOINTS[layout]
    # same adjacency as building the stock layout from its dict form
    ref = Graph(layout=dict(num_node=g.num_node, inward=g.inward,
                            center=g.center), mode='stgcn_spatial')
    np.testing.assert_array_equal(g.A, ref.A)


@pytest.mark.parametrize('layout', sorted(EXTRA))
def test_stgcn_forward(layout):
    V = EXTRA[layout]
    torch.manual_seed(0)
    for mode in ('stgcn_spatial', 'spatial'):
        m = STGCN(graph_cfg=dict(layout=layout, mode=mode), base_channels=8,
                  num_stages=2, inflate_stages=[], down_stages=[])
        m.eval()
        with torch.no_grad():
            out = m(torch.randn(2, 2, 16, V, 3))
        assert out.shape == (2, 2, 8, 16, V)


def test_layout_trees_and_centres():
    for name, lay in D.EXTRA_LAYOUTS.items():
        GL._check_tree(name, lay['num_node'], lay['inward'], lay['center'])
        assert len(D.JOINT_NAMES[name]) == lay['num_node']
    names = D.JOINT_NAMES
    assert names['openni15'][D.EXTRA_LAYOUTS['openni15']['center']] == 'torso'
    assert names['hand21'][D.EXTRA_LAYOUTS['hand21']['center']] == 'wrist'
    assert names['kinect20'][D.EXTRA_LAYOUTS['kinect20']['center']] == 'spine'
    # hand: every TIP hangs off its DIP, which hangs off its PIP, then MCP
    inward = dict(D.EXTRA_LAYOUTS['hand21']['inward'])
    for finger in ('thumb', 'index', 'middle', 'ring', 'pinky'):
        idx = {p: names['hand21'].index(f'{finger}_{p}')
               for p in ('mcp', 'pip', 'dip', 'tip')}
        assert inward[idx['tip']] == idx['dip']
        assert inward[idx['dip']] == idx['pip']
        assert inward[idx['pip']] == idx['mcp']
        assert inward[idx['mcp']] == 0


def test_unknown_layout_error():
    with pytest.raises(D.UnknownLayoutError) as e:
        Graph(layout='kinect25', mode='spatial')
    msg = str(e.value)
    assert 'kinect25' in msg and 'openni15' in msg and 'nturgb+d' in msg
    assert isinstance(e.value, AssertionError)  # stock type still caught
    assert isinstance(e.value, ValueError)
    with pytest.raises(D.UnknownLayoutError):
        D.num_joints_of('nope')


def test_idempotent_registration():
    init, set_layout = Graph.__init__, Graph.set_layout
    D.register_graph_layouts()
    D.register_graph_layouts()
    assert Graph.__init__ is init and Graph.set_layout is set_layout
    assert getattr(Graph.__init__, GL._PATCH_FLAG)
    assert Graph('hand21').num_node == 21
    g = Graph('coco')
    g.set_layout('kinect20')  # set_layout accepts the extra names too
    assert g.num_node == 20


def test_register_custom_layout():
    try:
        D.register_layout('chain3', 3, [(0, 1), (2, 1)], center=1,
                          joint_names=['a', 'b', 'c'])
        g = Graph('chain3', mode='stgcn_spatial')
        assert g.A.shape[1:] == (3, 3) and D.LAYOUT_NUM_JOINTS['chain3'] == 3
        with pytest.raises(ValueError, match='already registered'):
            D.register_layout('chain3', 3, [(0, 1), (2, 1)], center=1)
        with pytest.raises(ValueError, match='stock'):
            D.register_layout('coco', 3, [(0, 1), (2, 1)], center=1)
        with pytest.raises(ValueError, match='two parents'):
            D.register_layout('bad', 3, [(0, 1), (0, 2)], center=1)
        with pytest.raises(ValueError, match='tree'):
            D.register_layout('bad', 4, [(0, 1), (2, 1)], center=1)
    finally:
        for table in (D.EXTRA_LAYOUTS, D.LAYOUT_NUM_JOINTS, D.JOINT_NAMES):
            table.pop('chain3', None)


def _edge_vs_nonedge_cv(kp, inward):
    """Mean coefficient of variation of distances: edges vs non-edges."""
    V = kp.shape[1]
    edges = {frozenset(e) for e in inward}

    def cv(i, j):
        d = np.linalg.norm(kp[:, i] - kp[:, j], axis=-1)
        return d.std() / d.mean()

    e = [cv(i, j) for i, j in inward]
    n = [cv(i, j) for i in range(V) for j in range(i + 1, V)
         if frozenset((i, j)) not in edges]
    return np.mean(e), np.mean(n)


def _frames(data):
    return np.concatenate([
        a['keypoint'].reshape(-1, *a['keypoint'].shape[2:])
        for a in data['annotations']
    ])


def test_real_joint_orders_sbu_msr():
    """Bones are rigid (low length variation) and heads are on top."""
    for name, lay, head, feet in (('sbu', 'openni15', 0, (11, 14)),
                                  ('msr3d', 'kinect20', 19, (17, 18))):
        data, _ = built_real(name)
        kp = _frames(data)
        e, n = _edge_vs_nonedge_cv(kp, D.EXTRA_LAYOUTS[lay]['inward'])
        assert e < 0.7 * n, (name, e, n)
        y = kp[..., 1].mean(0)  # y is up in both converters
        assert y.argmax() == head and y[list(feet)].max() <= np.sort(y)[2]


def test_real_joint_order_fpha():
    data, _ = built_real('fpha')
    kp = _frames(data)[::5]
    e, n = _edge_vs_nonedge_cv(kp, D.EXTRA_LAYOUTS['hand21']['inward'])
    assert e < 0.7 * n
    names = D.JOINT_NAMES['hand21']
    dist = np.linalg.norm(kp - kp[:, :1], axis=-1).mean(0)  # from wrist
    for finger in ('index', 'middle', 'ring', 'pinky'):
        chain = [dist[names.index(f'{finger}_{p}')]
                 for p in ('mcp', 'pip', 'dip', 'tip')]
        assert chain == sorted(chain), (finger, chain)


def test_prenorm_axes(converted_pkls):
    """PRENORM_AXES point at the right joints and PreNormalize3D runs."""
    import pickle

    from mmaction.datasets.transforms import PreNormalize3D
    names = D.JOINT_NAMES
    assert [names['openni15'][i] for i in D.PRENORM_AXES['openni15']
            ['xaxis']] == ['right_shoulder', 'left_shoulder']
    assert [names['kinect20'][i] for i in D.PRENORM_AXES['kinect20']
            ['zaxis']] == ['hip_center', 'spine']
    for key, lay in (('sbu', 'openni15'), ('fpha', 'hand21'),
                     ('msr3d', 'kinect20')):
        with open(converted_pkls[key], 'rb') as f:
            a = pickle.load(f)['annotations'][0]
        def run(**kw):
            return PreNormalize3D(**D.PRENORM_AXES[lay], **kw)(
                dict(keypoint=a['keypoint'].copy(),
                     total_frames=a['total_frames']))['keypoint']

        assert np.isfinite(run()).all()
        kp = run(align_shoulder=False)  # fixture joints are collinear
        z0, z1 = D.PRENORM_AXES[lay]['zaxis']
        spine = kp[0, 0, z1] - kp[0, 0, z0]
        np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1],
                                   atol=1e-4)
