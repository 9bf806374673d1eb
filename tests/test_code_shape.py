"""The package's functions stay short enough to read at once: no function or method under ``mmsemiprune/`` is
longer than :data:`MAX_LINES` lines (from its ``def`` to its last line, docstring included).

Walks every ``.py`` file of the package with :mod:`ast` and fails listing each ``file:line name (length)``.
"""
import ast
import glob
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MAX_LINES = 80


def _long_functions(path):
    tree = ast.parse(open(path, encoding='utf-8').read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_LINES:
                yield f'{osp.relpath(path, ROOT)}:{node.lineno} {node.name} ({n} lines)'


def test_no_function_longer_than_the_limit():
    files = sorted(glob.glob(osp.join(ROOT, 'mmsemiprune', '**', '*.py'), recursive=True))
    assert files, 'no source file found under mmsemiprune/'
    long = [f for p in files for f in _long_functions(p)]
    assert not long, f'functions longer than {MAX_LINES} lines (split them into helpers):\n' + '\n'.join(long)


def test_the_walk_measures_a_long_function(tmp_path):
    src = tmp_path / 'long.py'
    src.write_text('def f():\n' + '    x = 1\n' * MAX_LINES + '\n\ndef g():\n    return 1\n')
    assert [r.split(' ')[1] for r in _long_functions(str(src))] == ['f']
