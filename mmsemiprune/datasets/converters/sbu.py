"""SBU Kinect Interaction (clean, v2.0) -> PoseDataset pickle.

Input: the upstream folder ``ROOT/sXXsYY/AA/NNN/skeleton_pos.txt`` (any
extra folder levels above ``sXXsYY`` are tolerated). Each line holds 91
comma-separated values: the original frame number, then 2 persons x 15
OpenNI joints x (x, y, z), normalised as x, y in ~[0, 1], z in ~[0, 7.8125].

Output annotations: ``frame_dir='sXXsYY/AA/NNN'``, ``label=AA-1`` (0..7),
``keypoint`` float32 ``(M=2, T, V=15, 3)`` in metres, joint order of the
``'openni15'`` graph layout. Coordinates are denormalised with the upstream
formulas ``X = 1280 - 2560 x``, ``Y = 960 - 1920 y``, ``Z = 10000 z / 7.8125``
(millimetres; y up), divided by 1000, and translated so that the midpoint of
the two persons' torsos in the first frame is the origin (no rotation, no
clipping, no resampling).

Splits: the upstream 5-fold cross-validation by set, ``fold{k}_train`` /
``fold{k}_test`` for k = 1..5, and ``fold{k}_fit`` / ``fold{k}_val``: a class-stratified
20 % of ``fold{k}_train`` held out for validation (:mod:`mmsemiprune.datasets.splits`) (fold 2 is ``s02s03`` - *not* the ``ds02s03``
typo found in some public loaders).
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

__all__ = ['SBU_FOLDS', 'SBU_CLASSES', 'read_sbu_file', 'build_sbu',
           'convert_sbu']

#: Upstream 5-fold split by two-actor set.
SBU_FOLDS: Dict[int, List[str]] = {
    1: ['s01s02', 's03s04', 's05s02', 's06s04'],
    2: ['s02s03', 's02s07', 's03s05', 's05s03'],
    3: ['s01s03', 's01s07', 's07s01', 's07s03'],
    4: ['s02s01', 's02s06', 's03s02', 's03s06'],
    5: ['s04s02', 's04s03', 's04s06', 's06s02', 's06s03'],
}
SBU_CLASSES = ['approaching', 'departing', 'kicking', 'punching', 'pushing',
               'hugging', 'shaking_hands', 'exchanging_objects']
NUM_JOINTS = 15
TORSO = 2
_PATH_RE = re.compile(r'(s\d\ds\d\d)[/\\](\d\d)[/\\](\d\d\d)[/\\]'
                      r'skeleton_pos\.txt$')


def read_sbu_file(path: str) -> Tuple[Optional[np.ndarray], str]:
    """Parse one ``skeleton_pos.txt``.

    Returns ``(keypoint (2, T, 15, 3) metres, '')`` or ``(None, reason)``.
    The result is not centred (see :func:`build_sbu`).
    """
    rows, frame_nos = [], []
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = [p for p in line.split(',')]
                if parts and parts[-1] == '':  # tolerate a trailing comma
                    parts = parts[:-1]
                if len(parts) != 1 + 2 * NUM_JOINTS * 3:
                    return None, (f'unparsable: {path}:{ln}: expected 91 '
                                  f'comma-separated values, got {len(parts)}')
                try:
                    vals = [float(p) for p in parts]
                except ValueError as e:
                    return None, f'unparsable: {path}:{ln}: {e}'
                frame_nos.append(vals[0])
                rows.append(vals[1:])
    except OSError as e:
        return None, f'unreadable: {e}'
    if not rows:
        return None, 'empty: file has no frames'
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 2, NUM_JOINTS, 3)
    if not np.all(np.isfinite(a)):
        return None, 'non-finite: NaN/inf values in file'
    xyz = np.empty_like(a)
    xyz[..., 0] = 1280.0 - a[..., 0] * 2560.0
    xyz[..., 1] = 960.0 - a[..., 1] * 1920.0
    xyz[..., 2] = a[..., 2] * 10000.0 / 7.8125
    kp = (xyz / 1000.0).transpose(1, 0, 2, 3)  # (M=2, T, V, 3), metres
    return kp.astype(np.float32), ''


def _find_files(root: str) -> List[Tuple[str, str, str, str]]:
    found = []
    for dirpath, _, files in os.walk(root):
        if 'skeleton_pos.txt' in files:
            path = osp.join(dirpath, 'skeleton_pos.txt')
            m = _PATH_RE.search(path)
            if m:
                found.append((path, m.group(1), m.group(2), m.group(3)))
    return sorted(found, key=lambda x: x[1:])


def build_sbu(root: str, progress: bool = True
              ) -> Tuple[dict, ConversionReport]:
    """Convert an SBU folder into the PoseDataset dict (not written)."""
    if not osp.isdir(root):
        raise ConversionError(f'SBU input folder {root!r} does not exist. '
                              'Fix: pass the folder that holds the '
                              'sXXsYY/ set folders.')
    report = ConversionReport('sbu')
    files = _find_files(root)
    if not files:
        raise ConversionError(
            f'No sXXsYY/AA/NNN/skeleton_pos.txt found under {root!r}. Fix: '
            'pass the folder of the unzipped SBU clean skeleton sets.')
    annos, set_of = [], {}
    prog = Progress(len(files), 'sbu', progress)
    for path, set_name, cls, seq in files:
        prog.update()
        label = int(cls) - 1
        if not 0 <= label < len(SBU_CLASSES):
            report.skip(path, f'bad class: folder {cls} is not 01..08')
            continue
        kp, reason = read_sbu_file(path)
        if kp is None:
            report.skip(path, reason)
            continue
        centre = kp[:, 0, TORSO].mean(0)  # midpoint of the two torsos, t=0
        kp = kp - centre
        name = f'{set_name}/{cls}/{seq}'
        annos.append(make_anno(name, label, kp))
        set_of[name] = set_name
    prog.close()

    split: Dict[str, List[str]] = {}
    fold_sets = {s for sets in SBU_FOLDS.values() for s in sets}
    present = set(set_of.values())
    for extra in sorted(present - fold_sets):
        report.warn(f'set {extra} is in no upstream fold; it is kept in '
                    'annotations but in no split')
    for k, sets in SBU_FOLDS.items():
        missing = [s for s in sets if s not in present]
        if missing:
            report.warn(f'fold {k}: sets {missing} not found in the input')
        test = [n for n, s in set_of.items() if s in sets]
        train = [n for n, s in set_of.items()
                 if s in fold_sets and s not in sets]
        split[f'fold{k}_train'] = train
        split[f'fold{k}_test'] = test
    add_holdout_splits(split, {a['frame_dir']: a['label'] for a in annos})
    return finish(report, annos, split), report


def convert_sbu(root: str, out_path: str, progress: bool = True
                ) -> ConversionReport:
    """Convert and write the pickle; returns the report."""
    data, report = build_sbu(root, progress=progress)
    write_pickle(data, out_path)
    return report
