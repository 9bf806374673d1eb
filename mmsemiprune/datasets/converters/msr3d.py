"""MSR Action3D (real-world-coordinate skeletons) -> PoseDataset pickle.

Input: a folder of ``aAA_sSS_eEE_skeleton3D.txt`` files (action 01-20,
subject 01-10, repetition), each line ``x y z c`` for one joint in metres
(camera frame, y up), 20 lines per frame, no frame index; plus the list of
the 557 sequences of the usual all-actions protocol,
``files_used_in_cvpr12_paper.txt`` (one ``aAA_sSS_eEE`` per line).

Output annotations: ``frame_dir='aAA_sSS_eEE'``, ``label=AA-1`` (0..19, or
0..7 within an AS1/AS2/AS3 subset), ``keypoint`` float32 ``(M=1, T, V=20, 3)``
in metres, joint order of the ``'kinect20'`` layout (MSR order), confidence
column dropped, all-zero (untracked) frames dropped, translated so the hip
centre (joint 6) of the first kept frame is the origin. Splits:
``xsub_train`` (odd subjects 1,3,5,7,9) / ``xsub_test`` (even subjects), and ``xsub_fit`` /
``xsub_val``: the last training subject (9) held out for validation, the other four to fit.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..splits import add_holdout_splits, group_holdout
from .common import (ConversionError, ConversionReport, Progress, finish,
                     make_anno, write_pickle)

__all__ = ['MSR_SUBSETS', 'MSR_CLASSES', 'read_msr3d_file', 'build_msr3d',
           'convert_msr3d']

NUM_JOINTS = 20
HIP_CENTER = 6
MSR_CLASSES = [
    'high_arm_wave', 'horizontal_arm_wave', 'hammer', 'hand_catch',
    'forward_punch', 'high_throw', 'draw_x', 'draw_tick', 'draw_circle',
    'hand_clap', 'two_hand_wave', 'side_boxing', 'bend', 'forward_kick',
    'side_kick', 'jogging', 'tennis_swing', 'tennis_serve', 'golf_swing',
    'pick_up_and_throw'
]
#: Li et al. 2010 8-action subsets (1-based action ids).
MSR_SUBSETS: Dict[str, List[int]] = {
    'all': list(range(1, 21)),
    'AS1': [2, 3, 5, 6, 10, 13, 18, 20],
    'AS2': [1, 4, 7, 8, 9, 11, 12, 14],
    'AS3': [6, 14, 15, 16, 17, 18, 19, 20],
}
_NAME_RE = re.compile(r'^a(\d\d)_s(\d\d)_e(\d\d)$')
_FILE_SUFFIX = '_skeleton3D.txt'


def read_msr3d_file(path: str) -> Tuple[Optional[np.ndarray], int, str]:
    """Parse one file -> ``(keypoint (1, T, 20, 3), n_dropped, '')`` or
    ``(None, 0, reason)``. All-zero frames are dropped; not centred."""
    rows = []
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as f:
            for ln, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 4:
                    return None, 0, (f'unparsable: {path}:{ln}: expected 4 '
                                     f'values "x y z c", got {len(parts)}')
                try:
                    rows.append([float(p) for p in parts[:3]])
                except ValueError as e:
                    return None, 0, f'unparsable: {path}:{ln}: {e}'
    except OSError as e:
        return None, 0, f'unreadable: {e}'
    if not rows:
        return None, 0, 'empty: file has no frames'
    if len(rows) % NUM_JOINTS:
        return None, 0, (f'unparsable: {path}: {len(rows)} joint lines is '
                         f'not a multiple of {NUM_JOINTS} (truncated file?)')
    a = np.asarray(rows, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    if not np.all(np.isfinite(a)):
        return None, 0, 'non-finite: NaN/inf values in file'
    keep = np.any(a != 0, axis=(1, 2))
    n_drop = int((~keep).sum())
    if not keep.any():
        return None, 0, (f'all-zero: all {len(a)} frames are (0,0,0) '
                         '(skeleton never tracked)')
    return a[keep][None].astype(np.float32), n_drop, ''


def _read_list(path: str) -> List[str]:
    if not osp.isfile(path):
        raise ConversionError(
            f'MSR Action3D sequence list {path!r} not found. Fix: pass '
            '--list files_used_in_cvpr12_paper.txt, or --all-files to use '
            'every sequence in the folder.')
    names = []
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        for ln, line in enumerate(f, 1):
            s = line.strip()
            if not s:
                continue
            s = s.split()[0]
            if s.endswith(_FILE_SUFFIX):
                s = s[:-len(_FILE_SUFFIX)]
            if not _NAME_RE.match(s):
                raise ConversionError(f'{path}:{ln}: {s!r} is not an '
                                      'aAA_sSS_eEE sequence name')
            names.append(s)
    return names


def build_msr3d(root: str, list_file: Optional[str] = None,
                all_files: bool = False, subset: str = 'all',
                progress: bool = True) -> Tuple[dict, ConversionReport]:
    """Convert an MSR Action3D folder into the PoseDataset dict."""
    if not osp.isdir(root):
        raise ConversionError(f'MSR Action3D input folder {root!r} does not '
                              'exist.')
    if subset not in MSR_SUBSETS:
        raise ConversionError(f'unknown subset {subset!r}; choose one of '
                              f'{list(MSR_SUBSETS)}')
    report = ConversionReport('msr3d')
    on_disk: Dict[str, str] = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            if fn.endswith(_FILE_SUFFIX) and _NAME_RE.match(
                    fn[:-len(_FILE_SUFFIX)]):
                on_disk.setdefault(fn[:-len(_FILE_SUFFIX)],
                                   osp.join(dirpath, fn))
    if not on_disk:
        raise ConversionError(
            f'No aAA_sSS_eEE{_FILE_SUFFIX} files under {root!r}. Fix: pass '
            'the folder of the real-world-coordinate skeleton files.')
    if all_files:
        names = sorted(on_disk)
    else:
        list_file = list_file or osp.join(root,
                                          'files_used_in_cvpr12_paper.txt')
        names = list(dict.fromkeys(_read_list(list_file)))
        for n in sorted(set(on_disk) - set(names)):
            report.skip(on_disk[n], 'unused: not in the sequence list')

    actions = MSR_SUBSETS[subset]
    relabel = {a: i for i, a in enumerate(sorted(actions))}
    annos, subj_of = [], {}
    prog = Progress(len(names), 'msr3d', progress)
    for name in names:
        prog.update()
        a, s, _ = (int(x) for x in _NAME_RE.match(name).groups())
        if a not in relabel:
            continue  # outside the chosen subset: silently not converted
        path = on_disk.get(name)
        if path is None:
            report.skip(osp.join(root, name + _FILE_SUFFIX),
                        'missing: listed but absent')
            continue
        kp, n_drop, reason = read_msr3d_file(path)
        if kp is None:
            report.skip(path, reason)
            continue
        if n_drop:
            report.dropped_frames += n_drop
            report.warn(f'{name}: dropped {n_drop} of '
                        f'{n_drop + kp.shape[1]} all-zero frames')
        kp = kp - kp[0, 0, HIP_CENTER]
        annos.append(make_anno(name, relabel[a], kp))
        subj_of[name] = s
    prog.close()
    split = {'xsub_train': [n for n, s in subj_of.items() if s % 2 == 1],
             'xsub_test': [n for n, s in subj_of.items() if s % 2 == 0]}
    train = split['xsub_train']
    subjects = sorted({subj_of[n] for n in train})
    if len(subjects) >= 2:  # the last training subject (9 in the full set) validates
        split['xsub_fit'], split['xsub_val'] = group_holdout(train, [subj_of[n] for n in train], subjects[-1:])
    else:
        report.warn(f'only {len(subjects)} training subject(s): no xsub_fit / xsub_val validation split written')
    return finish(report, annos, split), report


def convert_msr3d(root: str, out_path: str, list_file: Optional[str] = None,
                  all_files: bool = False, subset: str = 'all',
                  progress: bool = True) -> ConversionReport:
    """Convert and write the pickle; returns the report."""
    data, report = build_msr3d(root, list_file, all_files, subset, progress)
    write_pickle(data, out_path)
    return report
