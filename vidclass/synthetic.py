"""A labelled video dataset made on the fly, where only motion tells the classes apart.

Every class draws the same kinds of textured object over the same cluttered, noisy, panning
backgrounds, at positions, sizes and angles spread alike: any single frame could belong to any class.
Only the change between frames (direction, growth, spin) gives the class away, so a temporal model can
learn it and the original post's per-frame CNN cannot. Nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from vidclass.video import writer

CLASSES = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "rotate_cw", "rotate_ccw")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A cluttered texture twice the frame's size, so it can pan."""
    bg = np.empty((2 * h, 2 * w, 3), np.uint8)
    bg[:] = rng.integers(40, 200, 3)
    for _ in range(24):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, 2 * w)), int(rng.integers(0, 2 * h))
        if rng.random() < 0.5:
            cv2.rectangle(bg, (x, y), (x + int(rng.integers(4, w // 3)), y + int(rng.integers(4, h // 3))), color, -1)
        else:
            cv2.circle(bg, (x, y), int(rng.integers(3, h // 5)), color, -1)
    return cv2.GaussianBlur(bg, (3, 3), 0)


def _sprite(rng: np.random.Generator, height: int = 32, width: int = 96) -> np.ndarray:
    """A bar-shaped object with a checker texture and one solid end.

    Elongated so that spinning sweeps its ends across many pixels (a square spinning in place moved too
    little to tell clockwise from anticlockwise at 64 px), with one marked end so its heading reads over
    the full turn. Every class uses the same kind of object: its shape tells nothing about the class."""
    a, b = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    while np.abs(a.astype(int) - b.astype(int)).sum() < 200:
        b = rng.integers(0, 255, 3)
    cells = height // 2
    yy, xx = np.mgrid[0:height, 0:width]
    sprite = np.where((((yy // cells) + (xx // cells)) % 2 == 0)[..., None], a, b).astype(np.uint8)
    sprite[:, : width // 4] = 255 - a
    return sprite


def render(label: str, rng: np.random.Generator, num_frames: int = 32, height: int = 96,
           width: int = 128) -> np.ndarray:
    """One RGB video [T, H, W, 3] uint8 of class `label`."""
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}; classes: {CLASSES}")
    bg, sprite = _background(rng, height, width), _sprite(rng)
    pan = rng.uniform(-0.3, 0.3, 2)  # background drift, px/frame: the camera moves in every class
    base = rng.uniform(0.28, 0.40) * height
    speed = rng.uniform(0.011, 0.017) * width  # px per frame: about half the width over 32 frames
    travel = speed * (num_frames - 1)
    # Start so that the whole path stays in view; positions end up spread alike over all classes.
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    dx = {"move_left": -1, "move_right": 1}.get(label, 0)
    dy = {"move_up": -1, "move_down": 1}.get(label, 0)
    cx -= dx * travel / 2
    cy -= dy * travel / 2
    growth = {"grow": 1, "shrink": -1}.get(label, 0) * rng.uniform(0.016, 0.024)  # scale change per frame
    spin = {"rotate_cw": -1, "rotate_ccw": 1}.get(label, 0) * rng.uniform(6, 9)   # degrees per frame
    angle0 = rng.uniform(0, 360)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        ox, oy = int(height / 2 + pan[0] * t), int(height / 2 + pan[1] * t)
        frame = bg[oy % height: oy % height + height, ox % width: ox % width + width].copy()
        scale = 1 + growth * (t - (num_frames - 1) / 2)
        length = max(8.0, 1.6 * base * scale)
        m = cv2.getRotationMatrix2D((sprite.shape[1] / 2, sprite.shape[0] / 2), angle0 + spin * t,
                                    length / sprite.shape[1])
        m[:, 2] += (cx + dx * speed * t - sprite.shape[1] / 2, cy + dy * speed * t - sprite.shape[0] / 2)
        mask = cv2.warpAffine(np.full(sprite.shape[:2], 255, np.uint8), m, (width, height))
        obj = cv2.warpAffine(sprite, m, (width, height))
        frame[mask > 127] = obj[mask > 127]
        noise = rng.normal(0, 5, frame.shape)
        frames[t] = np.clip(frame + noise, 0, 255).astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = 15.0) -> Path:
    """H.264 MP4 through PyAV's bundled libx264 (no system ffmpeg); returns the path written."""
    return writer.write_video(Path(path).with_suffix(".mp4"), frames, fps, options={"crf": "20"})


def write_dataset(root: str | os.PathLike, videos_per_class: int = 24, classes: tuple[str, ...] = CLASSES,
                  num_frames: int = 32, height: int = 96, width: int = 128, seed: int = 0) -> list[Path]:
    """Class folders of synthetic videos under `root` (UCF101 layout); deterministic for a seed."""
    import concurrent.futures
    root = Path(root)
    jobs = []
    for ci, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        jobs += [(ci, label, i) for i in range(videos_per_class)]

    def make(job: tuple[int, str, int]) -> Path:
        ci, label, i = job
        frames = render(label, np.random.default_rng([seed, ci, i]), num_frames, height, width)
        return write_video(root / label / f"{label}_{i:03d}", frames)

    # the encoder releases the GIL: threads keep every core busy
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as ex:
        return list(ex.map(make, jobs))
