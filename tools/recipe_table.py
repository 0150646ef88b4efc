#!/usr/bin/env python3
"""Accuracy against training time for the two recipes, from the curves `dfrcl train --eval-every`
writes (MODEL.curve.json): one row per dataset, as in the README's Results.

    tools/recipe_table.py NAME FAST.curve.json PUBLISHED.curve.json [NAME FAST PUBLISHED ...]

(each curve records the training images and batch, from which the steps per epoch come)

The published plateau is the published run's last evaluation. For the fast recipe the row gives
the point where its default early stop (a 5-epoch window, 3%) would have stopped, computed from the
per-epoch losses the curve holds (the run itself went on with --patience off), the accuracy at the
nearest evaluation at or after it, and the training time to there. Also: the first evaluation of
each recipe within 0.01 of the published plateau on all three metrics."""
import json
import sys

METRICS = ('pixel_auroc', 'image_auroc', 'aupro')


def early_stop(losses, steps_per_epoch, window=5, fraction=0.03, min_steps=50):
    """The epoch (1-based) at which dfrcl's rule stops (src/model/train.c, should_stop): the last
    `window` epochs (at least min_steps steps) lowered the loss by less than `fraction` of its
    fall since the first."""
    window = max(window, -(-min_steps // steps_per_epoch))
    for e in range(window + 1, len(losses) + 1):
        if losses[e - 1 - window] - losses[e - 1] < fraction * (losses[0] - losses[e - 1]):
            return e
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
        spe = -(-fast['train_images'] // fast['batch'])
        stop = early_stop(fast.get('losses', []), spe)
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
