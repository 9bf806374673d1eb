"""Import a ``tools/<name>.py`` script as a module (the tools are scripts, not a package), for in-process calls."""
import importlib.util
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')


def load_tool(name):
    """``tools/<name>.py`` as a fresh module; puts tools/ on sys.path (the scripts import ``_common``)."""
    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)
    spec = importlib.util.spec_from_file_location(f'_mmsp_tool_{name}', osp.join(TOOLS, f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
