#!/usr/bin/python3
"""Writes the CAE test fixtures (tests/fixtures/cae_*.safetensors) with PyTorch (CPU, fp32).
Run with Debian's torch: /usr/bin/python3 tools/make_cae_fixtures.py [OUTDIR]

cae_step.safetensors   C=24 d=5, batches of B=2 images of P=36 positions. The initial state
                       (init/<state_dict name>, with non-default BN gammas, betas and
                       running statistics so that they are exercised); four batches x1..x4;
                       after step 1 (on x1): the forward output, the loss, every parameter
                       gradient (grad/<name>, as autograd gives them) and the whole state
                       (step1/<name>); the losses of steps 2 and 3 (x2, x3) and the state
                       after them (step3/<name>); the eval-mode output on x4 with that state
                       (eval/out).
cae_curve.safetensors  C=40 d=6, 5 images of P=100 positions, batches of at most 3 in a
                       shuffled order (so every other batch has 2 images): the loss of each
                       of 20 steps, the schedule (rows of image indices, -1 = none), the
                       initial and the final state.

The gradients of the biases in ZERO_GRAD are set to their exact value, zero, before each Adam
step (see below). The CAE is DFR's, as in shared/tools/dfr_torch_ref.py; the training step is
the one of shared/tools/dfr_torch_eval.py (Adam lr 1e-4, loss = mean squared error)."""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn


class CAE(nn.Module):
    def __init__(self, c, d):
        super().__init__()
        h = (c + 2 * d) // 2
        self.enc = nn.Sequential(nn.Conv2d(c, h, 1), nn.BatchNorm2d(h), nn.ReLU(),
                                 nn.Conv2d(h, 2 * d, 1), nn.BatchNorm2d(2 * d), nn.ReLU(),
                                 nn.Conv2d(2 * d, d, 1))
        self.dec = nn.Sequential(nn.Conv2d(d, 2 * d, 1), nn.BatchNorm2d(2 * d), nn.ReLU(),
                                 nn.Conv2d(2 * d, h, 1), nn.BatchNorm2d(h), nn.ReLU(),
                                 nn.Conv2d(h, c, 1))

    def forward(self, x):
        return self.dec(self.enc(x))


def save(path, tensors, meta):
    """Minimal safetensors writer (F32 only), header padded to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy() if torch.is_tensor(t) else t, dtype='<f4')
        header[name] = {'dtype': 'F32', 'shape': list(a.shape),
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


def state(m):
    """Float state (parameters and running statistics), without num_batches_tracked."""
    return {k: v.detach().clone() for k, v in m.state_dict().items() if v.dtype == torch.float32}


def make_model(c, d, seed):
    torch.manual_seed(seed)
    m = CAE(c, d)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m


# Biases whose gradient is exactly zero in training mode: a constant shift of their output per
# channel is removed by the batch statistics of the BatchNorm after them (for enc.6, after the
# next conv). Autograd leaves rounding noise there (~1e-8 on these tiny problems) that Adam turns
# into steps of up to lr with a random sign; dfrcl uses the exact zero, and so do the fixtures.
ZERO_GRAD = ['enc.0.bias', 'enc.3.bias', 'enc.6.bias', 'dec.0.bias', 'dec.3.bias']


def zero_cancelled_grads(m):
    for k, p in m.named_parameters():
        if k in ZERO_GRAD:
            p.grad.zero_()


def step(m, opt, x):
    loss = ((m(x) - x) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    zero_cancelled_grads(m)
    opt.step()
    return loss


def features(n, c, p, gen):
    # Nonnegative like ReLU features, a few channels dead (all zero), varied scales per channel.
    x = torch.empty(n, c, p).exponential_(1.0, generator=gen)
    scale = torch.empty(1, c, 1).uniform_(0.1, 2.0, generator=gen)
    scale[0, 3] = 0
    return (x * scale).reshape(n, c, p, 1)


def fixture_step(out_dir):
    C, d, B, P = 24, 5, 2, 36
    gen = torch.Generator().manual_seed(1234)
    m = make_model(C, d, 7)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    t = {f'init/{k}': v for k, v in state(m).items()}
    xs = [features(B, C, P, gen) for _ in range(4)]
    for i in range(4):
        t[f'x{i + 1}'] = xs[i].reshape(B, C, P)
    m.train()
    out = m(xs[0])
    loss = ((out - xs[0]) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    t['step1/out'] = out.detach().reshape(B, C, P)
    t['step1/loss'] = loss.detach().reshape(1)
    for k, p in m.named_parameters():
        t[f'grad/{k}'] = p.grad.detach().clone()  # as autograd gives them (noise included)
    zero_cancelled_grads(m)
    opt.step()
    t.update({f'step1/{k}': v for k, v in state(m).items()})
    t['step2/loss'] = step(m, opt, xs[1]).detach().reshape(1)
    t['step3/loss'] = step(m, opt, xs[2]).detach().reshape(1)
    t.update({f'step3/{k}': v for k, v in state(m).items()})
    m.eval()
    with torch.no_grad():
        t['eval/out'] = m(xs[3]).reshape(B, C, P)
    save(os.path.join(out_dir, 'cae_step.safetensors'), t,
         {'channels': C, 'latent': d, 'batch': B, 'npos': P, 'torch': torch.__version__})


def fixture_curve(out_dir):
    C, d, N, B, P, steps = 40, 6, 5, 3, 100, 20
    gen = torch.Generator().manual_seed(99)
    m = make_model(C, d, 8)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    t = {f'init/{k}': v for k, v in state(m).items()}
    data = features(N, C, P, gen)
    t['data'] = data.reshape(N, C, P)
    sched = -np.ones((steps, B), np.float32)
    losses = []
    m.train()
    s = 0
    while s < steps:
        perm = torch.randperm(N, generator=gen)
        for i in range(0, N, B):
            if s == steps:
                break
            idx = perm[i:i + B]
            sched[s, :len(idx)] = idx.numpy()
            losses.append(step(m, opt, data[idx]).item())
            s += 1
    t['schedule'] = sched
    t['losses'] = np.array(losses, np.float32)
    t.update({f'final/{k}': v for k, v in state(m).items()})
    save(os.path.join(out_dir, 'cae_curve.safetensors'), t,
         {'channels': C, 'latent': d, 'batch': B, 'npos': P, 'steps': steps,
          'torch': torch.__version__})


def main():
    torch.set_num_threads(1)  # one summation order, and the machine is shared
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures')
    fixture_step(out_dir)
    fixture_curve(out_dir)


if __name__ == '__main__':
    main()
