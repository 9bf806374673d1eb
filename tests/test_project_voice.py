"""The project speaks of itself: tracked files describe what the software does and what was measured, not the
rounds or tickets of its development (those belong in CHANGELOG.md, by version and date).

Scans every file ``git ls-files`` lists, except CHANGELOG.md, binary files, the leaderboard's per-run CSV tables
and this file, for names of working rounds and ticket numbers, and fails listing each ``file:line``. Test files
are named after what they test, so a file *path* naming a round or a ticket fails too.
"""
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SELF = osp.relpath(osp.abspath(__file__), ROOT)

#: a working round ("session 12"), a ticket ("issue 11", "issue-11", "issue #5", "issues 10 and 11"), or a
#: sentence placed in time by a round ("in this session", "before session ...")
PATTERNS = [r'\bsessions? \d+', r'\bissue[- ]?#?\d+', r'\bissues? \d+ (and|/) \d+', r'\bin this session\b',
            r'\bbefore session', r'\bafter session']
VOICE = re.compile('|'.join(f'(?:{p})' for p in PATTERNS), re.IGNORECASE)
PATH_VOICE = re.compile(r'(issue|session|round)[-_ ]?#?\d+', re.IGNORECASE)


def tracked_files():
    try:
        out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:  # pragma: no cover - no git on the machine
        pytest.skip(f'git ls-files failed: {e}')
    if out.returncode != 0:
        pytest.skip('not a git checkout: ' + out.stderr.decode(errors='replace')[:200])
    return [p for p in out.stdout.decode().split('\0') if p]


def skipped(path):
    return (path in ('CHANGELOG.md', SELF) or (path.startswith('leaderboard/') and path.endswith('.csv'))
            or not osp.isfile(osp.join(ROOT, path)))


def text_of(path):
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8)."""
    with open(osp.join(ROOT, path), 'rb') as f:
        data = f.read()
    if b'\0' in data[:8192]:
        return None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return None


def offending_lines(files):
    """``path:line: text`` for every match in the tracked text files, and ``path`` for a path that names one."""
    found = []
    for path in files:
        if skipped(path):
            continue
        if PATH_VOICE.search(path):
            found.append(f'{path}: the file name names a round or a ticket')
        text = text_of(path)
        if text is None:
            continue
        for no, line in enumerate(text.splitlines(), 1):
            if VOICE.search(line):
                found.append(f'{path}:{no}: {line.strip()[:160]}')
    return found


@pytest.mark.parametrize('line,hit', [
    ('measured in session 12 on the GPU', True), ('Sessions 10-11 changed it', True),
    ('the issue-11 ablation', True), ('Issue 11 ablation', True), ('sweep (issue #5)', True),
    ('(issues 10 and 11)', True), ('issues 10 / 11', True), ('no GPU was available in this session', True),
    ('reports written before session 12', True), ('after session 8', True),
    ('resumes across sessions', False), ('a known issue left', False), ('the session-free loader', False),
    ('tissue 11', False), ('sessions of training', False)])
def test_patterns(line, hit):
    assert bool(VOICE.search(line)) is hit, line


def test_scanner_reports_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    (tmp_path / 'a.py').write_text('x = 1\n# measured in session 3\n', encoding='utf-8')
    (tmp_path / 'b.bin').write_bytes(b'\0session 3')
    (tmp_path / 'test_issue12.py').write_text('ok\n', encoding='utf-8')
    (tmp_path / 'CHANGELOG.md').write_text('session 3\n', encoding='utf-8')
    found = offending_lines(['a.py', 'b.bin', 'test_issue12.py', 'CHANGELOG.md', 'gone.py'])
    assert found == ['a.py:2: # measured in session 3', 'test_issue12.py: the file name names a round or a ticket']


def test_tracked_files_speak_of_the_project():
    found = offending_lines(tracked_files())
    assert not found, ('names of working rounds or tickets (describe what the software does and what was '
                       'measured; history goes in CHANGELOG.md):\n' + '\n'.join(found))
