"""Shared helpers for the raw-skeleton -> PoseDataset pickle converters.

Output format (MMAction2 ``PoseDataset``)::

    dict(split={split_name: [frame_dir, ...], ...},
         annotations=[dict(frame_dir=str, label=int (0-based),
                           keypoint=float32 array (M, T, V, 3),
                           total_frames=T), ...])
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, TextIO

import numpy as np

__all__ = ['ConversionError', 'ConversionReport', 'Progress', 'make_anno',
           'write_pickle', 'check_finite_nonempty']


class ConversionError(ValueError):
    """Raised when an input folder cannot be converted at all."""


@dataclass
class ConversionReport:
    """What a converter did: counts, skipped inputs with reasons, warnings."""

    dataset: str
    converted: int = 0
    frames: int = 0
    skipped: List[tuple] = field(default_factory=list)  # (path, reason)
    warnings: List[str] = field(default_factory=list)
    split_sizes: Dict[str, int] = field(default_factory=dict)
    dropped_frames: int = 0

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def summary(self) -> str:
        lines = [f'[{self.dataset}] converted {self.converted} sequences '
                 f'({self.frames} frames kept), skipped {len(self.skipped)}.']
        if self.dropped_frames:
            lines.append(f'  dropped {self.dropped_frames} all-zero '
                         '(untracked) frames inside kept sequences')
        for name, n in self.split_sizes.items():
            lines.append(f'  split {name}: {n}')
        if self.skipped:
            kinds = Counter(r.split(':')[0] for _, r in self.skipped)
            lines.append('  skipped by reason: ' + ', '.join(
                f'{k} x{v}' for k, v in sorted(kinds.items())))
            for path, reason in self.skipped:
                lines.append(f'  SKIPPED {path}: {reason}')
        for w in self.warnings:
            lines.append(f'  WARNING {w}')
        return '\n'.join(lines)


class Progress:
    """Minimal progress counter written to a stream (stderr by default)."""

    def __init__(self, total: int, desc: str, enabled: bool = True,
                 stream: Optional[TextIO] = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self._tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self._last = 0.0
        self._step = max(1, total // 10)

    def update(self, k: int = 1) -> None:
        self.n += k
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            if now - self._last > 0.1 or self.n >= self.total:
                self.stream.write(f'\r[{self.desc}] {self.n}/{self.total}')
                self.stream.flush()
                self._last = now
        elif self.n % self._step == 0 or self.n >= self.total:
            self.stream.write(f'[{self.desc}] {self.n}/{self.total}\n')
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write('\n')
            self.stream.flush()


def make_anno(frame_dir: str, label: int, keypoint: np.ndarray) -> dict:
    """One PoseDataset annotation; ``keypoint`` is (M, T, V, 3)."""
    kp = np.ascontiguousarray(keypoint, dtype=np.float32)
    assert kp.ndim == 4 and kp.shape[-1] == 3, kp.shape
    return dict(frame_dir=frame_dir, label=int(label), keypoint=kp,
                total_frames=int(kp.shape[1]))


def check_finite_nonempty(arr: np.ndarray) -> Optional[str]:
    """Reason string if ``arr`` is unusable, else None."""
    if arr.size == 0:
        return 'empty: no frames'
    if not np.all(np.isfinite(arr)):
        return 'non-finite: NaN/inf coordinates'
    return None


def write_pickle(data: dict, out_path: str) -> None:
    """Write ``data`` atomically (tmp file + rename) to ``out_path``."""
    if not out_path.endswith('.pkl'):
        raise ConversionError(f'Output path {out_path!r} must end with .pkl '
                              '(PoseDataset only reads .pkl files).')
    d = osp.dirname(osp.abspath(out_path))
    os.makedirs(d, exist_ok=True)
    tmp = out_path + '.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, out_path)


def finish(report: ConversionReport, annotations: List[dict],
           split: Dict[str, List[str]]) -> dict:
    """Fill report counts and build the output dict."""
    report.converted = len(annotations)
    report.frames = int(sum(a['total_frames'] for a in annotations))
    report.split_sizes = {k: len(v) for k, v in split.items()}
    if not annotations:
        raise ConversionError(
            f'[{report.dataset}] no sequence could be converted.\n'
            + report.summary())
    return dict(split=split, annotations=annotations)
