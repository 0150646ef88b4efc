#!/usr/bin/python3
"""Writes the metric test fixtures tests/fixtures/metrics_*.safetensors, read by tests/test_metrics.c.
Run with Debian's Python (numpy, scipy, scikit-learn):
    /usr/bin/python3 tools/make_metrics_fixtures.py [OUTDIR]

The reference values are computed independently of dfrcl's C code:
  pixel and image AUROC     sklearn.metrics.roc_auc_score
  ROC curves                sklearn.metrics.roc_curve(drop_intermediate=False): every threshold
  best pixel F1             sklearn.metrics.precision_recall_curve, F1 = 2PR/(P+R), first argmax
                            over its ascending thresholds (the lowest threshold among equals)
  AUPRO                     aupro() of shared/tools/metrics_ref.py (the steering side's exact
                            implementation), imported by path from ../shared (or $DFRCL_SHARED)
                            here, at generation time only: the test reads the values stored in
                            the fixture and does not need ../shared
  regions                   scipy.ndimage.label with a 3x3 structure (8-connected)
  precision/recall/F1/IoU   numpy counts of score > threshold (the model's rule, as dfrcl infer
                            draws its masks), compared in float64
Each file holds: scores F32 [n,h,w], masks U8 [n,h,w] (nonzero = defective), labels U8 [n],
roc_fpr/roc_tpr and image_roc_fpr/image_roc_tpr F64, and the reference values as metadata strings
(Python repr of float64; lists space-separated; 'nan' where undefined).

metrics_small (6 images 9x7): scores on a 1/16 grid (heavy ties, negatives, a -0.0 next to a
  +0.0), few enough distinct scores for dfrcl's curves to be exact; 8-connectivity matters
  (diagonal neighbours), regions touch the borders, one mask uses 255, one defective image has an
  empty mask, two good images have none.
metrics_mid (12 images 48x40): elliptic blobs, partly covered by the score bumps, false-positive
  bumps, half of the images quantised to 1/64 (ties across images and classes), the rest
  to 1/2048; more distinct scores than curve points, so dfrcl's curves are downsampled."""
import importlib.util
import json
import os
import struct
import sys

import numpy as np
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('DFRCL_SHARED') or os.path.join(REPO, '..', 'shared')


def load_metrics_ref():
    path = os.path.join(SHARED, 'tools', 'metrics_ref.py')
    if not os.path.exists(path):
        raise SystemExit(f'{path}: not found (set DFRCL_SHARED)')
    spec = importlib.util.spec_from_file_location('metrics_ref', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def save(path, tensors, meta):
    """Minimal safetensors writer (F32, F64, U8), header padded with spaces to 8 bytes."""
    kinds = {np.dtype('<f4'): 'F32', np.dtype('<f8'): 'F64', np.dtype('u1'): 'U8'}
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {'dtype': kinds[a.dtype], 'shape': list(a.shape),
                        'data_offsets': [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header['__metadata__'] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
    os.replace(tmp, path)


def reference(scores, masks, labels, thresholds, mr):
    y = (masks > 0).ravel()
    s = scores.ravel()                      # float32, compared as such by sklearn
    s64 = s.astype(np.float64)
    maxes = scores.reshape(len(scores), -1).max(1)
    meta = {}
    meta['pixel_auroc'] = repr(float(roc_auc_score(y, s)))
    meta['image_auroc'] = repr(float(roc_auc_score(labels, maxes)))
    meta['aupro'] = repr(float(mr.aupro(masks > 0, scores)))
    p, r, t = precision_recall_curve(y, s)
    with np.errstate(invalid='ignore', divide='ignore'):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)[:-1]   # the last point has no threshold
    i = int(np.argmax(f1))
    meta['best_f1'] = repr(float(f1[i]))
    meta['best_f1_threshold'] = repr(float(t[i]))
    # 1 when no other threshold comes within rounding of the best F1 (then the threshold is checked)
    meta['best_f1_unique'] = str(int(np.sum(f1 >= f1[i] - 1e-12) == 1))
    nreg = sum(ndimage.label(m > 0, structure=np.ones((3, 3)))[1] for m in masks)
    meta['regions'] = str(int(nreg))
    meta['regions_4conn'] = str(int(sum(ndimage.label(m > 0)[1] for m in masks)))
    meta['pixels'] = str(y.size)
    meta['defect_pixels'] = str(int(y.sum()))
    meta['images'] = str(len(scores))
    meta['defective_images'] = str(int(labels.sum()))
    cols = {k: [] for k in ('precision', 'recall', 'f1', 'iou')}
    for th in thresholds:
        pred = s64 > th                     # float64: the threshold is not rounded to float32
        tp = float(np.sum(pred & y)); fp = float(np.sum(pred & ~y)); fn = float(np.sum(~pred & y))
        cols['precision'].append(tp / (tp + fp) if tp + fp > 0 else float('nan'))
        cols['recall'].append(tp / (tp + fn) if tp + fn > 0 else float('nan'))
        cols['f1'].append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else float('nan'))
        cols['iou'].append(tp / (tp + fp + fn) if tp + fp + fn > 0 else float('nan'))
    meta['thresholds'] = ' '.join(repr(float(v)) for v in thresholds)
    for k, v in cols.items():
        meta[k] = ' '.join(repr(x) for x in v)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    ifpr, itpr, _ = roc_curve(labels, maxes, drop_intermediate=False)
    tensors = {'scores': scores.astype('<f4'), 'masks': masks.astype(np.uint8),
               'labels': labels.astype(np.uint8),
               'roc_fpr': fpr.astype('<f8'), 'roc_tpr': tpr.astype('<f8'),
               'image_roc_fpr': ifpr.astype('<f8'), 'image_roc_tpr': itpr.astype('<f8')}
    meta['distinct_scores'] = str(len(np.unique(s)))
    return tensors, meta


def thresholds_for(scores, masks):
    s = scores.ravel()
    y = (masks > 0).ravel()
    both = np.intersect1d(s[y], s[~y])      # a score held by pixels of both classes
    tie = float(both[len(both) // 2]) if len(both) else float(s[0])
    return [float(np.quantile(s.astype(np.float64), 0.9)), tie, float(s.min()), float(s.max()),
            float(s.max()) + 1.0, float('-inf')]


def make_small():
    h, w, n = 7, 9, 6
    rng = np.random.default_rng(1)
    masks = np.zeros((n, h, w), np.uint8)
    labels = np.array([0, 1, 1, 1, 0, 1], np.uint8)
    # image 1: a diagonal chain (one region 8-connected, three 4-connected) and a separate pixel
    for yx in [(1, 1), (2, 2), (3, 3), (1, 6)]:
        masks[1][yx] = 1
    # image 2: two blobs, one in the corner; a single pixel on the bottom border
    masks[2, 0:2, 0:3] = 1
    masks[2, 3:5, 5:8] = 1
    masks[2, 6, 2] = 1
    # image 3: 255-valued mask, a region along the right border with a diagonal step
    masks[3, 2:6, 8] = 255
    masks[3, 6, 7] = 255
    masks[3, 0, 4] = 255
    # image 5: defective with an empty mask (a defect lost when the mask was resized)
    base = rng.integers(-4, 10, size=(n, h, w)).astype(np.float32) / 16
    bump = np.where(masks > 0, rng.integers(0, 8, size=(n, h, w)), 0).astype(np.float32) / 16
    scores = (base + bump).astype(np.float32)
    # -0.0 on a normal pixel and +0.0 on a defective one: equal scores, one tie
    scores[0, 0, 0] = np.float32(-0.0)
    scores[2, 0, 0] = np.float32(0.0)
    return scores, masks, labels


def make_mid():
    h, w, n = 40, 48, 12
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    masks = np.zeros((n, h, w), np.uint8)
    labels = np.zeros(n, np.uint8)
    scores = np.zeros((n, h, w), np.float32)
    for i in range(n):
        s = rng.normal(0.0, 0.15, size=(h, w))
        s = ndimage.uniform_filter(s, 3) + rng.normal(0.0, 0.05, size=(h, w))
        defective = i % 3 != 0
        if defective:
            labels[i] = 1
            for _ in range(rng.integers(1, 5)):
                cy, cx = rng.uniform(0, h), rng.uniform(0, w)
                ry, rx = rng.uniform(1, 7), rng.uniform(1, 9)
                blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
                masks[i][blob] = 1
                # the score bump covers the blob only partly (off-centre, narrower)
                d2 = ((yy - cy - ry / 3) / ry) ** 2 + ((xx - cx) / rx) ** 2
                s += rng.uniform(0.1, 0.6) * np.exp(-2 * d2)
        for _ in range(rng.integers(0, 3)):          # false positives
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            s += rng.uniform(0.1, 0.4) * np.exp(-(((yy - cy) / 3) ** 2 + ((xx - cx) / 3) ** 2))
        # half on a 1/64 grid, the rest on a 1/2048 one (keeps the stored ROC curve small)
        s = np.round(s * (64 if i % 2 == 0 else 2048)) / (64 if i % 2 == 0 else 2048)
        scores[i] = s.astype(np.float32)
    return scores, masks, labels


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, 'tests', 'fixtures')
    mr = load_metrics_ref()
    for name, make in (('metrics_small', make_small), ('metrics_mid', make_mid)):
        scores, masks, labels = make()
        tensors, meta = reference(scores, masks, labels, thresholds_for(scores, masks), mr)
        if name == 'metrics_small':
            assert meta['regions'] != meta['regions_4conn'], 'connectivity must matter'
            assert int(meta['distinct_scores']) < 150, 'curves must stay exact'
        else:
            assert int(meta['distinct_scores']) > 600, 'curves must be downsampled'
        path = os.path.join(out, name + '.safetensors')
        save(path, tensors, meta)
        print(path, {k: meta[k] for k in ('pixel_auroc', 'image_auroc', 'aupro', 'best_f1',
                                          'regions', 'distinct_scores')})


if __name__ == '__main__':
    main()
