#!/usr/bin/env python3
"""Accuracy against training time for the two recipes, from the curves `dfrcl train --eval-every`
writes (MODEL.curve.json): one row per dataset, as in the README's Results.

    tools/recipe_table.py NAME FAST.curve.json PUBLISHED.curve.json [NAME FAST PUBLISHED ...]

The published plateau is the published run's last evaluation. For the fast recipe the row gives
the point where its default early stop (--patience 5, 1%) would have stopped, computed from the
per-epoch losses the curve holds (the run itself went on with --patience off), the accuracy at the
nearest evaluation at or after it, and the training time to there. Also: the first evaluation of
each recipe within 0.01 of the published plateau on all three metrics."""
import json
import sys

METRICS = ('pixel_auroc', 'image_auroc', 'aupro')


def early_stop(losses, patience=5, rel=0.01):
    """The epoch (1-based) at which dfrcl's rule stops: `patience` epochs without a loss
    `rel` below the best (as src/model/train.c)."""
    best, bad = float('inf'), 0
    for i, loss in enumerate(losses):
        if loss < best * (1 - rel):
            best, bad = loss, 0
        else:
            best, bad = min(best, loss), bad + 1
        if bad >= patience:
            return i + 1
    return None


def first_within(points, target, tol=0.01):
    for p in points:
        if all(p[m] >= target[m] - tol for m in METRICS):
            return p
    return None


def fmt(p):
    return ' / '.join(f'{p[m]:.4f}' for m in METRICS)


def main(args):
    if len(args) % 3 or not args:
        sys.exit(__doc__)
    print('| data | published plateau (epoch, training s) | published within 0.01 | fast: stops at '
          '(epoch, training s) | fast accuracy there | fast within 0.01 | time ratio |')
    print('|---|---|---|---|---|---|---|')
    for i in range(0, len(args), 3):
        name, fast, pub = args[i], json.load(open(args[i + 1])), json.load(open(args[i + 2]))
        plateau = pub['points'][-1]
        pw = first_within(pub['points'], plateau)
        stop = early_stop(fast.get('losses', []))
        fp = fast['points']
        at = next((p for p in fp if stop and p['epoch'] >= stop), fp[-1])
        fw = first_within(fp, plateau)
        ok = all(at[m] >= plateau[m] - 0.01 for m in METRICS)
        print(f"| {name} | {fmt(plateau)} ({plateau['epoch']}, {plateau['train_seconds']:.0f} s) | "
              f"epoch {pw['epoch']}, {pw['train_seconds']:.0f} s | "
              f"{stop or 'no stop by ' + str(fp[-1]['epoch'])} ({at['epoch']}, {at['train_seconds']:.0f} s) | "
              f"{fmt(at)} {'(within 0.01)' if ok else '(NOT within 0.01)'} | "
              f"{('epoch %d, %.0f s' % (fw['epoch'], fw['train_seconds'])) if fw else 'never'} | "
              f"{plateau['train_seconds'] / at['train_seconds']:.1f}x |")


if __name__ == '__main__':
    main(sys.argv[1:])
