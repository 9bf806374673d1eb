"""First-Person Hand Action benchmark (hand poses) -> PoseDataset pickle.

Input folder (upstream layout)::

    ROOT/Hand_pose_annotation_v1/Subject_N/<action>/<seq>/skeleton.txt
    ROOT/data_split_action_recognition.txt

Each ``skeleton.txt`` line: a frame index then 21 joints x (x, y, z) in
millimetres (64 whitespace-separated values), world frame. The split file
holds a ``Training 600`` block and a ``Test 575`` block of
``Subject_N/<action>/<seq> <label>`` lines (labels 0..44).

Output annotations: ``frame_dir='Subject_N/<action>/<seq>'``, ``label`` from
the split file, ``keypoint`` float32 ``(M=1, T, V=21, 3)`` in metres, joint
order of the ``'hand21'`` layout (wrist, 5 MCPs, then PIP/DIP/TIP per
finger), translated so the wrist of the first frame is the origin. Splits:
``train`` / ``test`` (the 1:1 protocol), and ``fit`` / ``val``: a class-stratified 20 % of
``train`` held out for validation (:mod:`mmsemiprune.datasets.splits`). Empty files (3 upstream, not in
the split) are reported and skipped.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..splits import add_holdout_splits
from .common import (ConversionError, ConversionReport, Progress, finish,
                     make_anno, write_pickle)

__all__ = ['read_fpha_file', 'read_fpha_split', 'build_fpha', 'convert_fpha']

NUM_JOINTS = 21
_HEADER_RE = re.compile(r'^(training|train|test|testing)\s+(\d+)\s*$', re.I)


def read_fpha_file(path: str) -> Tuple[Optional[np.ndarray], str]:
    """Parse one ``skeleton.txt`` -> ``((1, T, 21, 3) metres, '')`` or
    ``(None, reason)``. Not centred."""
    try:
        if osp.getsize(path) == 0:
            return None, 'empty: 0-byte file'
        rows = []
        with open(path, 'r', encoding='utf-8', errors='replace') as f:
            for ln, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 1 + NUM_JOINTS * 3:
                    return None, (f'unparsable: {path}:{ln}: expected 64 '
                                  f'values (frame index + 21x3), got '
                                  f'{len(parts)}')
                try:
                    rows.append([float(p) for p in parts[1:]])
                except ValueError as e:
                    return None, f'unparsable: {path}:{ln}: {e}'
    except OSError as e:
        return None, f'unreadable: {e}'
    if not rows:
        return None, 'empty: file has no frames'
    a = np.asarray(rows, dtype=np.float64).reshape(1, -1, NUM_JOINTS, 3)
    if not np.all(np.isfinite(a)):
        return None, 'non-finite: NaN/inf values in file'
    return (a / 1000.0).astype(np.float32), ''


def read_fpha_split(path: str, report: ConversionReport
                    ) -> Dict[str, List[Tuple[str, int]]]:
    """Parse the split file -> ``{'train': [(id, label)], 'test': [...]}``."""
    if not osp.isfile(path):
        raise ConversionError(
            f'FPHA split file {path!r} not found. Fix: pass --split-file '
            'pointing to data_split_action_recognition.txt.')
    blocks: Dict[str, List[Tuple[str, int]]] = {}
    expected: Dict[str, int] = {}
    cur = None
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        for ln, line in enumerate(f, 1):
            s = line.strip()
            if not s:
                continue
            m = _HEADER_RE.match(s)
            if m:
                cur = 'train' if m.group(1).lower().startswith('train') \
                    else 'test'
                expected[cur] = int(m.group(2))
                blocks.setdefault(cur, [])
                continue
            parts = s.split()
            if cur is None or len(parts) != 2:
                report.skip(f'{path}:{ln}', 'unparsable: split line '
                            f'{s[:60]!r} (expected "<id> <label>" after a '
                            '"Training N"/"Test N" header)')
                continue
            try:
                label = int(parts[1])
            except ValueError:
                report.skip(f'{path}:{ln}',
                            f'unparsable: label {parts[1]!r} is not an int')
                continue
            blocks[cur].append((parts[0].strip('/'), label))
    for k, n in expected.items():
        if len(blocks[k]) != n:
            report.warn(f'split file block {k!r} announces {n} lines but '
                        f'has {len(blocks[k])}')
    if 'train' not in blocks or 'test' not in blocks:
        raise ConversionError(
            f'FPHA split file {path!r} needs a "Training N" and a "Test N" '
            f'block; found {sorted(blocks)}.')
    return blocks


def build_fpha(root: str, split_file: Optional[str] = None,
               pose_dir: Optional[str] = None, progress: bool = True
               ) -> Tuple[dict, ConversionReport]:
    """Convert an FPHA folder into the PoseDataset dict (not written)."""
    if not osp.isdir(root):
        raise ConversionError(f'FPHA input folder {root!r} does not exist.')
    pose_dir = pose_dir or osp.join(root, 'Hand_pose_annotation_v1')
    split_file = split_file or osp.join(root,
                                        'data_split_action_recognition.txt')
    if not osp.isdir(pose_dir):
        raise ConversionError(
            f'FPHA pose folder {pose_dir!r} not found. Fix: pass the folder '
            'holding Hand_pose_annotation_v1/ (or --pose-dir).')
    report = ConversionReport('fpha')
    blocks = read_fpha_split(split_file, report)

    # consistency of labels: one label per action folder
    action_label: Dict[str, int] = {}
    for name, items in blocks.items():
        for sid, label in items:
            parts = sid.split('/')
            action = parts[1] if len(parts) == 3 else sid
            if action_label.setdefault(action, label) != label:
                report.warn(f'action {action!r} has labels '
                            f'{action_label[action]} and {label} in the '
                            'split file')
    dup = {s for s, _ in blocks['train']} & {s for s, _ in blocks['test']}
    if dup:
        report.warn(f'{len(dup)} sequences are in both train and test, e.g. '
                    f'{sorted(dup)[:3]}')

    wanted: Dict[str, int] = {}
    for name in ('train', 'test'):
        for sid, label in blocks[name]:
            wanted.setdefault(sid, label)

    annos, ok = [], set()
    prog = Progress(len(wanted), 'fpha', progress)
    for sid, label in wanted.items():
        prog.update()
        path = osp.join(pose_dir, sid, 'skeleton.txt')
        if label < 0:
            report.skip(path, f'bad label: {label} < 0')
            continue
        if not osp.isfile(path):
            report.skip(path, 'missing: listed in the split file but absent')
            continue
        kp, reason = read_fpha_file(path)
        if kp is None:
            report.skip(path, reason)
            continue
        kp = kp - kp[0, 0, 0]  # wrist of the first frame -> origin
        annos.append(make_anno(sid, label, kp))
        ok.add(sid)
    prog.close()

    # files on disk that the split does not use (upstream: 3 empty files)
    for dirpath, _, files in os.walk(pose_dir):
        if 'skeleton.txt' in files:
            sid = osp.relpath(dirpath, pose_dir).replace(os.sep, '/')
            if sid not in wanted:
                p = osp.join(dirpath, 'skeleton.txt')
                why = 'empty: 0-byte file, ' if osp.getsize(p) == 0 else ''
                report.skip(p, f'{why or "unused: "}not in the split file')

    split = {name: list(dict.fromkeys(s for s, _ in blocks[name] if s in ok))
             for name in ('train', 'test')}
    add_holdout_splits(split, {a['frame_dir']: a['label'] for a in annos})
    return finish(report, annos, split), report


def convert_fpha(root: str, out_path: str, split_file: Optional[str] = None,
                 pose_dir: Optional[str] = None, progress: bool = True
                 ) -> ConversionReport:
    """Convert and write the pickle; returns the report."""
    data, report = build_fpha(root, split_file, pose_dir, progress)
    write_pickle(data, out_path)
    return report
