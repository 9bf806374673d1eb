"""The README sections the code points users at exist (docstrings and error messages cite them by title)."""
import glob
import os.path as osp
import re

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
