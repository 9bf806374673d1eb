"""Load a ``bench/`` script as a module (the scripts are run as files, not installed)."""
import importlib.util
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script(name: str, alias: str = ''):
    """``bench/<name>.py`` executed as a fresh module named ``_mmsp_<alias or name>``."""
    spec = importlib.util.spec_from_file_location(f'_mmsp_{alias or name}', osp.join(ROOT, 'bench', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
