"""The user documentation: README sections the code cites by title exist, relative links resolve, the README keeps
its two set-up commands and a pasteable stock-config path."""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_cited_readme_sections_exist():
    readme = open(osp.join(ROOT, 'README.md'), encoding='utf-8').read()
    headings = {m.group(1).strip() for m in re.finditer(r'^#{2,3} (.+)$', readme, re.M)}
    cited = {}
    for path in glob.glob(osp.join(ROOT, 'mmsemiprune', '**', '*.py'), recursive=True) + \
            glob.glob(osp.join(ROOT, 'tools', '*.py')):
        for m in re.finditer(r'README "([^"]+)"', open(path, encoding='utf-8').read()):
            cited.setdefault(m.group(1), osp.relpath(path, ROOT))
    assert cited, 'no README section cited: the pattern README "<title>" is what the code uses'
    missing = {t: f for t, f in cited.items() if t not in headings}
    assert not missing, f'README sections cited but absent: {missing}'


def test_train_usage_names_a_config_that_exists():
    text = open(osp.join(ROOT, 'tools', 'train.py'), encoding='utf-8').read()
    for cfg in re.findall(r'tools/train\.py (configs/\S+\.py)', text):
        assert osp.isfile(osp.join(ROOT, cfg)), cfg


DOCS = ['README.md', 'CHANGELOG.md', 'bench/README.md'] + \
    sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md'))) + \
    sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'leaderboard', '**', 'README.md'), recursive=True))


@pytest.mark.parametrize('doc', DOCS)
def test_relative_links_resolve(doc):
    """Every relative link and image of the user documentation points to a file or folder of the repository."""
    text = open(osp.join(ROOT, doc), encoding='utf-8').read()
    broken = []
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+://|#|mailto:', target):
            continue
        path = osp.normpath(osp.join(ROOT, osp.dirname(doc), target.split('#')[0]))
        if not osp.exists(path):
            broken.append(target)
    assert not broken, f'{doc}: links to missing files {broken}'


def test_readme_keeps_the_two_setup_commands():
    """A fresh machine needs two commands: the demo (install + train + evaluate) and the tests, which CI runs."""
    readme = open(osp.join(ROOT, 'README.md'), encoding='utf-8').read()
    setup = readme.split('## Set-up', 1)[1].split('\n## ', 1)[0]
    commands = [ln.split('#')[0].strip() for ln in re.findall(r'```bash\n(.*?)```', setup, re.S)[0].splitlines()]
    assert [c for c in commands if c] == ['bash tools/run_demo.sh', 'bash tools/run_tests.sh']
    assert 'bash tools/run_tests.sh' in open(osp.join(ROOT, '.ci', 'run'), encoding='utf-8').read()


def test_stock_config_path_of_the_one_line_example_exists():
    """The pasteable one-line example defines $MMACTION with python -c and names a config that exists there."""
    import mmaction
    readme = open(osp.join(ROOT, 'README.md'), encoding='utf-8').read()
    assert "MMACTION=$(python -c 'import mmaction, os; print(os.path.dirname(mmaction.__file__))')" in readme
    paths = re.findall(r'\$MMACTION/(\S+\.py)', readme)
    assert paths, 'the one-line example names no $MMACTION config'
    for p in paths:
        assert osp.isfile(osp.join(osp.dirname(mmaction.__file__), p)), p
