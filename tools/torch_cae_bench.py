#!/usr/bin/env python3
"""PyTorch side of the CAE timing (tests/bench_cae.c is dfrcl's): one training step (B=4, P=4096)
and one inference of 4 images, for 8 and 12 layers. Run with Debian's /usr/bin/python3."""
import sys, time, torch
sys.path.insert(0, __import__('os').path.join(__import__('os').path.dirname(__file__), '..', '..', 'shared', 'tools'))
from dfr_torch_ref import CAE
torch.set_num_threads(2); torch.manual_seed(0)
for C, d in ((1408, 25), (3456, 197)):
    m = CAE(C, d); opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.rand(4, C, 64, 64) ** 3 * 2
    for r in range(2):
        m.train(); t0 = time.time()
        loss = ((m(x) - x) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step(); t1 = time.time()
        m.eval()
        with torch.no_grad(): m(x)
        t2 = time.time()
        print(f'torch C={C} d={d} B=4 P=4096: train step {t1-t0:.3f} s, inference {t2-t1:.3f} s', flush=True)
