"""Import layering, each case in a fresh interpreter:

- ``import mmsemiprune.core`` (and every module under it) works where ``mmengine``, ``mmcv`` and ``mmaction``
  cannot be imported, and with them installed it imports none of them and patches nothing;
- ``import mmsemiprune`` outside an MMEngine process imports no OpenMMLab module and patches nothing;
  :func:`mmsemiprune.register_all` registers the plugin and :func:`mmsemiprune.apply_mmengine_patches`
  applies the MMEngine patches (the tools call both);
- a config's ``custom_imports=dict(imports=['mmsemiprune'])`` (the package imported inside an MMEngine
  process) and MMEngine's scope import (``type='mmsemiprune.X'``) register the plugin and apply the patches.
"""
import glob
import os
import os.path as osp
import subprocess
import sys
import textwrap

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
_PKG = osp.join(REPO, 'mmsemiprune')
CORE_MODULES = sorted('mmsemiprune.' + osp.splitext(osp.relpath(p, _PKG))[0].replace(os.sep, '.')
                      for p in glob.glob(osp.join(_PKG, 'core', '**', '*.py'), recursive=True)
                      if not p.endswith('__init__.py'))  # every module under core, subpackages included
MM = ('mmengine', 'mmcv', 'mmaction')

LOADED = f'sorted(m for m in sys.modules if m.split(".")[0] in {MM!r})'


def _run(code, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, env=env,
                       cwd=cwd or REPO, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def test_core_imports_with_torch_alone():
    out = _run(f'''
        import importlib, sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {MM!r}:
                    raise ImportError('blocked for this test: ' + name)

        sys.meta_path.insert(0, Blocker())
        try:
            import mmengine  # noqa: F401
            raise SystemExit('the blocker does not work')
        except ImportError:
            pass
        import mmsemiprune.core
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        from mmsemiprune.core import SemiPruner  # noqa: F401
        assert {LOADED} == [], {LOADED}
        print(sorted(m for m in sys.modules if m.startswith('mmsemiprune') and not m.startswith('mmsemiprune.core')))
    ''')
    assert out.strip() == "['mmsemiprune']"


def test_core_import_has_no_side_effects_with_the_stack_installed():
    out = _run(f'''
        import sys
        from mmsemiprune.core.pruner import SemiPruner  # noqa: F401
        assert {LOADED} == [], {LOADED}
        import mmsemiprune  # already imported (as the core's parent): nothing registered yet
        assert 'mmsemiprune.registry' not in sys.modules and {LOADED} == []
        mmsemiprune.register_all()
        import mmengine.config.config as cc
        from mmaction.registry import MODELS
        print(cc.is_installed.__module__, 'CTRGCN' in MODELS.module_dict)
    ''')
    assert out.split() == ['mmsemiprune.compat', 'True']


def test_package_import_custom_imports_and_scope_import_register_the_plugin(tmp_path):
    check = textwrap.dedent('''
        import mmengine.config.config as cc
        from mmaction.registry import DATASETS, MODELS
        from mmengine.runner.checkpoint import CheckpointLoader
        print(cc.is_installed.__module__, 'CTRGCN' in MODELS.module_dict, 'CheckedPoseDataset' in DATASETS.module_dict,
              CheckpointLoader._schemes[''].__module__)
    ''')
    want = ['mmsemiprune.compat', 'True', 'True', 'mmsemiprune.compat']
    assert _run('import mmsemiprune\nmmsemiprune.register_all()\n' + check).split() == want
    assert _run('import mmengine\nimport mmsemiprune\n' + check).split() == want  # as custom_imports does
    cfg = tmp_path / 'plain.py'
    cfg.write_text("custom_imports = dict(imports=['mmsemiprune'], allow_failed_imports=False)\n"
                   "model = dict(type='RecognizerGCN')\n")
    assert _run(f'from mmengine.config import Config\nConfig.fromfile({str(cfg)!r})\n' + check,
                cwd=str(tmp_path)).split() == want
    out = _run('''
        import sys
        from mmaction.registry import MODELS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope('mmaction'):
            cls = MODELS.get('mmsemiprune.SemiPruneRecognizerGCN')
        import mmengine.config.config as cc
        print(cls.__name__, cc.is_installed.__module__)
    ''', cwd=str(tmp_path))
    assert out.split() == ['SemiPruneRecognizerGCN', 'mmsemiprune.compat']


def test_package_import_alone_has_no_side_effects():
    out = _run(f'''
        import sys
        import mmsemiprune
        assert {LOADED} == [], {LOADED}
        assert sorted(m for m in sys.modules if m.startswith('mmsemiprune')) == ['mmsemiprune']
        import mmengine.config.config as cc
        from mmengine.runner.checkpoint import CheckpointLoader
        print(cc.is_installed.__module__, CheckpointLoader._schemes[''].__module__)
    ''')
    assert out.split() == ['mmengine.utils.package_utils', 'mmengine.runner.checkpoint']


def test_apply_mmengine_patches_patches_without_registering():
    out = _run('''
        import sys
        import mmsemiprune
        mmsemiprune.apply_mmengine_patches()
        mmsemiprune.apply_mmengine_patches()  # idempotent
        import mmengine.config.config as cc
        from mmengine.runner.checkpoint import CheckpointLoader
        print(cc.is_installed.__module__, CheckpointLoader._schemes[''].__module__,
              'mmsemiprune.registry' in sys.modules)
    ''')
    assert out.split() == ['mmsemiprune.compat', 'mmsemiprune.compat', 'False']


def test_a_glue_module_imported_first_registers_every_glue_module():
    out = _run('''
        import mmsemiprune.engine  # noqa: F401  (imports mmsemiprune.registry)
        import mmengine.config.config as cc
        from mmaction.registry import DATASETS, HOOKS, MODELS
        print('CTRGCN' in MODELS.module_dict, 'CheckedPoseDataset' in DATASETS.module_dict, cc.is_installed.__module__)
    ''')
    assert out.split() == ['True', 'True', 'mmsemiprune.compat']
