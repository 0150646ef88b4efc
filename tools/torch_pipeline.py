#!/usr/bin/env python3
"""The PyTorch side of `dfrcl bench --pipeline`: DFR's evaluation loop from image files on disk
to score maps on disk, timed the same way dfrcl's is (images per second over the whole loop).

Each image: decode (PIL), antialiased bilinear resize to S x S, ImageNet normalisation, VGG19
with reflection padding to relu4_4 (12 layers) or relu3_4 (8), regional features (bilinear
align_corners upsample to S, 4x4/4 average), the 1x1-convolution autoencoder with BatchNorm in
inference mode, per-position mean squared error, bilinear upsample to S, the map saved as .npy.
Weights are random: the time does not depend on their values. Batches of --batch images go
through the network together, as a user of PyTorch would write it.

Needs python3-torch, python3-numpy and python3-pil. Prints one line that dfrcl parses:
  torch-pipeline images N batch B seconds T images/s R
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

# VGG19's convolutions up to relu4_4, 'M' = 2x2 max pool
PLAN = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Backbone(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers, self.convs, c = layers, nn.ModuleList(), 3
        for v in PLAN:
            if v != 'M':
                self.convs.append(nn.Conv2d(c, v, 3))
                c = v

    def forward(self, x):
        taps, i = [], 0
        for v in PLAN:
            if len(taps) == self.layers:
                break
            if v == 'M':
                x = F.max_pool2d(x, 2, 2)
                continue
            x = F.relu(self.convs[i](F.pad(x, (1, 1, 1, 1), mode='reflect')))
            i += 1
            taps.append(x)
        return taps


def regional(taps, size):
    return torch.cat([F.avg_pool2d(F.interpolate(t, size=(size, size), mode='bilinear',
                                                 align_corners=True), 4, 4) for t in taps], 1)


def autoencoder(c, d):
    h = (c + 2 * d) // 2

    def block(i, o, act=True):
        return [nn.Conv2d(i, o, 1), nn.BatchNorm2d(o), nn.ReLU()] if act else [nn.Conv2d(i, o, 1)]
    return nn.Sequential(*block(c, h), *block(h, 2 * d), *block(2 * d, d, False),
                         *block(d, 2 * d), *block(2 * d, h), *block(h, c, False))


def load(path, size):
    im = Image.open(path).convert('RGB').resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('images', nargs='+', help='image files')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--layers', type=int, default=12, choices=range(1, 13))
    ap.add_argument('--latent', type=int, default=197)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--out', default=None, help='folder for the maps (default: a temporary one)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = a.out or tempfile.mkdtemp(prefix='torch-pipeline-')
    os.makedirs(out, exist_ok=True)
    vgg = Backbone(a.layers).eval()
    with torch.no_grad():
        c = sum(t.shape[1] for t in vgg(torch.zeros(1, 3, a.size, a.size)))
        cae = autoencoder(c, a.latent).eval()
        # warm-up: one batch through everything, not timed
        cae(regional(vgg(torch.zeros(a.batch, 3, a.size, a.size)), a.size))
        t0 = time.time()
        for i in range(0, len(a.images), a.batch):
            names = a.images[i:i + a.batch]
            x = (torch.stack([load(p, a.size) for p in names]) - MEAN) / STD
            f = regional(vgg(x), a.size)
            s = ((cae(f) - f) ** 2).mean(1, keepdim=True)
            s = F.interpolate(s, size=(a.size, a.size), mode='bilinear', align_corners=True)
            for j, p in enumerate(names):
                np.save(os.path.join(out, '%05d.npy' % (i + j)), s[j, 0].numpy())
        dt = time.time() - t0
    n = len(a.images)
    print(f'torch-pipeline images {n} batch {a.batch} seconds {dt:.3f} images/s {n / dt:.3f}')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
