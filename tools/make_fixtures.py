#!/usr/bin/python3
"""Writes the "equal to PyTorch" fixtures of the regional-feature chain (tests/fixtures/).
The fixtures are committed; rerun only when the recipe changes, with Debian's torch:

    /usr/bin/python3 tools/make_fixtures.py [--shared DIR] [--out DIR]

--shared defaults to <repo>/../shared, --out to <repo>/tests/fixtures. Running it twice gives
identical bytes. Without the shared folder only the fixtures that need nothing from it (3, 4)
are written, and the exit status is 1.

The chain is DFR's (shared/DESIGN.md section 1), float32 throughout:
  image uint8 [S,S,3] -> v/255 -> (x - mean)/std (ImageNet) -> VGG19: each conv is reflection
  pad 1, 3x3 conv with bias, ReLU; 2x2/2 max pooling after relu1_2, relu2_2, relu3_4 -> each tapped
  ReLU map resized to S x S (bilinear, align_corners=True) -> 4x4/4 average -> concat over
  channels in VGG order -> features [C, S/4, S/4].

Files (every tensor F32, little-endian, C order; "image" holds the 0..255 byte values as floats):
 1. regional_8layers_s32.safetensors: shared VGG19 weights (conv1_1..conv3_4), the first training
    image of shared/data/hazelnut_toy resized by PIL (BILINEAR) to 32x32.
    image [32,32,3], features [1408,8,8].
 2. regional_12layers_s16.safetensors: the same 8 real layers plus random features.19/21/23/25,
    the same image at 16x16. image [16,16,3], features [3456,4,4].
 3. regional_12layers_random_s16.safetensors: all 12 layers random and a synthetic image, so it
    needs nothing from the shared folder. image [16,16,3], features [3456,4,4].
 4. vgg_stages_s16.safetensors: fixture 3's raw ReLU maps relu1_1 [64,16,16], relu2_1 [128,8,8],
    relu3_1 [256,4,4], relu4_4 [512,2,2], so a failing chain test can tell which stage broke.

Random layer with torchvision index N (features.N), fan_in = in_ch*9, a = sqrtf(6/fan_in):
  weight flat index i (C order of [out,in,3,3]) = uniform(seed=N, i, -a, a)
  bias j = uniform(seed=1000+N, j, -0.05, 0.05)
Synthetic image, flat index i of [16,16,3] = min(255, floor(uniform(seed=4242, i, 0, 256))).
uniform() is dfr_rand_uniform of src/util/rand.h (dfr_test_uniform in tests/testutil.h),
reproduced bit for bit below with numpy uint32/float32 arithmetic.

S=16 is the smallest size that reaches relu4_x: reflection padding needs each side >= 2, and
block 4 runs at S/8."""
import argparse
import glob
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
# Output channels of the 12 convolutions up to relu4_4, their torchvision indices and names.
CHANNELS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512]
TORCH_INDEX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25]
NAMES = ['relu1_1', 'relu1_2', 'relu2_1', 'relu2_2', 'relu3_1', 'relu3_2', 'relu3_3', 'relu3_4',
         'relu4_1', 'relu4_2', 'relu4_3', 'relu4_4']
POOL_AFTER = {1, 3, 7}  # max pooling follows relu1_2, relu2_2, relu3_4
WEIGHTS_FILE = 'vgg19-imagenet-conv1_1-conv3_4.safetensors'
IMAGE_DIR = 'data/hazelnut_toy/train/good'
IMAGE_SEED = 4242


# ---- deterministic pseudo-random numbers (src/util/rand.h) ----

def rand_u32(seed, i):
    """dfr_rand_u32 for an array of indices i; uint32 arithmetic wraps like C's."""
    with np.errstate(over='ignore'):
        x = (np.asarray(i, np.uint32) * np.uint32(0x9E3779B9)
             + np.uint32(seed) * np.uint32(0x85EBCA6B) + np.uint32(0x27D4EB2F))
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def rand_uniform(seed, n, lo, hi):
    """dfr_rand_uniform(seed, i, lo, hi) for i = 0..n-1, in float32 as the C code computes it."""
    u = (rand_u32(seed, np.arange(n, dtype=np.uint32)) >> np.uint32(8)).astype(np.float32)
    u *= np.float32(1.0 / 16777216.0)
    lo, hi = np.float32(lo), np.float32(hi)
    return lo + (hi - lo) * u


def random_layer(layer):
    """Weight [out,in,3,3] and bias [out] of random layer `layer` (0..11)."""
    n = TORCH_INDEX[layer]
    cin = CHANNELS[layer - 1] if layer else 3
    cout = CHANNELS[layer]
    a = np.sqrt(np.float32(6.0) / np.float32(cin * 9))  # sqrtf(6.0f / (float)(cin * 9))
    assert a.dtype == np.float32
    w = rand_uniform(n, cout * cin * 9, -a, a).reshape(cout, cin, 3, 3)
    b = rand_uniform(1000 + n, cout, -0.05, 0.05)
    assert w.dtype == np.float32 and b.dtype == np.float32
    return torch.from_numpy(w), torch.from_numpy(b)


def synthetic_image(size):
    u = np.floor(rand_uniform(IMAGE_SEED, size * size * 3, 0.0, 256.0))
    return np.minimum(u, 255).astype(np.uint8).reshape(size, size, 3)


# ---- safetensors ----

def read_safetensors(path, names):
    """The named F32 tensors of a safetensors file, as torch tensors."""
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name in names:
        h = header[name]
        if h['dtype'] != 'F32':
            raise SystemExit(f'{path}: {name} is {h["dtype"]}, expected F32')
        lo, hi = h['data_offsets']
        a = np.frombuffer(b, '<f4', (hi - lo) // 4, 8 + n + lo).reshape(h['shape'])
        out[name] = torch.from_numpy(a.astype(np.float32))  # a writable native copy
    return out


def write_safetensors(path, tensors, meta):
    """F32 tensors in insertion order, metadata as strings, header padded with spaces to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().numpy() if torch.is_tensor(t) else t
        a = np.ascontiguousarray(a, dtype='<f4')
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header['__metadata__'] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
    os.replace(tmp, path)


# ---- the chain ----

def load_hazelnut(shared, size):
    files = sorted(glob.glob(os.path.join(shared, IMAGE_DIR, '*')))
    if not files:
        raise SystemExit(f'{os.path.join(shared, IMAGE_DIR)}: no images')
    im = Image.open(files[0]).convert('RGB').resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.uint8).copy(), os.path.basename(files[0])


def normalise(img):
    """uint8 [S,S,3] -> [1,3,S,S] float32, as shared/tools/dfr_torch_eval.py load_img."""
    x = torch.from_numpy(img.astype(np.float32) / np.float32(255.0)).permute(2, 0, 1)
    x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return x[None].contiguous()


def vgg(x, weights):
    """ReLU maps of the first len(weights) layers; weights = [(w, b), ...]."""
    outs = []
    for layer, (w, b) in enumerate(weights):
        x = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), w, b))
        outs.append(x)
        if layer in POOL_AFTER and layer + 1 < len(weights):
            x = F.max_pool2d(x, 2, 2)
    return outs


def regional(outs, size):
    return torch.cat([F.avg_pool2d(F.interpolate(o, size=(size, size), mode='bilinear',
                                                 align_corners=True), 4, 4) for o in outs], 1)


def features(img, weights):
    with torch.no_grad():
        outs = vgg(normalise(img), weights)
        return regional(outs, img.shape[0])[0], [o[0] for o in outs]


def describe(path, tensors):
    print(f'{os.path.basename(path)}: {os.path.getsize(path)} bytes')
    for name, t in tensors.items():
        a = t.numpy() if torch.is_tensor(t) else t
        print(f'  {name:9s} {str(list(a.shape)):15s} min {a.min():.6g} max {a.max():.6g} '
              f'mean {a.mean(dtype=np.float64):.6g}')


def save(out_dir, name, tensors, meta):
    path = os.path.join(out_dir, name)
    write_safetensors(path, tensors, meta)
    describe(path, tensors)


RANDOM_RULE = ('random features.N: weight[i] = dfr_rand_uniform(N, i, -a, a), a = sqrtf(6/(in*9)); '
               'bias[j] = dfr_rand_uniform(1000+N, j, -0.05, 0.05)')


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shared', default=os.path.join(repo, '..', 'shared'))
    ap.add_argument('--out', default=os.path.join(repo, 'tests', 'fixtures'))
    a = ap.parse_args()
    torch.set_num_threads(1)  # one summation order, and the machine is shared
    os.makedirs(a.out, exist_ok=True)
    common = {'torch': torch.__version__,
              'note': 'made by tools/make_fixtures.py with PyTorch (CPU, float32)',
              'image_layout': 'HWC, RGB, byte values 0..255 stored as float',
              'features_layout': 'CHW, channels concatenated relu1_1.. in VGG order'}

    # 3 and 4: everything by formula.
    rnd = [random_layer(l) for l in range(12)]
    img = synthetic_image(16)
    feat, outs = features(img, rnd)
    meta = dict(common, size=16, layers=12, image=f'synthetic: min(255, floor(dfr_rand_uniform('
                f'{IMAGE_SEED}, i, 0, 256))) at flat index i of [16,16,3]',
                weights='all 12 layers random', random_rule=RANDOM_RULE)
    save(a.out, 'regional_12layers_random_s16.safetensors',
         {'image': img.astype(np.float32), 'features': feat}, meta)
    stages = {n: outs[NAMES.index(n)] for n in ['relu1_1', 'relu2_1', 'relu3_1', 'relu4_4']}
    meta = dict(common, size=16, layers=12, setup='that of regional_12layers_random_s16',
                maps='raw ReLU outputs [C,H,W] (after ReLU, before any pooling)',
                random_rule=RANDOM_RULE)
    del meta['image_layout'], meta['features_layout']
    save(a.out, 'vgg_stages_s16.safetensors', stages, meta)

    # 1 and 2: the shared weights and image.
    wpath = os.path.join(a.shared, 'weights', WEIGHTS_FILE)
    if not os.path.exists(wpath):
        print(f'{wpath}: absent; regional_8layers_s32 and regional_12layers_s16 not written',
              file=sys.stderr)
        return 1
    names = [f'features.{TORCH_INDEX[l]}.{k}' for l in range(8) for k in ('weight', 'bias')]
    st = read_safetensors(wpath, names)
    real = [(st[f'features.{TORCH_INDEX[l]}.weight'], st[f'features.{TORCH_INDEX[l]}.bias'])
            for l in range(8)]

    img, src = load_hazelnut(a.shared, 32)
    feat, _ = features(img, real)
    meta = dict(common, size=32, layers=8, source_image=f'{IMAGE_DIR}/{src}',
                resize='PIL Image.open().convert("RGB").resize((32,32), Image.BILINEAR)',
                weights_file=WEIGHTS_FILE)
    save(a.out, 'regional_8layers_s32.safetensors',
         {'image': img.astype(np.float32), 'features': feat}, meta)

    img, src = load_hazelnut(a.shared, 16)
    feat, _ = features(img, real + rnd[8:])
    meta = dict(common, size=16, layers=12, source_image=f'{IMAGE_DIR}/{src}',
                resize='PIL Image.open().convert("RGB").resize((16,16), Image.BILINEAR)',
                weights_file=WEIGHTS_FILE + ' for features.0..16; features.19..25 random',
                random_rule=RANDOM_RULE)
    save(a.out, 'regional_12layers_s16.safetensors',
         {'image': img.astype(np.float32), 'features': feat}, meta)
    return 0


if __name__ == '__main__':
    sys.exit(main())
