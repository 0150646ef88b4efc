#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/ (python3 stdlib only):
a few valid inputs and a few broken ones per target, each a few KB at most. The image seeds are
the test fixtures' small PNGs and JPEGs plus damaged copies. Run it again after changing it and
commit the result:  python3 tests/fuzz/make_corpus.py"""
import base64
import hashlib
import json
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'fixtures')
CORPUS = os.path.join(HERE, 'corpus')


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 4096, (target, name, len(data))
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def safetensors(tensors, meta=None):
    """tensors: name -> (dtype, shape, raw bytes); laid out in order."""
    header, data = {}, b''
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    if meta is not None:
        header['__metadata__'] = meta
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


def f32(*v):
    return struct.pack('<%df' % len(v), *v)


def gen_safetensors():
    good = safetensors({'a': ('F32', [2, 2], f32(1, 2, 3, 4)), 'b': ('F16', [3], b'\x00<\x00@\x00B'),
                        'c': ('BF16', [], b'\x80?'), 'd': ('I64', [1], struct.pack('<q', 7))},
                       {'format': 'pt', 'k': 'v'})
    put('safetensors', 'valid', good)
    put('safetensors', 'empty_tensor', safetensors({'z': ('F64', [0, 3], b'')}))
    put('safetensors', 'truncated', good[:len(good) - 5])
    put('safetensors', 'header_too_long', struct.pack('<Q', 1 << 40) + good[8:])
    put('safetensors', 'bad_json', good[:20] + b'{' + good[21:])
    bad = json.dumps({'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},
                      'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [4, 12]}}).encode()
    put('safetensors', 'overlap', struct.pack('<Q', len(bad)) + bad + bytes(12))


# The dfrcl model file: metadata as dfr_model_save writes it; tensors tiny (only the metadata
# and the layer discovery are fuzzed here).
SHA = 'ab' * 32


def model_meta(**edit):
    meta = {'format': 'dfrcl-dfr', 'format_version': '1', 'dfrcl_version': '0.1.0',
            'layer_names': 'relu1_1', 'layers': '1', 'size': '16', 'channels': '64',
            'latent': '8', 'threshold': '0.0123', 'fpr': '0.005', 'epochs': '3', 'batch': '4',
            'train_images': '5', 'lr': '0.0003', 'final_loss': '0.5', 'num_batches_tracked': '6',
            'positions': '2', 'seed': '0', 'recipe': 'fast', 'normalisation': 'imagenet',
            'backbone_sha256': SHA, 'backbone': 'random seed 0'}
    meta.update(edit)
    return {k: v for k, v in meta.items() if v is not None}


def gen_model():
    t = {'enc.0.bias': ('F32', [2], f32(0.5, -1))}
    put('model', 'valid', safetensors(t, model_meta()))
    put('model', 'valid_published', safetensors(t, model_meta(recipe='published', layers='2',
                                                                 channels='128', latent='100')))
    put('model', 'version2', safetensors(t, model_meta(format_version='2')))
    put('model', 'size_not_4x', safetensors(t, model_meta(size='18')))
    put('model', 'threshold_nan', safetensors(t, model_meta(threshold='nan')))
    put('model', 'latent_over', safetensors(t, model_meta(latent='65')))
    put('model', 'no_backbone', safetensors(t, model_meta(backbone_sha256=None)))
    put('model', 'not_model', safetensors(t, {'format': 'pt'}))
    w = {'features.0.weight': ('F32', [1, 1, 1, 1], f32(1)), 'features.0.bias': ('F32', [1], f32(0)),
         'features.2.weight': ('F32', [1, 1, 1, 1], f32(1)), 'features.2.bias': ('F32', [1], f32(0))}
    put('model', 'weights_2_layers', safetensors(w))


def gen_images():
    pngs = ['image_g1.png', 'image_g16.png', 'image_ga8.png', 'image_p4.png', 'image_p8trns.png',
            'image_rgb8i.png', 'image_rgba16.png']
    for n in pngs:
        shutil.copy(os.path.join(FIXTURES, n), os.path.join(CORPUS, 'png', n))
    src = open(os.path.join(FIXTURES, 'image_rgb8.png'), 'rb').read()
    put('png', 'cut_before_iend_crc', src[:-2])
    put('png', 'cut_in_idat', src[:len(src) // 2])
    put('png', 'bad_crc', src[:30] + bytes([src[30] ^ 1]) + src[31:])
    # a tiny file declaring 30000 x 30000 pixels: over the pixel limit
    ihdr = struct.pack('>IIBBBBB', 30000, 30000, 8, 0, 0, 0, 0)
    chunk = lambda typ, body: (struct.pack('>I', len(body)) + typ + body +
                               struct.pack('>I', zlib.crc32(typ + body)))
    put('png', 'bomb_dims', b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
        chunk(b'IDAT', zlib.compress(b'\0' * 100)) + chunk(b'IEND', b''))

    for n in ['image_jgrey.jpg', 'image_jrgb420.jpg', 'image_jrgb422prog.jpg', 'image_jcmyk.jpg']:
        shutil.copy(os.path.join(FIXTURES, n), os.path.join(CORPUS, 'jpeg', n))
    src = open(os.path.join(FIXTURES, 'image_jrgb420.jpg'), 'rb').read()
    put('jpeg', 'cut_in_scan', src[:len(src) * 3 // 4])
    put('jpeg', 'no_eoi', src[:-2])
    sof = src.index(b'\xff\xc0')
    put('jpeg', 'bomb_dims', src[:sof + 5] + struct.pack('>HH', 16000, 16000) + src[sof + 9:])
    sos = src.index(b'\xff\xda')
    put('jpeg', 'no_scan_data', src[:sos] + b'\xff\xd9')
    # Found by fuzz_jpeg: a 421-byte progressive JPEG declaring 3072x35336 (inside the pixel limit)
    # that decoded and then resized for minutes; now refused by the decode memory limit.
    put('jpeg', 'progressive_bomb', base64.b64decode(
        '/9j/AQELCgsLDQ4SEA0OEQ4LCxUVFQwPFxgWFBgSFBUU/9sAQwEDBAQFBAUJBQUJFA0LDRQUFBQUFBQUFBQUFBQU'
        'FBRFbXB0eSBKUEVHIGltYWdlIChETkwgbm90IHN1cHBvcnQUFBQUFBQUFBQUFBQUFBTOzs7Ozs7Ozs7Ozs7Ozs7O'
        'zs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7O'
        'zs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs4UFBQUFBQUFBQUFBQUFBQUFBQU/8IAEQgMAIoIAwEh'
        'AAIRAQMRAf/EABYAAQEBAAAAAAAAAAAAAAAAAAMCBv/EABcBAAMBAAAAAAAAAAAAAAAAAAABAgEBPxAz6YFPniH5'
        'u6qWJUKYEZujfZHvAGuw2HH/xAAjEQEAAQMDAwUAAAAAAAAAAAABAhESMQMTMgAEISJBUYHB/9oACAECAQE/AbdW'
        'emxWCi46YWh+B7i3UUXW4IJwoVQAMn//2Q=='))


def npy(descr="'<f4'", shape='(2, 3)', fortran='False', version=1, data=None, pad=True):
    h = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    pre = 10 if version == 1 else 12
    h += ' ' * ((-(pre + len(h) + 1) % 64) if pad else 0) + '\n'
    size = struct.pack('<H', len(h)) if version == 1 else struct.pack('<I', len(h))
    if data is None:
        data = f32(*range(6))
    return b'\x93NUMPY' + bytes([version, 0]) + size + h.encode() + data


def gen_npy():
    put('npy', 'valid', npy())
    put('npy', 'valid_v2', npy(version=2))
    put('npy', 'scalar', npy(shape='()', data=f32(1.5)))
    put('npy', 'empty', npy(shape='(0,)', data=b''))
    put('npy', 'truncated', npy()[:-3])
    put('npy', 'fortran', npy(fortran='True'))
    put('npy', 'f8', npy(descr="'<f8'"))
    put('npy', 'huge_shape', npy(shape='(9223372036854775807, 9)'))
    put('npy', 'bad_magic', b'\x93NUMPZ' + npy()[6:])


def gen_dataset():
    put('dataset', 'mvtec', 'dtrain/good\nftrain/good/000.png\nftrain/good/001.JPG\n'
        'ftrain/good/002.jpeg\nftest/good/000.png\nftest/crack/000.png\ndground_truth/crack\n')
    put('dataset', 'odd_entries', 'ftrain/good/a.png\nptrain/good/pipe.png\ndtrain/good/dir.png\n'
        'ftrain/good/.hidden.png\nftrain/good/notes.txt\nltrain/good/link.png>a.png\n'
        'ltrain/good/dangling.jpg>nothing.png\nltrain/good/loop.png>loop.png\n')
    put('dataset', 'empty_good', 'dtrain/good\nftrain/good/readme\n')
    put('dataset', 'no_train', 'dtest/good\nftest/good/a.png\n')
    put('dataset', 'train_is_link', 'dreal/good\nfreal/good/x.png\nltrain>real\n')


def gen_options():
    opts = {
        'train_all': ['-e', '5', '-b', '2', '--lr', '0.001', '--latent', 'auto', '--fpr', '0.01',
                      '--seed', '3', '--recipe', 'published', '--positions', 'all',
                      '--patience', 'off', '--memory', '800MiB', '--store', 'disk',
                      '--precision', 'fp16', '--feature-dir', '/tmp'],
        'backbone': ['--device', 'pocl', '-w', 'vgg.safetensors', '--layers', 'relu3_4', '-s', '64',
                     '-v', '--random-backbone', '7', '-q'],
        'bad_int': ['--epochs', '12x'],
        'bad_lr': ['--lr', 'nan'],
        'bad_memory': ['--memory', '1e300G'],
        'bad_layers': ['--layers', 'relu9_9'],
        'missing_value': ['--size'],
        'unknown': ['--frobnicate', '1'],
    }
    for name, args in opts.items():
        put('options', name, '\n'.join(args))


def cache_entry(payload, key, version=1, length=None, digest=None):
    return (b'DFRCLBIN' + struct.pack('<IIQ', version, 120, len(payload) if length is None else length) +
            (digest or hashlib.sha256(payload).digest()) + key.encode() + payload)


def gen_cache_entry():
    # The fuzz target asks for this key (fuzz_cache_entry.c).
    key = hashlib.sha256(b'dfrcl fuzz').hexdigest()
    payload = bytes(range(200))
    good = cache_entry(payload, key)
    put('cache_entry', 'valid', good)
    put('cache_entry', 'half', good[:len(good) // 2])
    put('cache_entry', 'flipped', good[:150] + bytes(b ^ 0xff for b in good[150:214]) + good[214:])
    put('cache_entry', 'other_key', cache_entry(payload, 'cd' * 32))
    put('cache_entry', 'version2', cache_entry(payload, key, version=2))
    put('cache_entry', 'long_length', cache_entry(payload, key, length=1 << 62))
    put('cache_entry', 'raw_binary', payload)


if __name__ == '__main__':
    shutil.rmtree(CORPUS, ignore_errors=True)
    for t in ['png', 'jpeg']:
        os.makedirs(os.path.join(CORPUS, t))
    gen_safetensors()
    gen_model()
    gen_images()
    gen_npy()
    gen_dataset()
    gen_options()
    gen_cache_entry()
