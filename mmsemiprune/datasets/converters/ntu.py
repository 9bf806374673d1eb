"""NTU RGB+D 60 raw ``.skeleton`` files -> PoseDataset pickle.

Input: a folder of ``SsssCcccPpppRrrrAaaa.skeleton`` text files in the
documented upstream format::

    <number of frames>
    per frame:  <number of bodies>
      per body: 10 values  bodyID clippedEdges handLeftConfidence
                           handLeftState handRightConfidence handRightState
                           isRestricted leanX leanY trackingState
                <number of joints = 25>
                per joint: 12 values  x y z depthX depthY colorX colorY
                           orientationW orientationX orientationY
                           orientationZ trackingState

Output annotations: ``frame_dir='SsssCcccPpppRrrrAaaa'``, ``label=aaa-1``
(0..59), ``keypoint`` float32 ``(M, T, V=25, 3)`` camera-space metres
(``nturgb+d`` joint order), ``M <= 2``: bodies are followed by ``bodyID``
and the (at most) two with the largest motion (per joint and axis std
over their tracked frames, summed) are kept, most active first. Frames keep their
original rate; frames with no body stay all-zero (``PreNormalize3D`` drops
them). No centring: use ``PreNormalize3D`` in the pipeline, as MMAction2
does. Splits: ``xsub_train`` / ``xsub_val`` (NTU-60 cross-subject training
subjects) and ``xview_train`` / ``xview_val`` (cameras 2, 3 train).
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .common import (ConversionError, ConversionReport, Progress, finish,
                     make_anno, write_pickle)

__all__ = ['NTU60_XSUB_TRAIN_SUBJECTS', 'NTU60_XVIEW_TRAIN_CAMERAS',
           'NTUParseError', 'read_ntu_skeleton', 'build_ntu', 'convert_ntu']

#: Standard NTU RGB+D 60 cross-subject training performers.
NTU60_XSUB_TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19,
                             25, 27, 28, 31, 34, 35, 38)
#: Standard NTU RGB+D 60 cross-view training cameras.
NTU60_XVIEW_TRAIN_CAMERAS = (2, 3)
NUM_JOINTS = 25
MAX_BODIES = 2
_NAME_RE = re.compile(r'^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$')


class NTUParseError(ValueError):
    """A ``.skeleton`` file does not follow the upstream text format."""


def read_ntu_skeleton(path: str, max_bodies: int = MAX_BODIES
                      ) -> Tuple[np.ndarray, int]:
    """Parse one ``.skeleton`` file.

    Returns ``(keypoint (M, T, 25, 3) float32, n_bodies_seen)`` with
    ``M = min(max_bodies, bodies with any tracked joint)`` (may be 0).
    Raises :class:`NTUParseError` naming ``file:line`` on malformed input.
    """
    with open(path, 'r', encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    pos = 0

    def nxt(what: str, n_vals: Optional[int] = None) -> List[str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1  # tolerate blank lines
        if pos >= len(lines):
            raise NTUParseError(f'{path}:{pos + 1}: file ends early, '
                                f'expected {what} (truncated file?)')
        parts = lines[pos].split()
        pos += 1
        if n_vals is not None and len(parts) != n_vals:
            raise NTUParseError(f'{path}:{pos}: expected {what} with '
                                f'{n_vals} values, got {len(parts)}')
        return parts

    def to_int(parts: List[str], what: str) -> int:
        try:
            return int(parts[0])
        except ValueError:
            raise NTUParseError(f'{path}:{pos}: {what} {parts[0]!r} is not '
                                'an integer') from None

    if not any(line.strip() for line in lines):
        raise NTUParseError(f'{path}: empty file')
    n_frames = to_int(nxt('frame count', 1), 'frame count')
    if n_frames < 0:
        raise NTUParseError(f'{path}:{pos}: negative frame count')
    tracks: Dict[str, np.ndarray] = {}
    order: List[str] = []
    for t in range(n_frames):
        n_bodies = to_int(nxt(f'body count of frame {t}', 1), 'body count')
        for _ in range(n_bodies):
            info = nxt('a body info line', 10)
            body_id = info[0]
            n_joints = to_int(nxt('joint count', 1), 'joint count')
            if n_joints != NUM_JOINTS:
                raise NTUParseError(f'{path}:{pos}: joint count {n_joints},'
                                    f' expected {NUM_JOINTS}')
            xyz = np.empty((NUM_JOINTS, 3), dtype=np.float64)
            for j in range(NUM_JOINTS):
                parts = nxt(f'joint {j} (12 values)', 12)
                try:
                    xyz[j] = [float(v) for v in parts[:3]]
                except ValueError as e:
                    raise NTUParseError(f'{path}:{pos}: {e}') from None
            if body_id not in tracks:
                tracks[body_id] = np.zeros((n_frames, NUM_JOINTS, 3))
                order.append(body_id)
            tracks[body_id][t] = xyz
    rest = [ln for ln in lines[pos:] if ln.strip()]
    if rest:
        raise NTUParseError(f'{path}:{pos + 1}: {len(rest)} unexpected '
                            'extra lines after the last frame')

    def energy(a: np.ndarray) -> float:
        tracked = a[np.any(a != 0, axis=(1, 2))]
        if len(tracked) == 0:
            return -1.0
        return float(tracked.std(axis=0).sum())  # per-joint motion

    scored = [(energy(tracks[b]), i, b) for i, b in enumerate(order)]
    scored = [s for s in scored if s[0] >= 0]
    scored.sort(key=lambda s: (-s[0], s[1]))
    chosen = [tracks[b] for _, _, b in scored[:max_bodies]]
    if chosen:
        kp = np.stack(chosen).astype(np.float32)
    else:
        kp = np.zeros((0, n_frames, NUM_JOINTS, 3), np.float32)
    return kp, len(order)


def build_ntu(root: str, ignored: Iterable[str] = (),
              benchmarks: Iterable[str] = ('xsub', 'xview'),
              num_classes: int = 60, progress: bool = True
              ) -> Tuple[dict, ConversionReport]:
    """Convert a folder of NTU ``.skeleton`` files into the PoseDataset dict.

    Args:
        root: folder with ``*.skeleton`` files (searched recursively).
        ignored: sample names (``S001C001P001R001A001``, with or without
            ``.skeleton``) to skip, e.g. the upstream list of samples with
            missing skeletons.
        benchmarks: any of ``'xsub'``, ``'xview'``.
        num_classes: actions above this id are skipped (60 for NTU-60).
    """
    if not osp.isdir(root):
        raise ConversionError(f'NTU input folder {root!r} does not exist.')
    benchmarks = list(benchmarks)
    for b in benchmarks:
        if b not in ('xsub', 'xview'):
            raise ConversionError(f'unknown benchmark {b!r}; use xsub/xview')
    ignored = {osp.splitext(osp.basename(s.strip()))[0]
               for s in ignored if s.strip()}
    report = ConversionReport('ntu')
    files = []
    for dirpath, _, fns in os.walk(root):
        files += [osp.join(dirpath, f) for f in fns
                  if f.endswith('.skeleton')]
    files.sort(key=osp.basename)
    if not files:
        raise ConversionError(
            f'No *.skeleton files under {root!r}. Fix: pass the folder of '
            'the unzipped nturgb+d_skeletons.')
    annos, meta = [], {}
    prog = Progress(len(files), 'ntu', progress)
    for path in files:
        prog.update()
        name = osp.splitext(osp.basename(path))[0]
        m = _NAME_RE.match(name)
        if not m:
            report.skip(path, 'bad name: expected SsssCcccPpppRrrrAaaa'
                        '.skeleton')
            continue
        if name in ignored:
            report.skip(path, 'ignored: in the --ignored list')
            continue
        setup, cam, subj, rep, act = (int(x) for x in m.groups())
        if not 1 <= act <= num_classes:
            report.skip(path, f'out of range: action A{act:03d} > '
                        f'{num_classes} classes (NTU-120 sample?)')
            continue
        try:
            kp, _ = read_ntu_skeleton(path)
        except NTUParseError as e:
            report.skip(path, f'unparsable: {e}')
            continue
        except OSError as e:
            report.skip(path, f'unreadable: {e}')
            continue
        if kp.shape[1] == 0:
            report.skip(path, 'empty: 0 frames')
            continue
        if kp.shape[0] == 0:
            report.skip(path, 'no skeleton: no body tracked in any frame')
            continue
        if not np.all(np.isfinite(kp)):
            report.skip(path, 'non-finite: NaN/inf coordinates')
            continue
        annos.append(make_anno(name, act - 1, kp))
        meta[name] = (subj, cam)
    prog.close()
    split: Dict[str, List[str]] = {}
    if 'xsub' in benchmarks:
        tr = set(NTU60_XSUB_TRAIN_SUBJECTS)
        split['xsub_train'] = [n for n, (s, _) in meta.items() if s in tr]
        split['xsub_val'] = [n for n, (s, _) in meta.items() if s not in tr]
    if 'xview' in benchmarks:
        tr = set(NTU60_XVIEW_TRAIN_CAMERAS)
        split['xview_train'] = [n for n, (_, c) in meta.items() if c in tr]
        split['xview_val'] = [n for n, (_, c) in meta.items() if c not in tr]
    return finish(report, annos, split), report


def convert_ntu(root: str, out_path: str, ignored: Iterable[str] = (),
                benchmarks: Iterable[str] = ('xsub', 'xview'),
                num_classes: int = 60, progress: bool = True
                ) -> ConversionReport:
    """Convert and write the pickle; returns the report."""
    data, report = build_ntu(root, ignored, benchmarks, num_classes,
                             progress)
    write_pickle(data, out_path)
    return report
