#!/usr/bin/env python3
"""Make data/demo/woven_scratch.png: a 256x256 procedural woven texture with a scratch across it,
the image the README's first command extracts features from. Deterministic; the PNG is committed.
Run with an interpreter that has numpy and PIL (Debian: /usr/bin/python3)."""
import os
import numpy as np
from PIL import Image

rng = np.random.default_rng(7)
n = 256
y, x = np.mgrid[0:n, 0:n].astype(np.float32)
# Two interleaved thread directions with a little jitter, like a fabric close-up.
warp = 0.5 + 0.5 * np.sin(2 * np.pi * x / 12.0 + 0.6 * np.sin(2 * np.pi * y / 48.0))
weft = 0.5 + 0.5 * np.sin(2 * np.pi * y / 12.0 + 0.6 * np.sin(2 * np.pi * x / 52.0))
over = ((np.floor(x / 12) + np.floor(y / 12)) % 2).astype(np.float32)
base = over * warp + (1 - over) * weft
base += rng.normal(0, 0.04, base.shape).astype(np.float32)
# The defect: a dark, slightly curved scratch.
d = np.abs(y - (0.45 * x + 70 + 6 * np.sin(x / 20.0)))
scratch = (d < 2.5) & (x > 60) & (x < 200)
base[scratch] = 0.08
rgb = np.stack([0.55 + 0.35 * base, 0.45 + 0.30 * base, 0.30 + 0.20 * base], -1)
img = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'demo', 'woven_scratch.png')
os.makedirs(os.path.dirname(out), exist_ok=True)
Image.fromarray(img).save(out, optimize=True)
print(out, os.path.getsize(out), 'bytes')
