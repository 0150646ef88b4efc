#!/usr/bin/python3
"""Writes the image fixtures of tests/test_image.c from Pillow (run with Debian's /usr/bin/python3,
Pillow 9.4). Deterministic: rerunning gives the same files.

  resize_c<C>_<W>x<H>_<w>x<h>.png   PIL's Image.resize((w, h), Image.BILINEAR) of the synthetic
                                    C-channel W x H image pattern() below (the C test rebuilds
                                    it); 4 channels are resized as mode CMYK (no alpha
                                    premultiplication) and stored as RGBA bytes.
  resize_hazelnut_96.png            ../shared/data/hazelnut_toy/train/good/00.jpg opened,
                                    .convert('RGB').resize((96, 96), BILINEAR)
  resize_grid_64.png                ../shared/data/mvtec_grid_subset/train/good/000.png,
                                    .convert('L').resize((64, 64), BILINEAR)
  image_<kind>.png / .jpg           small PNGs of every colour type and bit depth (written by the
                                    hand-rolled encoder below, since PIL cannot write most of
                                    them) and JPEGs written by PIL
  image_<kind>.pil.png              what PIL decodes from it: Image.open(f).convert('L') for grey
                                    sources, .convert('RGB') otherwise

Usage: /usr/bin/python3 tools/make_resize_fixtures.py [--check]
  --check  compare with the committed files instead of writing (exit 1 on a difference)
"""
import io
import os
import struct
import sys
import warnings
import zlib

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, 'tests', 'fixtures')
SHARED = os.environ.get('DFRCL_SHARED') or os.path.join(ROOT, '..', 'shared')

# Keep in step with resize_cases[] in tests/test_image.c.
RESIZE_CASES = [  # (channels, src_w, src_h, dst_w, dst_h)
    (1, 37, 23, 16, 9), (1, 37, 23, 80, 51), (1, 37, 23, 1, 1), (1, 37, 23, 1, 23),
    (1, 37, 23, 37, 1), (1, 37, 23, 5, 40), (1, 37, 23, 12, 23), (1, 37, 23, 37, 7),
    (1, 37, 23, 111, 23), (1, 37, 23, 3, 2), (1, 200, 150, 13, 11), (1, 1, 1, 5, 3),
    (1, 2, 1, 7, 4), (1, 64, 64, 24, 24),
    (3, 37, 23, 16, 9), (3, 37, 23, 58, 31), (3, 37, 23, 7, 1),
    (4, 37, 23, 16, 9), (4, 37, 23, 41, 27),
]


def pattern(x, y, c):
    """Synthetic test image: a smooth ramp plus hard-edged blocks; integers only, so that the C
    test can rebuild it exactly. Keep in step with pattern() in tests/test_image.c."""
    return (x * x * 3 + y * 17 + c * 85 + ((x // 5 + y // 3) % 2) * 90 + (x * y) % 7) & 255


def synthetic(ch, w, h):
    mode = {1: 'L', 3: 'RGB', 4: 'CMYK'}[ch]
    data = bytes(pattern(x, y, c) for y in range(h) for x in range(w) for c in range(ch))
    return Image.frombytes(mode, (w, h), data)


def png_bytes(im):
    b = io.BytesIO()
    im.save(b, 'PNG', optimize=True)
    return b.getvalue()


# ---- hand-rolled PNG writer: every colour type / bit depth, optional Adam7 interlace ----

def _chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)


def _pack_row(samples, bd):
    if bd == 8:
        return bytes(samples)
    if bd == 16:
        return b''.join(struct.pack('>H', s) for s in samples)
    bits = ''.join(format(s, '0%db' % bd) for s in samples)
    bits += '0' * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def raw_png(w, h, ct, bd, px, plte=None, trns=None, interlace=False):
    """px[y][x] = tuple of samples. Filter type 0 (none) everywhere; the decoder's job is the
    same either way and zlib still compresses."""
    def scan(xs, ys):
        out = b''
        for y in ys:
            samples = [s for x in xs for s in px[y][x]]
            out += b'\0' + _pack_row(samples, bd)
        return out
    if interlace:
        raw = b''
        for x0, y0, dx, dy in ADAM7:
            xs, ys = range(x0, w, dx), range(y0, h, dy)
            if len(xs) and len(ys):
                raw += scan(xs, ys)
    else:
        raw = scan(range(w), range(h))
    out = b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bd, ct, 0, 0,
                                                                  1 if interlace else 0))
    out += _chunk(b'gAMA', struct.pack('>I', 45455))  # ignored by PIL and by dfrcl
    if plte:
        out += _chunk(b'PLTE', plte)
    if trns:
        out += _chunk(b'tRNS', trns)
    return out + _chunk(b'IDAT', zlib.compress(raw, 9)) + _chunk(b'IEND', b'')


def decode_cases():
    """(name, file bytes). Sizes are odd so that partial bytes and edge blocks get exercised."""
    w, h = 11, 7
    cases = []

    def s8(x, y, c):
        return (x * 23 + y * 41 + c * 70 + x * y * 5) & 255

    def s16(x, y, c):
        v = (x * 6007 + y * 9173 + c * 21011 + x * y * 313) & 0xffff
        return v if (x + y + c) % 4 else v % 300  # some values <= 255: PIL's grey clip shows

    for bd in (1, 2, 4, 8, 16):
        f = s16 if bd == 16 else (lambda x, y, c, bd=bd: s8(x, y, c) % (1 << bd))
        cases.append(('g%d' % bd, raw_png(w, h, 0, bd, [[(f(x, y, 0),) for x in range(w)]
                                                         for y in range(h)])))
    for bd in (8, 16):
        f = s16 if bd == 16 else s8
        cases.append(('ga%d' % bd, raw_png(w, h, 4, bd, [[(f(x, y, 0), f(x, y, 3))
                                                          for x in range(w)] for y in range(h)])))
        cases.append(('rgb%d' % bd, raw_png(w, h, 2, bd, [[tuple(f(x, y, c) for c in range(3))
                                                           for x in range(w)] for y in range(h)])))
        cases.append(('rgba%d' % bd, raw_png(w, h, 6, bd, [[tuple(f(x, y, c) for c in range(4))
                                                            for x in range(w)] for y in range(h)])))
    for bd in (1, 2, 4, 8):
        n = 1 << bd
        plte = bytes((i * 37 + c * 101) & 255 for i in range(n) for c in range(3))
        cases.append(('p%d' % bd, raw_png(w, h, 3, bd, [[(s8(x, y, 0) % n,) for x in range(w)]
                                                         for y in range(h)], plte=plte)))
    plte = bytes((i * 37 + c * 101) & 255 for i in range(256) for c in range(3))
    pix = [[(s8(x, y, 0),) for x in range(w)] for y in range(h)]
    cases.append(('p8trns', raw_png(w, h, 3, 8, pix, plte=plte, trns=bytes(range(0, 256, 8)))))
    cases.append(('g8trns', raw_png(w, h, 0, 8, pix, trns=struct.pack('>H', s8(1, 1, 0)))))
    cases.append(('rgb8i', raw_png(w, h, 2, 8, [[tuple(s8(x, y, c) for c in range(3))
                                                 for x in range(w)] for y in range(h)],
                                   interlace=True)))
    cases.append(('g16i', raw_png(w, h, 0, 16, [[(s16(x, y, 0),) for x in range(w)]
                                                for y in range(h)], interlace=True)))

    # JPEGs from PIL's encoder (libjpeg-turbo); 13x11 is not a multiple of any MCU size.
    jw, jh = 13, 11
    rgb = Image.frombytes('RGB', (jw, jh), bytes(s8(x, y, c) for y in range(jh)
                                                  for x in range(jw) for c in range(3)))
    grey = rgb.convert('L')
    cmyk = Image.frombytes('CMYK', (jw, jh), bytes(s8(x, y, c) for y in range(jh)
                                                    for x in range(jw) for c in range(4)))
    for name, im, kw in [('grey', grey, {}), ('rgb420', rgb, {'subsampling': 2}),
                         ('rgb444', rgb, {'subsampling': 0}),
                         ('rgb422prog', rgb, {'subsampling': 1, 'progressive': True}),
                         ('cmyk', cmyk, {})]:
        b = io.BytesIO()
        im.save(b, 'JPEG', quality=90, **kw)
        cases.append(('j' + name, b.getvalue()))
    return cases


def pil_decoded(data):
    """PIL's view of a file: .convert('L') when the source is grey (PNG colour type 0 or 4, or a
    grey JPEG), else .convert('RGB'). (PIL opens 16-bit grey+alpha as mode RGBA; its RGBA -> L
    of equal R, G, B gives that grey back.)"""
    im = Image.open(io.BytesIO(data))
    im.load()
    grey = data[25] in (0, 4) if data[:4] == b'\x89PNG' else im.mode == 'L'
    return im.convert('L' if grey else 'RGB')


def main():
    warnings.simplefilter('ignore')  # PIL nags about palette transparency; irrelevant here
    check = '--check' in sys.argv[1:]
    files = {}
    for ch, sw, sh, dw, dh in RESIZE_CASES:
        out = synthetic(ch, sw, sh).resize((dw, dh), Image.BILINEAR)
        if ch == 4:
            out = Image.frombytes('RGBA', out.size, out.tobytes())
        files['resize_c%d_%dx%d_%dx%d.png' % (ch, sw, sh, dw, dh)] = png_bytes(out)

    for name, data in decode_cases():
        ext = 'jpg' if name.startswith('j') else 'png'
        files['image_%s.%s' % (name, ext)] = data
        files['image_%s.pil.png' % name] = png_bytes(pil_decoded(data))

    hz = os.path.join(SHARED, 'data', 'hazelnut_toy', 'train', 'good')
    gr = os.path.join(SHARED, 'data', 'mvtec_grid_subset', 'train', 'good')
    if os.path.isdir(hz) and os.path.isdir(gr):
        assert sorted(os.listdir(hz))[0] == '00.jpg' and sorted(os.listdir(gr))[0] == '000.png'
        im = Image.open(os.path.join(hz, '00.jpg')).convert('RGB')
        files['resize_hazelnut_96.png'] = png_bytes(im.resize((96, 96), Image.BILINEAR))
        im = Image.open(os.path.join(gr, '000.png')).convert('L')
        files['resize_grid_64.png'] = png_bytes(im.resize((64, 64), Image.BILINEAR))
    else:
        print('warning: %s absent, shared-image fixtures not (re)made' % SHARED, file=sys.stderr)

    bad = 0
    for name, data in sorted(files.items()):
        path = os.path.join(FIX, name)
        if check:
            old = open(path, 'rb').read() if os.path.exists(path) else None
            if old != data:
                print('differs: ' + name)
                bad += 1
        else:
            with open(path + '.tmp', 'wb') as f:
                f.write(data)
            os.replace(path + '.tmp', path)
    total = sum(len(d) for d in files.values())
    print('%d files, %d bytes%s' % (len(files), total, ', %d differ' % bad if check else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
