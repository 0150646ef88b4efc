"""Small generators for the bad-input suite: safetensors files (build, parse, edit), the first
layers of a VGG19 as weights, PNG and JPEG files (well formed, broken, or declaring huge sizes),
.npy files. Standard library only."""
import array
import json
import random
import struct
import zlib


# --- safetensors --------------------------------------------------------------------------------

def st_parse(b):
    """(header dict, header length, data bytes) of a safetensors file."""
    n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), n, b[8 + n:]


def st_build(header, data, pad=True):
    """A safetensors file from a header (dict or raw JSON text) and its data."""
    h = header if isinstance(header, (str, bytes)) else json.dumps(header, separators=(',', ':'))
    if isinstance(h, str):
        h = h.encode()
    if pad:
        h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


def st_tensors(tensors, meta=None):
    """A safetensors file from [(name, dtype, shape, bytes)]."""
    header, data, off = {}, b'', 0
    if meta is not None:
        header['__metadata__'] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(raw)]}
        data += raw
        off += len(raw)
    return st_build(header, data)


def tensor_names(header):
    """The tensor names in file order (by data offset)."""
    names = [k for k in header if k != '__metadata__']
    return sorted(names, key=lambda k: header[k]['data_offsets'][0])


def f32(values):
    return array.array('f', values).tobytes()


VGG_CONVS = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128)]


def vgg_weights(layers=4, seed=1):
    """The first `layers` convolutions of a VGG19 (torchvision names), small random values."""
    rnd = random.Random(seed)
    tensors = []
    for idx, cout, cin in VGG_CONVS[:layers]:
        n = cout * cin * 9
        w = array.array('f', (rnd.uniform(-0.05, 0.05) for _ in range(n)))
        tensors.append(('features.%d.weight' % idx, 'F32', [cout, cin, 3, 3], w.tobytes()))
        tensors.append(('features.%d.bias' % idx, 'F32', [cout],
                        f32(rnd.uniform(-0.01, 0.01) for _ in range(cout))))
    return st_tensors(tensors, {'source': 'dfrcl bad-input suite'})


def set_f32(b, tensor, index, value):
    """b with element `index` of an F32 tensor set to value (NaN, Inf...)."""
    header, n, data = st_parse(b)
    off = header[tensor]['data_offsets'][0] + 4 * index
    data = data[:off] + struct.pack('<f', value) + data[off + 4:]
    return b[:8 + n] + data


# --- PNG ----------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def png_ihdr(w, h, depth=8, colour=2, interlace=0):
    return png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, colour, 0, 0, interlace))


SIG = b'\x89PNG\r\n\x1a\n'


def png(w, h, depth=8, colour=2, rows=None, extra=b'', idat=None):
    """A PNG; rows: the raw scanlines without filter bytes (default: a grey ramp)."""
    chans = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    rowlen = (w * chans * depth + 7) // 8
    if idat is None:
        if rows is None:
            rows = [bytes((x * 7 + y * 3) & 0xff for x in range(rowlen)) for y in range(h)]
        idat = zlib.compress(b''.join(b'\0' + r for r in rows), 9)
    return (SIG + png_ihdr(w, h, depth, colour) + extra + png_chunk(b'IDAT', idat) +
            png_chunk(b'IEND', b''))


def png_zero_bomb(w, h, depth=16, colour=6, rows=None):
    """A PNG of w x h zero pixels (all of them, or the first `rows` rows): tiny file, huge
    image. Made without compressing gigabytes: after a full flush the compressor's output for the
    same block of rows repeats, and the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1."""
    chans = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    line = b'\0' * (1 + (w * chans * depth + 7) // 8)
    todo = h if rows is None else rows
    per = max(1, (1 << 20) // len(line))
    k, rest = divmod(todo, per)
    z = zlib.compressobj(9)
    block = line * per
    if k:
        first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
        again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH) if k > 1 else b''
        body = first + again * (k - 1)
    else:
        body = b''
    last = z.compress(line * rest) + z.flush()
    n = todo * len(line)
    stream = body + last[:-4] + struct.pack('>I', ((n % 65521) << 16) | 1)
    return SIG + png_ihdr(w, h, depth, colour) + png_chunk(b'IDAT', stream) + \
        png_chunk(b'IEND', b'')


def png_mask(w, h, box):
    """A grey PNG mask, 255 inside box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    rows = [bytes(255 if x0 <= x < x1 and y0 <= y < y1 else 0 for x in range(w)) for y in range(h)]
    return png(w, h, 8, 0, rows)


# --- JPEG ---------------------------------------------------------------------------------------

def jpeg_split(b):
    """(the segments before the scan data, including SOS, as bytes; the scan data and the
    rest)."""
    assert b[:2] == b'\xff\xd8', 'not a JPEG'
    i = 2
    while i < len(b):
        assert b[i] == 0xff, 'bad marker at %d' % i
        m = b[i + 1]
        n = struct.unpack('>H', b[i + 2:i + 4])[0]
        i += 2 + n
        if m == 0xda:
            return b[:i], b[i:]
    raise ValueError('no SOS')


def jpeg_resize_header(b, w, h):
    """b with its frame header (SOF0/1/2) declaring w x h."""
    i = 2
    out = bytearray(b)
    while i < len(b):
        m = b[i + 1]
        n = struct.unpack('>H', b[i + 2:i + 4])[0]
        if m in (0xc0, 0xc1, 0xc2):
            out[i + 5:i + 9] = struct.pack('>HH', h, w)
            return bytes(out)
        if m == 0xda:
            break
        i += 2 + n
    raise ValueError('no SOF')


# --- .npy ---------------------------------------------------------------------------------------

def npy_f32(shape, values):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        ', '.join(map(str, shape)) + (',' if len(shape) == 1 else ''))
    hdr = hdr.encode()
    hdr += b' ' * (-(10 + len(hdr) + 1) % 64) + b'\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr + f32(values)


def cut(b, k, n=8):
    """The first k/n of b."""
    return b[:len(b) * k // n]
