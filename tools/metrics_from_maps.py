#!/usr/bin/env python3
"""Pixel AUROC, image AUROC and AUPRO@0.3 of dfrcl score maps (.npy, as `dfrcl infer --out` writes
them: MAPS/<defect>/<stem>.npy) against an MVTec-layout dataset's masks, computed independently of
dfrcl (scikit-learn, and the shared AUPRO reference) to check `dfrcl eval`'s own figures from the
maps it wrote. Needs numpy, scipy, scikit-learn and PIL (Debian: /usr/bin/python3).
Usage: metrics_from_maps.py DATASET MAPS [--metrics-ref PATH/TO/metrics_ref.py]"""
import argparse, glob, importlib.util, json, os
import numpy as np
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument('data'); ap.add_argument('maps')
ap.add_argument('--metrics-ref', default=os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'tools', 'metrics_ref.py'))
a = ap.parse_args()
spec = importlib.util.spec_from_file_location('metrics_ref', a.metrics_ref)
mr = importlib.util.module_from_spec(spec); spec.loader.exec_module(mr)

scores, masks, labels = [], [], []
for p in sorted(glob.glob(f'{a.data}/test/*/*')):
    d, f = p.split('/')[-2:]; stem = os.path.splitext(f)[0]
    s = np.load(f'{a.maps}/{d}/{stem}.npy'); S = s.shape[0]
    m = np.zeros((S, S), np.uint8)
    if d != 'good':
        c = glob.glob(f'{a.data}/ground_truth/{d}/{stem}.*') + glob.glob(f'{a.data}/ground_truth/{d}/{stem}_mask.*')
        m = (np.asarray(Image.open(c[0]).convert('L').resize((S, S), Image.NEAREST)) > 127).astype(np.uint8)
    scores.append(s); masks.append(m); labels.append(0 if d == 'good' else 1)
print(json.dumps(dict(images=len(scores), **mr.all_metrics(np.stack(masks), np.stack(scores), np.array(labels))), indent=1))
