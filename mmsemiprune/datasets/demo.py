"""Small deterministic synthetic skeleton action dataset (NTU RGB+D layout).

The result is an MMAction2 PoseDataset dict::

    dict(split={'xsub_train': [...], 'xsub_val': [...]},
         annotations=[dict(frame_dir='S001C001P003R002A004', label=3,
                           keypoint=float32 (M, T, 25, 3), total_frames=T)])

- Joints follow the ``'nturgb+d'`` order (0 spine base, 1 spine mid,
  4/8 left/right shoulder, ...). Coordinates are camera-space metres
  (x lateral, y up, z depth ~ 2.5-3.5 m), so ``PreNormalize3D`` works
  (joints 0, 1, 4, 8 are non-zero and distinct).
- Bodies come from forward kinematics of a standing person with
  per-subject limb lengths, amplitude and speed style, and per-sample
  amplitude, speed, phase, position, yaw (+-25 deg) and 1 cm joint noise.
- ``M`` is 1 or 2 (about a third of the samples have a second person who
  either does the same action out of phase or stands idle); ``T`` varies in
  ``[40, 100]`` frames (30 fps).
- Classes (label: name): see :data:`DEMO_CLASSES`.
- Split ``xsub_train`` uses subjects 1-10, ``xsub_val`` subjects 11-14
  (cross-subject, no subject is in both).

Generation of the default 240 + 96 samples takes well under a second.
"""
from __future__ import annotations

import sys
from typing import Dict, List, Optional

import numpy as np

__all__ = ['DEMO_CLASSES', 'NUM_JOINTS', 'TRAIN_SUBJECTS', 'VAL_SUBJECTS',
           'make_demo_dataset', 'write_demo_dataset', 'synth_sequence']

DEMO_CLASSES: List[str] = [
    'wave_right_hand', 'wave_left_hand', 'raise_both_arms', 'squat',
    'kick_right_leg', 'step_in_place', 'clap', 'bow_forward'
]
NUM_JOINTS = 25
TRAIN_SUBJECTS = list(range(1, 11))
VAL_SUBJECTS = list(range(11, 15))
FPS = 30.0
_D = np.pi / 180.0

# nturgb+d joint indices
(SPINE_BASE, SPINE_MID, NECK, HEAD, L_SHO, L_ELB, L_WRI, L_HAND, R_SHO,
 R_ELB, R_WRI, R_HAND, L_HIP, L_KNEE, L_ANK, L_FOOT, R_HIP, R_KNEE, R_ANK,
 R_FOOT, SPINE_SHO, L_TIP, L_THUMB, R_TIP, R_THUMB) = range(25)

BASE_LIMBS = dict(spine1=0.24, spine2=0.22, neck=0.08, head=0.15,
                   sho_w=0.18, hip_w=0.09, uarm=0.28, farm=0.25, hand=0.08,
                   tip=0.06, thigh=0.42, shin=0.40, foot=0.12, hip_h=0.95)


def _limb_dir(abd: np.ndarray, flex: np.ndarray, side: float) -> np.ndarray:
    """Unit direction (T, 3) of a limb in body frame (x=left, y=up,
    z=forward). ``abd``: sideways angle from hanging down (>0 outwards),
    ``flex``: forward angle; both radians, shape (T,)."""
    # start hanging down, flex forward: (0, -cos f, sin f); then rotate about
    # the z axis by side * abd (outwards for both sides).
    th = side * abd
    x0, y0, z0 = 0.0, -np.cos(flex), np.sin(flex)
    x = x0 * np.cos(th) - y0 * np.sin(th)
    y = x0 * np.sin(th) + y0 * np.cos(th)
    return np.stack([x, y, np.broadcast_to(z0, x.shape)], -1)


def _smooth_env(tau: np.ndarray, ramp: float = 0.15) -> np.ndarray:
    """0 -> 1 -> 0 envelope with smooth ramps of relative length ``ramp``."""
    up = np.clip(tau / ramp, 0, 1)
    down = np.clip((1 - tau) / ramp, 0, 1)
    e = np.minimum(up, down)
    return e * e * (3 - 2 * e)


def _angles(name: str, T: int, amp: float, freq: float, phase: float,
            reps: int) -> Dict[str, np.ndarray]:
    """Joint angles (radians) and root/torso offsets over T frames."""
    t = np.arange(T) / FPS
    tau = np.arange(T) / max(T - 1, 1)
    phi = 2 * np.pi * freq * t + phase
    env = _smooth_env(tau)
    bump = np.sin(np.pi * reps * tau) ** 2  # `reps` slow up-down cycles
    z = np.zeros(T)
    a = dict(
        l_ua_abd=z + 8 * _D, l_ua_flex=z + 5 * _D, l_fa_abd=z + 5 * _D,
        l_fa_flex=z + 15 * _D, r_ua_abd=z + 8 * _D, r_ua_flex=z + 5 * _D,
        r_fa_abd=z + 5 * _D, r_fa_flex=z + 15 * _D, l_th_abd=z + 3 * _D,
        l_th_flex=z.copy(), l_sh_flex=z.copy(), r_th_abd=z + 3 * _D,
        r_th_flex=z.copy(), r_sh_flex=z.copy(), lean=z.copy(),
        bob=0.004 * np.sin(2 * np.pi * 0.3 * t + phase))

    def blend(key, target):
        a[key] = a[key] * (1 - env) + target * env

    if name in ('wave_right_hand', 'wave_left_hand'):
        s = 'r' if name == 'wave_right_hand' else 'l'
        blend(f'{s}_ua_abd', (95 + 10 * amp) * _D)
        blend(f'{s}_ua_flex', 10 * _D)
        blend(f'{s}_fa_abd', (165 + 30 * amp * np.sin(phi)) * _D)
        blend(f'{s}_fa_flex', 10 * _D)
    elif name == 'raise_both_arms':
        for s in 'lr':
            ang = (8 + (150 + 15 * amp) * bump) * _D
            a[f'{s}_ua_abd'] = ang
            a[f'{s}_fa_abd'] = ang + 5 * _D * bump
            a[f'{s}_fa_flex'] = 15 * _D * (1 - bump)
    elif name == 'squat':
        depth = (0.75 + 0.25 * amp) * bump
        for s in 'lr':
            a[f'{s}_th_flex'] = 85 * _D * depth
            a[f'{s}_sh_flex'] = -35 * _D * depth
            a[f'{s}_ua_flex'] = (5 + 70 * depth) * _D
            a[f'{s}_fa_flex'] = (15 + 65 * depth) * _D
        a['lean'] = 25 * _D * depth
    elif name == 'kick_right_leg':
        k = np.sin(np.pi * reps * tau) ** 4
        a['r_th_flex'] = (70 + 15 * amp) * _D * k
        a['r_sh_flex'] = (55 + 15 * amp) * _D * k
        for s in 'lr':
            a[f'{s}_ua_abd'] = (8 + 25 * k) * _D
    elif name == 'step_in_place':
        for s, sh in (('l', 0.0), ('r', np.pi)):
            lift = np.maximum(0, np.sin(phi + sh)) * env
            a[f'{s}_th_flex'] = (35 + 15 * amp) * _D * lift
            a[f'{s}_sh_flex'] = -(35 + 15 * amp) * _D * lift
            other = 'r' if s == 'l' else 'l'  # arm swings with other leg
            a[f'{other}_ua_flex'] = (5 + 25 * np.sin(phi + sh) * env) * _D
        a['bob'] = a['bob'] + 0.02 * np.abs(np.sin(phi)) * env
    elif name == 'clap':
        c = 0.5 + 0.5 * np.sin(phi)
        for s in 'lr':
            blend(f'{s}_ua_flex', (60 + 10 * amp) * _D)
            blend(f'{s}_ua_abd', 15 * _D)
            blend(f'{s}_fa_flex', 85 * _D)
            blend(f'{s}_fa_abd', (-45 + 50 * c) * _D)
    elif name == 'bow_forward':
        a['lean'] = (55 + 20 * amp) * _D * bump
        for s in 'lr':  # arms keep hanging towards the floor
            a[f'{s}_ua_flex'] = a['lean'] + 5 * _D
            a[f'{s}_fa_flex'] = a['lean'] + 15 * _D
    elif name == 'idle':
        pass
    else:  # pragma: no cover
        raise ValueError(name)
    return a


def synth_sequence(label: int, T: int, limbs: Dict[str, float],
                   amp: float = 1.0, freq: float = 1.5, phase: float = 0.0,
                   reps: int = 1, yaw: float = 0.0,
                   origin=(0.0, 0.0, 3.0),
                   rng: Optional[np.random.Generator] = None,
                   noise: float = 0.01) -> np.ndarray:
    """One person's ``(T, 25, 3)`` float32 skeleton in camera metres.

    ``label`` indexes :data:`DEMO_CLASSES`; ``-1`` means idle standing.
    """
    if not -1 <= label < len(DEMO_CLASSES):
        raise ValueError(f'label {label} outside [-1, {len(DEMO_CLASSES)})')
    name = 'idle' if label == -1 else DEMO_CLASSES[label]
    ang = _angles(name, T, amp, freq, phase, reps)
    L = limbs
    kp = np.zeros((T, NUM_JOINTS, 3))
    lat = np.array([1.0, 0.0, 0.0])  # body left
    fwd = np.array([0.0, 0.0, 1.0])
    drop = np.zeros(T)
    if name == 'squat':  # lower the root so the feet stay on the ground
        th, sh = ang['l_th_flex'], ang['l_sh_flex']
        drop = L['thigh'] * (1 - np.cos(th)) + L['shin'] * (1 - np.cos(sh))
    root = np.zeros((T, 3))
    root[:, 1] = L['hip_h'] - drop + ang['bob']
    lean = ang['lean']
    up = np.stack([np.zeros(T), np.cos(lean), np.sin(lean)], -1)
    kp[:, SPINE_BASE] = root
    kp[:, SPINE_MID] = root + up * L['spine1']
    kp[:, SPINE_SHO] = kp[:, SPINE_MID] + up * L['spine2']
    kp[:, NECK] = kp[:, SPINE_SHO] + up * L['neck']
    kp[:, HEAD] = kp[:, NECK] + up * L['head']
    for s, side, sho, elb, wri, hand, tip, thumb, hip, knee, ank, foot in (
            ('l', 1.0, L_SHO, L_ELB, L_WRI, L_HAND, L_TIP, L_THUMB, L_HIP,
             L_KNEE, L_ANK, L_FOOT),
            ('r', -1.0, R_SHO, R_ELB, R_WRI, R_HAND, R_TIP, R_THUMB, R_HIP,
             R_KNEE, R_ANK, R_FOOT)):
        kp[:, sho] = kp[:, SPINE_SHO] + side * lat * L['sho_w'] - up * 0.03
        d1 = _limb_dir(ang[f'{s}_ua_abd'], ang[f'{s}_ua_flex'], side)
        d2 = _limb_dir(ang[f'{s}_fa_abd'], ang[f'{s}_fa_flex'], side)
        kp[:, elb] = kp[:, sho] + d1 * L['uarm']
        kp[:, wri] = kp[:, elb] + d2 * L['farm']
        kp[:, hand] = kp[:, wri] + d2 * L['hand']
        kp[:, tip] = kp[:, hand] + d2 * L['tip']
        perp = fwd - (d2 @ fwd)[:, None] * d2
        perp /= np.linalg.norm(perp, axis=-1, keepdims=True) + 1e-8
        kp[:, thumb] = kp[:, wri] + 0.6 * L['hand'] * d2 + 0.04 * perp
        kp[:, hip] = root + side * lat * L['hip_w'] - np.array([0, 0.03, 0])
        e1 = _limb_dir(ang[f'{s}_th_abd'], ang[f'{s}_th_flex'], side)
        e2 = _limb_dir(ang[f'{s}_th_abd'] * 0.5, ang[f'{s}_sh_flex'], side)
        kp[:, knee] = kp[:, hip] + e1 * L['thigh']
        kp[:, ank] = kp[:, knee] + e2 * L['shin']
        kp[:, foot] = kp[:, ank] + fwd * L['foot'] - np.array([0, 0.04, 0])
    # body frame (x=left, y=up, z=forward, facing the camera) -> camera:
    # rotate by 180 deg + yaw about y, then translate to origin
    c, s_ = np.cos(np.pi + yaw), np.sin(np.pi + yaw)
    rot = np.array([[c, 0, s_], [0, 1, 0], [-s_, 0, c]])
    kp = kp @ rot.T + np.asarray(origin, dtype=np.float64)
    if rng is not None and noise > 0:
        kp = kp + rng.normal(0, noise, kp.shape)
        drift = np.cumsum(rng.normal(0, noise * 0.1, (T, 1, 3)), axis=0)
        kp = kp + drift
    return kp.astype(np.float32)


def _subject_params(rng: np.random.Generator) -> dict:
    scale = rng.uniform(0.88, 1.12)
    limbs = {k: v * scale * rng.uniform(0.95, 1.05)
             for k, v in BASE_LIMBS.items()}
    return dict(limbs=limbs, amp=rng.uniform(-0.6, 0.6),
                speed=rng.uniform(0.8, 1.25))


def make_demo_dataset(num_train: int = 240, num_val: int = 96,
                      seed: int = 0, two_person_ratio: float = 1 / 3,
                      min_frames: int = 40, max_frames: int = 100,
                      progress: bool = False) -> dict:
    """Build the demo PoseDataset dict (deterministic for a given seed).

    Samples cycle through the classes, so every class has
    ``num_train // 8`` (+1) training samples.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1')
    if not 1 <= min_frames <= max_frames:
        raise ValueError('need 1 <= min_frames <= max_frames')
    rng = np.random.default_rng(seed)
    subjects = {p: _subject_params(rng)
                for p in TRAIN_SUBJECTS + VAL_SUBJECTS}
    C = len(DEMO_CLASSES)
    annos, split = [], {'xsub_train': [], 'xsub_val': []}
    reps_count: Dict[tuple, int] = {}
    total = num_train + num_val
    for i in range(total):
        is_train = i < num_train
        j = i if is_train else i - num_train
        label = j % C
        subs = TRAIN_SUBJECTS if is_train else VAL_SUBJECTS
        subj = subs[(j // C) % len(subs)]
        sp = subjects[subj]
        T = int(rng.integers(min_frames, max_frames + 1))
        amp = float(np.clip(sp['amp'] + rng.normal(0, 0.25), -1, 1))
        freq = 1.4 * sp['speed'] * rng.uniform(0.85, 1.15)
        reps = int(rng.integers(1, 3))
        origin = (rng.uniform(-0.5, 0.5), rng.uniform(-0.1, 0.1),
                  rng.uniform(2.6, 3.4))
        yaw = rng.uniform(-25, 25) * _D
        people = [synth_sequence(label, T, sp['limbs'], amp, freq,
                                 rng.uniform(0, 2 * np.pi), reps, yaw, origin,
                                 rng)]
        if rng.random() < two_person_ratio:
            other = subjects[subs[int(rng.integers(len(subs)))]]
            side = rng.choice([-1.0, 1.0])
            o2 = (origin[0] + side * rng.uniform(0.7, 1.0), origin[1],
                  origin[2] + rng.uniform(-0.3, 0.3))
            lab2 = label if rng.random() < 0.5 else -1
            people.append(synth_sequence(lab2, T, other['limbs'], amp,
                                         freq * rng.uniform(0.9, 1.1),
                                         rng.uniform(0, 2 * np.pi), reps,
                                         yaw + rng.uniform(-10, 10) * _D, o2,
                                         rng))
        kp = np.stack(people).astype(np.float32)
        key = (subj, label)
        reps_count[key] = reps_count.get(key, 0) + 1
        name = (f'S001C001P{subj:03d}R{reps_count[key]:03d}'
                f'A{label + 1:03d}')
        annos.append(dict(frame_dir=name, label=label, keypoint=kp,
                          total_frames=T))
        split['xsub_train' if is_train else 'xsub_val'].append(name)
        if progress and ((i + 1) % 50 == 0 or i + 1 == total):
            print(f'[demo] {i + 1}/{total}', file=sys.stderr, flush=True)
    return dict(split=split, annotations=annos)


def write_demo_dataset(out_path: str, num_train: int = 240,
                       num_val: int = 96, seed: int = 0,
                       progress: bool = False) -> dict:
    """Generate and write the demo pickle; returns the dict."""
    from .converters.common import write_pickle
    data = make_demo_dataset(num_train, num_val, seed, progress=progress)
    write_pickle(data, out_path)
    return data
