"""The cases of the bad-input suite. Each has a stable id (class/name) and a build function that
writes its inputs into the case's own folder and returns the dfrcl command line; what the
command must do is in the Case's fields (see run.py for the checks)."""
import json
import os
import shutil
import signal
import stat
import struct
import time

import gen

RB = ['--random-backbone', '0']
SMALL = RB + ['--size', '32', '--layers', '4']
FIFO_TIMEOUT = 10  # a case that may block on a named pipe: long enough for a sanitized build

# What is wrong, per class (the error line must also name the file).
P_TRUNC = (r'truncat|ended|end of|too short|short read|premature|incomplete|corrupt|not valid|'
           r'header length|beyond|past|more than|empty|unknown image format|bad|crc|missing|'
           r'no image|not a|cannot|failed')
P_HEADER = (r'header|dtype|shape|offset|json|tensor|metadata|overlap|not a|no vgg19|lacks|has no|'
            r'format|version|trained with|expected|mismatch|not an integer|not a number|size|'
            r'layers|channels|latent|threshold|too short|empty')
P_NAN = r'\bnan\b|\binf|non-finite|not finite'
P_BOMB = (r'large|pixels|memory|limit|corrupt|truncat|premature|missing|bytes|zero size|ended|'
          r'bad|unsupported|too')
P_NOTFILE = r'not a regular file|is a directory|directory|folder|fifo|pipe|not a file|special'
P_LINK = r'symlink|symbolic link|link|no such file|too many levels|dangling|cannot open|loop'
P_OPT = (r'expects|requires an argument|unrecognized|unknown|invalid|need|out of range|not found|'
         r'unexpected|usage|trained with|no opencl device|matches')
P_DEST = (r'cannot|directory|folder|no such|exists|not a|empty|invalid|bad|refus|need|too long|'
          r'not writable')


class Skip(Exception):
    """Raised by a build function when the case cannot apply here (it is reported as SKIP)."""


class Context:
    def __init__(self, dfrcl, root, work, env):
        self.dfrcl, self.root, self.work, self.env = dfrcl, root, work, env
        self.setup_dir = os.path.join(work, 'setup')


class Case:
    def __init__(self, id, build, rc=(1,), names=(), pat=None, absent=(), present=(),
                 timeout=120, names_ok=(), pat_ok=None, forbid=None, check=None, skip=None,
                 name_on_error_line=True, max_rss_mib=0):
        self.id, self.build = id, build
        self.rc = (rc,) if isinstance(rc, int) else tuple(rc)
        self.names, self.names_ok = list(names), list(names_ok)
        self.pat, self.pat_ok, self.forbid = pat, pat_ok, forbid
        self.absent, self.present = list(absent), list(present)
        self.timeout, self.check, self.skip = timeout, check, skip
        self.name_on_error_line, self.max_rss_mib = name_on_error_line, max_rss_mib


def put(d, name, data):
    p = os.path.join(d, os.fsdecode(name) if isinstance(name, bytes) else name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, 'wb') as f:
        f.write(data)
    return p


def read(p):
    with open(p, 'rb') as f:
        return f.read()


def copytree(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def as_root():
    return os.geteuid() == 0


# --- setup: the real inputs every case starts from ----------------------------------------------

def setup(ctx, run_cmd):
    s = ctx.setup_dir
    os.makedirs(s)

    def must(argv, what, **kw):
        rc, out, _ = run_cmd([ctx.dfrcl] + argv, s, ctx.env, 600, **kw)
        if rc != 0:
            raise RuntimeError('%s: exit %s\n%s' % (what, rc, out.decode('utf-8', 'replace')[-2000:]))
        return out

    # A model, the dataset it was trained on (with test images and masks): the demo, tiny.
    must(['demo', '--out', 'demo', '--epochs', '1', '--train', '2', '--size', '32', '--layers', '4',
          '-q'], 'dfrcl demo')
    ctx.model = os.path.join(s, 'demo', 'model.safetensors')
    ctx.model_bytes = read(ctx.model)
    ctx.data = os.path.join(s, 'demo', 'data')
    ctx.img = os.path.join(ctx.data, 'test', 'scratch', '000.png')
    ctx.img_bytes = read(ctx.img)
    ctx.demo_img = os.path.join(ctx.root, 'data', 'demo', 'woven_scratch.png')
    ctx.mask_bytes = read(os.path.join(ctx.data, 'ground_truth', 'scratch', '000_mask.png'))
    # A training folder of four normal images.
    ctx.ds = os.path.join(s, 'ds')
    for i in range(4):
        shutil.copy(os.path.join(ctx.data, 'train', 'good', '%03d.png' % (i % 2)),
                    put(ctx.ds, 'train/good/%d.png' % i, b''))
    # Backbone weights: the first four VGG19 convolutions, random.
    ctx.weights_bytes = gen.vgg_weights(4)
    ctx.weights = put(s, 'w.safetensors', ctx.weights_bytes)
    # A features file (a safetensors file that is not a model).
    must(['features'] + SMALL + [ctx.img, '-o', 'f.safetensors'], 'dfrcl features')
    ctx.features = os.path.join(s, 'f.safetensors')
    # A training checkpoint: a long training stopped by Ctrl-C.
    def interrupt(p, out_path):
        wait_for(out_path, b'recipe published', 60)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
    rc, out, _ = run_cmd([ctx.dfrcl, 'train', '--data', ctx.ds] + SMALL +
                         ['--recipe', 'published', '--epochs', '800', '-o', 'ck.safetensors'],
                         s, ctx.env, 120, on_start=interrupt)
    ctx.ckpt = os.path.join(s, 'ck.safetensors.checkpoint')
    if rc != 130 or not os.path.exists(ctx.ckpt):
        raise RuntimeError('no checkpoint from an interrupted training (exit %s)\n%s'
                           % (rc, out.decode('utf-8', 'replace')[-2000:]))
    ctx.ckpt_bytes = read(ctx.ckpt)
    ctx.fixtures = os.path.join(ctx.root, 'tests', 'fixtures')
    ctx.kernel_cache = ctx.env['DFRCL_CACHE_DIR']


def wait_for(path, marker, timeout):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            if marker in read(path):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


# --- builders -----------------------------------------------------------------------------------

def features_on(name, opts=SMALL):
    return lambda d, ctx: {'argv': ['features'] + opts + [name, '-o', 'out.safetensors']}


def image_case(id, data, name='x.png', pat=P_TRUNC, **kw):
    """features on one image made by data(ctx)."""
    def build(d, ctx):
        put(d, name, data(ctx))
        return {'argv': ['features'] + SMALL + [name, '-o', 'out.safetensors']}
    kw.setdefault('absent', ['out.safetensors'])
    return Case(id, build, names=[name], pat=pat, **kw)


def weights_case(id, data, pat=P_HEADER, layers=False, cmd='features', **kw):
    """A command on backbone weights made by data(ctx)."""
    def build(d, ctx):
        put(d, 'w.safetensors', data(ctx))
        lay = ['--layers', '4'] if layers else []
        if cmd == 'features':
            return {'argv': ['features', '--weights', 'w.safetensors', '--size', '32'] + lay +
                    [ctx.img, '-o', 'out.safetensors']}
        return {'argv': ['train', '--weights', 'w.safetensors', '--size', '32', '--epochs', '1',
                         '--data', ctx.ds] + lay + extra + ['-o', 'out.safetensors']}
    extra = kw.pop('extra', [])
    kw.setdefault('absent', ['out.safetensors'])
    return Case(id, build, names=['w.safetensors'], pat=pat, **kw)


def model_case(id, data, pat=P_HEADER, cmd='infer', **kw):
    """infer (or eval) with a model file made by data(ctx)."""
    def build(d, ctx):
        put(d, 'm.safetensors', data(ctx))
        if cmd == 'infer':
            return {'argv': ['infer', '--model', 'm.safetensors'] + RB + [ctx.img]}
        return {'argv': ['eval', '--model', 'm.safetensors'] + RB +
                ['--data', ctx.data, '--json', 'e.json', '-q']}
    if cmd == 'eval':
        kw.setdefault('absent', ['e.json'])
    return Case(id, build, names=['m.safetensors'], pat=pat, **kw)


def edit_header(field_fn, which='model'):
    """A file whose JSON header field_fn(header, names) changed (data unchanged)."""
    def data(ctx):
        b = ctx.model_bytes if which == 'model' else ctx.weights_bytes
        h, _, body = gen.st_parse(b)
        h2 = field_fn(h, gen.tensor_names(h))
        return gen.st_build(h if h2 is None else h2, body)
    return data


def raw_header(text_fn, which='model'):
    """A file whose header is the raw text text_fn(header JSON text) (data unchanged)."""
    def data(ctx):
        b = ctx.model_bytes if which == 'model' else ctx.weights_bytes
        n = struct.unpack('<Q', b[:8])[0]
        txt = b[8:8 + n].rstrip(b' ')
        return gen.st_build(text_fn(txt), b[8 + n:], pad=False)
    return data


def prefix(value, which='model'):
    def data(ctx):
        b = ctx.model_bytes if which == 'model' else ctx.weights_bytes
        return struct.pack('<Q', value if isinstance(value, int) else value(len(b))) + b[8:]
    return data


# Header edits, each as (name, a function of (header, tensor names in file order) that edits it
# in place, or returns a new one). They apply to the model and to the weights alike.
def _t(h, names, i):
    return h[names[i]]


def _overlap(h, names):
    a, b = _t(h, names, 0), _t(h, names, 1)
    n = b['data_offsets'][1] - b['data_offsets'][0]
    b['data_offsets'] = [a['data_offsets'][0], a['data_offsets'][0] + n]


def _swap_shapes(h, names):
    a, b = _t(h, names, 0), _t(h, names, 2)
    a['shape'], b['shape'] = b['shape'], a['shape']


def _same_count_other_shape(h, names):
    t = _t(h, names, 0)
    n = 1
    for s in t['shape']:
        n *= s
    t['shape'] = [n]


HEADER_EDITS = [
    ('dtype-unknown', lambda h, n: _t(h, n, 0).update(dtype='F99')),
    ('dtype-lowercase', lambda h, n: _t(h, n, 0).update(dtype='f32')),
    ('dtype-i8', lambda h, n: _t(h, n, 0).update(dtype='I8')),
    ('dtype-f64', lambda h, n: _t(h, n, 0).update(dtype='F64')),
    ('dtype-f16', lambda h, n: _t(h, n, 0).update(dtype='F16')),
    ('dtype-number', lambda h, n: _t(h, n, 0).update(dtype=32)),
    ('dtype-missing', lambda h, n: _t(h, n, 0).pop('dtype')),
    ('shape-too-big', lambda h, n: _t(h, n, 0)['shape'].__setitem__(0, _t(h, n, 0)['shape'][0] * 2)),
    ('shape-too-small', lambda h, n: _t(h, n, 1).update(shape=[1])),
    ('shape-negative', lambda h, n: _t(h, n, 0)['shape'].__setitem__(0, -1)),
    ('shape-overflow', lambda h, n: _t(h, n, 0).update(shape=[1 << 62, 1 << 62, 16])),
    ('shape-float', lambda h, n: _t(h, n, 0)['shape'].__setitem__(0, 1.5)),
    ('shape-ndim-9', lambda h, n: _t(h, n, 1).update(shape=[1] * 8 + [_t(h, n, 1)['shape'][0]])),
    ('shape-string', lambda h, n: _t(h, n, 0).update(shape='64')),
    ('shape-swapped', _swap_shapes),
    ('shape-flattened', _same_count_other_shape),
    ('offsets-beyond', lambda h, n: _t(h, n, -1)['data_offsets'].__setitem__(1, _t(h, n, -1)['data_offsets'][1] + 4096)),
    ('offsets-reversed', lambda h, n: _t(h, n, 0).update(data_offsets=_t(h, n, 0)['data_offsets'][::-1])),
    ('offsets-overlap', _overlap),
    ('offsets-negative', lambda h, n: _t(h, n, 1)['data_offsets'].__setitem__(0, -4)),
    ('offsets-float', lambda h, n: _t(h, n, 1)['data_offsets'].__setitem__(0, _t(h, n, 1)['data_offsets'][0] + 0.5)),
    ('offsets-huge', lambda h, n: _t(h, n, 1).update(data_offsets=[1 << 63, (1 << 63) + 4])),
    ('offsets-three', lambda h, n: _t(h, n, 1)['data_offsets'].append(0)),
    ('offsets-missing', lambda h, n: _t(h, n, 1).pop('data_offsets')),
    ('tensor-missing-first', lambda h, n: h.pop(n[0])),
    ('tensor-missing-last', lambda h, n: h.pop(n[-1])),
    ('tensor-not-object', lambda h, n: h.update({n[0]: 5})),
    ('tensors-none', lambda h, n: {'__metadata__': h.get('__metadata__', {})}),
    ('metadata-not-object', lambda h, n: h.update(__metadata__=[1, 2])),
    ('metadata-number-value', lambda h, n: h['__metadata__'].update(format=1)),
    ('empty-object', lambda h, n: {}),
]

RAW_HEADERS = [
    ('header-not-json', lambda t: b'x' * len(t)),
    ('header-array', lambda t: b'[' + t + b']'),
    ('header-trailing', lambda t: t + b'garbage'),
    ('header-cut-json', lambda t: t[:len(t) // 2]),
    ('header-duplicate-key', lambda t: b'{"' + t[2:t.index(b'}') + 1] + b',' + t[1:]),
    ('header-nul', lambda t: t[:10] + b'\0' + t[11:]),
    ('header-deep', lambda t: b'[' * 100000 + b']' * 100000),
]

PREFIXES = [
    ('hdrlen-huge', 1 << 63),
    ('hdrlen-2e40', 1 << 40),
    ('hdrlen-filelen', lambda n: n),
    ('hdrlen-zero', 0),
    ('hdrlen-one', 1),
    ('hdrlen-max', (1 << 64) - 1),
]


def nan_model(value, tensor=0, index=0):
    def data(ctx):
        h, _, _ = gen.st_parse(ctx.model_bytes)
        return gen.set_f32(ctx.model_bytes, gen.tensor_names(h)[tensor], index, value)
    return data


def meta_model(**changes):
    def edit(h, names):
        for k, v in changes.items():
            if v is None:
                h['__metadata__'].pop(k, None)
            else:
                h['__metadata__'][k] = v
    return edit_header(edit)


def nan_weights(value, tensor='features.0.weight', index=0):
    return lambda ctx: gen.set_f32(ctx.weights_bytes, tensor, index, value)


# --- the case list ------------------------------------------------------------------------------

def truncation_cases():
    out = []
    for k in range(8):
        frac = '%dof8' % k
        out.append(weights_case('weights/trunc-%s' % frac, lambda c, k=k: gen.cut(c.weights_bytes, k),
                                pat=P_TRUNC))
        out.append(weights_case('weights/trunc-%s-train' % frac,
                                lambda c, k=k: gen.cut(c.weights_bytes, k), pat=P_TRUNC,
                                cmd='train', layers=True))
        out.append(model_case('model/trunc-%s' % frac, lambda c, k=k: gen.cut(c.model_bytes, k),
                              pat=P_TRUNC))
        out.append(model_case('model/trunc-%s-eval' % frac, lambda c, k=k: gen.cut(c.model_bytes, k),
                              pat=P_TRUNC, cmd='eval'))
        out.append(image_case('png/trunc-%s' % frac, lambda c, k=k: gen.cut(c.img_bytes, k)))
        for fx in ('jrgb420', 'jrgb422prog', 'jgrey'):
            out.append(image_case('jpeg/trunc-%s-%s' % (fx[1:], frac),
                                  lambda c, k=k, fx=fx: gen.cut(read(os.path.join(
                                      c.fixtures, 'image_%s.jpg' % fx)), k), name='x.jpg'))
        out.append(checkpoint_case('checkpoint/trunc-%s' % frac,
                                   lambda c, k=k: gen.cut(c.ckpt_bytes, k)))
    # Cuts near the end of a PNG: image.h says a PNG cut before its IEND CRC is rejected.
    for name, n in (('png/cut-last-byte', 1), ('png/cut-iend-crc', 4), ('png/cut-iend', 12),
                    ('png/cut-iend-and-idat-crc', 16)):
        out.append(image_case(name, lambda c, n=n: c.img_bytes[:-n]))
    # A truncated image inside a dataset, for each command that reads datasets.
    for k in (1, 4, 7):
        out.append(Case('png/trunc-%dof8-train' % k, train_with_bad_image(
            lambda c, k=k: gen.cut(c.img_bytes, k)), names=['bad.png'], pat=P_TRUNC,
            absent=['m.safetensors']))
        out.append(Case('png/trunc-%dof8-infer' % k, infer_on_image(
            lambda c, k=k: gen.cut(c.img_bytes, k)), names=['bad.png'], pat=P_TRUNC))
        out.append(Case('png/trunc-%dof8-eval' % k, eval_with_test_image(
            lambda c, k=k: gen.cut(c.img_bytes, k)), names=['bad.png'], pat=P_TRUNC,
            absent=['e.json']))
        out.append(Case('png/trunc-%dof8-mask' % k, eval_with_mask(
            lambda c, k=k: gen.cut(c.mask_bytes, k)), names=['000_mask.png'], pat=P_TRUNC,
            absent=['e.json']))
    # .npy: no dfrcl command reads one; one given as an image must be refused by its content.
    npy = lambda c: gen.npy_f32([32, 32], [0.5] * 1024)
    for k in (0, 2, 8):
        out.append(image_case('npy/as-image-%dof8' % k, lambda c, k=k: gen.cut(npy(c), k),
                              name='x.npy'))
        out.append(image_case('npy/as-png-%dof8' % k, lambda c, k=k: gen.cut(npy(c), k),
                              name='x.png'))
    return out


def checkpoint_case(id, data, pat=P_TRUNC, **kw):
    def build(d, ctx):
        put(d, 'ck', data(ctx))
        return {'argv': ['train', '--data', ctx.ds] + SMALL +
                ['--recipe', 'published', '--epochs', '800', '-o', 'm.safetensors',
                 '--checkpoint', 'ck', '--resume']}
    kw.setdefault('absent', ['m.safetensors'])
    return Case(id, build, names=['ck'], pat=pat, **kw)


def train_with_bad_image(data=None, name='bad.png', make=None):
    """train on a copy of the dataset plus train/good/NAME: bytes data(ctx), or make(path)."""
    def build(d, ctx):
        copytree(ctx.ds, os.path.join(d, 'ds'))
        _place(os.path.join(d, 'ds', 'train', 'good', name), ctx, data, make)
        return {'argv': ['train', '--data', 'ds'] + SMALL + ['--epochs', '1', '-o', 'm.safetensors']}
    return build


def infer_on_image(data, name='bad.png', json_out=False):
    def build(d, ctx):
        put(d, name, data(ctx))
        return {'argv': ['infer', '--model', ctx.model] + RB + [ctx.img, name] +
                (['--json'] if json_out else [])}
    return build


def _place(p, ctx, data, make):
    if make:
        make(p)
    else:
        put(os.path.dirname(p), os.path.basename(p), data(ctx))


def eval_with_test_image(data=None, name='bad.png', make=None):
    def build(d, ctx):
        copytree(ctx.data, os.path.join(d, 'data'))
        _place(os.path.join(d, 'data', 'test', 'good', name), ctx, data, make)
        return {'argv': ['eval', '--model', ctx.model] + RB + ['--data', 'data', '--json', 'e.json']}
    return build


def eval_with_mask(data=None, name='000_mask.png', make=None):
    """eval where ground_truth/scratch/000_mask.png is bytes data(ctx), or made by make(path)."""
    def build(d, ctx):
        copytree(ctx.data, os.path.join(d, 'data'))
        p = os.path.join(d, 'data', 'ground_truth', 'scratch', name)
        os.unlink(p)
        _place(p, ctx, data, make)
        return {'argv': ['eval', '--model', ctx.model] + RB + ['--data', 'data', '--json', 'e.json']}
    return build


def header_cases():
    out = []
    for which, mk in (('weights', weights_case), ('model', model_case)):
        for name, fn in HEADER_EDITS:
            out.append(mk('%s/%s' % (which, name), edit_header(fn, which)))
        for name, fn in RAW_HEADERS:
            out.append(mk('%s/%s' % (which, name), raw_header(fn, which)))
        for name, v in PREFIXES:
            out.append(mk('%s/%s' % (which, name), prefix(v, which)))
        out.append(mk('%s/garbage' % which, lambda c: bytes((i * 131 + 7) & 0xff for i in range(5000)),
                      pat=P_TRUNC))
        out.append(mk('%s/seven-bytes' % which, lambda c: b'\x10\0\0\0\0\0\0', pat=P_TRUNC))
    # Weights that reach the loader (--layers given: the data is read after the device opens).
    for name in ('shape-swapped', 'shape-flattened', 'dtype-f16', 'offsets-overlap',
                 'tensor-missing-last'):
        fn = dict(HEADER_EDITS)[name]
        out.append(weights_case('weights/%s-layers4' % name, edit_header(fn, 'weights'), layers=True))
    out.append(weights_case('weights/only-3-layers-asked-4', lambda c: gen.st_tensors(
        [(k, h['dtype'], h['shape'], c.weights_bytes[8 + gen.st_parse(c.weights_bytes)[1]:][
            h['data_offsets'][0]:h['data_offsets'][1]])
         for k, h in gen.st_parse(c.weights_bytes)[0].items()
         if k not in ('__metadata__', 'features.7.weight', 'features.7.bias')]), layers=True,
        pat=r'relu2_2|has no'))
    # Model metadata edits.
    metas = [
        ('meta-format-other', {'format': 'other'}, P_HEADER),
        ('meta-format-missing', {'format': None}, P_HEADER),
        ('meta-version-2', {'format_version': '2'}, P_HEADER),
        ('meta-version-x', {'format_version': 'x'}, P_HEADER),
        ('meta-layers-99', {'layers': '99'}, P_HEADER),
        ('meta-layers-x', {'layers': 'x'}, P_HEADER),
        ('meta-layers-3', {'layers': '3'}, P_HEADER),
        ('meta-layers-missing', {'layers': None}, P_HEADER),
        ('meta-size-0', {'size': '0'}, P_HEADER),
        ('meta-size-x', {'size': 'x'}, P_HEADER),
        ('meta-size-33', {'size': '33'}, P_HEADER),
        ('meta-size-64', {'size': '64'}, r'size'),
        ('meta-size-huge', {'size': '99999999'}, P_HEADER),
        ('meta-channels-999', {'channels': '999'}, P_HEADER),
        ('meta-latent-5', {'latent': '5'}, P_HEADER),
        ('meta-latent-0', {'latent': '0'}, P_HEADER),
        ('meta-threshold-nan', {'threshold': 'nan'}, P_NAN + '|threshold'),
        ('meta-threshold-inf', {'threshold': 'inf'}, P_NAN + '|threshold'),
        ('meta-threshold-x', {'threshold': 'x'}, P_HEADER),
        ('meta-threshold-missing', {'threshold': None}, P_HEADER),
        ('meta-backbone-missing', {'backbone_sha256': None}, P_HEADER),
        ('meta-backbone-other', {'backbone_sha256': '0' * 64}, r'backbone'),
    ]
    for name, ch, pat in metas:
        out.append(model_case('model/%s' % name, meta_model(**ch), pat=pat))
    out.append(model_case('model/features-file', lambda c: read(c.features), pat=r'not a dfrcl model'))
    out.append(model_case('model/weights-file', lambda c: c.weights_bytes, pat=r'not a dfrcl model'))
    # Checkpoint header edits.
    ck = [('header-not-json', raw_header(lambda t: b'x' * len(t))),
          ('hdrlen-huge', prefix(1 << 63))]
    for name, fn in ck:
        out.append(checkpoint_case('checkpoint/%s' % name,
                                   lambda c, fn=fn: fn(_with(c, 'model_bytes', c.ckpt_bytes)),
                                   pat=P_HEADER + '|' + P_TRUNC))
    out.append(checkpoint_case('checkpoint/model-file', lambda c: c.model_bytes,
                               pat=r'not a dfrcl training checkpoint|checkpoint'))
    out.append(checkpoint_case('checkpoint/meta-version-9', lambda c: edit_header(
        lambda h, n: h['__metadata__'].update(format_version='9'))(
            _with(c, 'model_bytes', c.ckpt_bytes)),
        pat=r'version|checkpoint|not a'))
    return out


class _with:
    """ctx with one attribute replaced."""
    def __init__(self, ctx, name, value):
        self.__dict__.update(ctx.__dict__)
        setattr(self, name, value)


def nonfinite_cases():
    out = []
    for name, v in (('nan', float('nan')), ('inf', float('inf')), ('neg-inf', float('-inf'))):
        out.append(weights_case('nonfinite/weights-%s' % name, nan_weights(v), pat=P_NAN))
        out.append(weights_case('nonfinite/weights-%s-layers4' % name, nan_weights(v), pat=P_NAN,
                                layers=True))
        out.append(weights_case('nonfinite/weights-bias-%s' % name,
                                nan_weights(v, 'features.7.bias', 3), pat=P_NAN))
        out.append(model_case('nonfinite/model-%s' % name, nan_model(v), pat=P_NAN))
        out.append(model_case('nonfinite/model-last-%s' % name, nan_model(v, -1, 0), pat=P_NAN))
    out.append(weights_case('nonfinite/weights-nan-train', nan_weights(float('nan')), pat=P_NAN,
                            cmd='train', forbid=r'dsyevd|LAPACK'))
    out.append(weights_case('nonfinite/weights-nan-train-latent', nan_weights(float('nan')),
                            pat=P_NAN, cmd='train', extra=['--latent', '8']))
    out.append(weights_case('nonfinite/weights-f16-nan', lambda c: _f16_nan(c), pat=P_NAN))
    for lr in ('9.9',):
        out.append(Case('nonfinite/lr-%s' % lr, lambda d, ctx, lr=lr: {
            'argv': ['train', '--data', ctx.ds] + SMALL + ['--epochs', '3', '--lr', lr,
                                                          '-o', 'm.safetensors']},
            names=[], pat=r'learning rate|--lr|\bnan\b|non-finite|not finite',
            absent=['m.safetensors']))
    return out


def _f16_nan(c):
    h, n, body = gen.st_parse(c.weights_bytes)
    t = h['features.0.weight']
    a, b = t['data_offsets']
    import array
    vals = array.array('f', body[a:b])
    half = b''.join(struct.pack('<e', v) for v in vals)
    half = b'\x00\x7e' + half[2:]  # 0x7e00: a half-precision NaN
    t['dtype'] = 'F16'
    new_body = body[:a] + half + body[b:]
    shift = len(half) - (b - a)
    t['data_offsets'] = [a, a + len(half)]
    for k, v in h.items():
        if k != '__metadata__' and v['data_offsets'][0] >= b:
            v['data_offsets'] = [v['data_offsets'][0] + shift, v['data_offsets'][1] + shift]
    return gen.st_build(h, new_body)


def image_cases():
    out = []
    P = gen.png
    # Broken PNGs.
    bad = [
        ('png/empty', lambda c: b''),
        ('png/signature-only', lambda c: gen.SIG),
        ('png/bad-ihdr-crc', lambda c: c.img_bytes[:29] + b'\0\0\0\0' + c.img_bytes[33:]),
        ('png/bad-depth-3', lambda c: P(4, 4, 3, 0, idat=b'')),
        ('png/bad-colour-5', lambda c: P(4, 4, 8, 5, idat=b'') if False else
         gen.SIG + gen.png_chunk(b'IHDR', struct.pack('>IIBBBBB', 4, 4, 8, 5, 0, 0, 0)) +
         gen.png_chunk(b'IEND', b'')),
        ('png/palette-missing', lambda c: P(4, 4, 8, 3, rows=[b'\0' * 4] * 4)),
        ('png/no-idat', lambda c: gen.SIG + gen.png_ihdr(4, 4) + gen.png_chunk(b'IEND', b'')),
        ('png/idat-not-zlib', lambda c: P(4, 4, idat=b'not zlib data at all')),
        ('png/idat-short', lambda c: P(8, 8, idat=gen.zlib.compress(b'\0' * 10))),
        ('png/bad-filter', lambda c: P(4, 4, idat=gen.zlib.compress((b'\x09' + b'\0' * 12) * 4))),
        ('png/chunk-length-huge', lambda c: gen.SIG + gen.png_ihdr(4, 4) +
         struct.pack('>I', 0x7fffffff) + b'IDAT' + b'\0' * 64),
        ('png/zero-width', lambda c: P(0, 4, idat=gen.zlib.compress(b''))),
        ('png/zero-height', lambda c: P(4, 0, idat=gen.zlib.compress(b''))),
        ('png/interlace-7', lambda c: gen.SIG + gen.png_chunk(b'IHDR', struct.pack(
            '>IIBBBBB', 4, 4, 8, 2, 0, 0, 7)) + gen.png_chunk(b'IEND', b'')),
        ('png/text-as-png', lambda c: b'this is not an image\n' * 10),
        ('png/jpeg-header-png-body', lambda c: b'\xff\xd8\xff' + c.img_bytes[3:]),
    ]
    for id, fn in bad:
        out.append(image_case(id, fn))
    # Bombs: huge declared sizes in a tiny file.
    bombs = [
        ('png/bomb-16000-rows-missing', lambda c: gen.png_zero_bomb(16000, 16000, 8, 2, rows=16), 0),
        ('png/bomb-16000-rgba16-rows-missing',
         lambda c: gen.png_zero_bomb(16000, 16000, 16, 6, rows=16), 0),
        ('png/bomb-20000-over-pixel-limit', lambda c: gen.png_zero_bomb(20000, 20000, 8, 0, rows=1), 0),
        ('png/bomb-wide-300M', lambda c: gen.png_zero_bomb(300000000, 1, 8, 0, rows=0), 0),
        ('png/bomb-max-dims', lambda c: gen.SIG + gen.png_ihdr(0x7fffffff, 0x7fffffff) +
         gen.png_chunk(b'IDAT', gen.zlib.compress(b'\0' * 100)) + gen.png_chunk(b'IEND', b''), 0),
        ('png/bomb-dims-over-2e31', lambda c: gen.SIG + gen.png_ihdr(0x80000000, 1) +
         gen.png_chunk(b'IEND', b''), 0),
    ]
    for id, fn, _ in bombs:
        out.append(image_case(id, fn, pat=P_BOMB, max_rss_mib=1536))
    # A complete 16-bit RGBA image of 10000 x 10000 zero pixels in 0.8 MB: it must not take
    # gigabytes to decode (accepted within a memory bound, or refused for it).
    out.append(image_case('png/bomb-10000-rgba16', lambda c: gen.png_zero_bomb(10000, 10000),
                          rc=(0, 1), pat=P_BOMB, max_rss_mib=768, absent=[], timeout=180))
    # JPEG: a frame header declaring a huge image, and scan data missing or short.
    j = lambda c: read(os.path.join(c.fixtures, 'image_jrgb444.jpg'))
    jg = lambda c: read(os.path.join(c.fixtures, 'image_jgrey.jpg'))
    jb = [
        ('jpeg/bomb-16000-no-scan', lambda c: gen.jpeg_split(gen.jpeg_resize_header(j(c), 16000, 16000))[0] + b'\xff\xd9'),
        ('jpeg/bomb-16000-short-scan', lambda c: (lambda h, s: h + s[:64] + b'\xff\xd9')(
            *gen.jpeg_split(gen.jpeg_resize_header(j(c), 16000, 16000)))),
        ('jpeg/bomb-16000-grey-no-scan', lambda c: gen.jpeg_split(gen.jpeg_resize_header(jg(c), 16000, 16000))[0] + b'\xff\xd9'),
        ('jpeg/bomb-65500', lambda c: gen.jpeg_split(gen.jpeg_resize_header(j(c), 65500, 65500))[0] + b'\xff\xd9'),
        ('jpeg/bomb-4000-no-eoi', lambda c: gen.jpeg_split(gen.jpeg_resize_header(j(c), 4000, 4000))[0]),
        ('jpeg/zero-size', lambda c: gen.jpeg_resize_header(j(c), 0, 0)),
        ('jpeg/zero-height', lambda c: gen.jpeg_resize_header(j(c), 64, 0)),
        ('jpeg/scan-missing', lambda c: gen.jpeg_split(j(c))[0] + b'\xff\xd9'),
        ('jpeg/scan-half', lambda c: (lambda h, s: h + s[:len(s) // 2] + b'\xff\xd9')(*gen.jpeg_split(j(c)))),
        ('jpeg/soi-only', lambda c: b'\xff\xd8'),
        ('jpeg/soi-eoi', lambda c: b'\xff\xd8\xff\xd9'),
        ('jpeg/garbage-after-soi', lambda c: b'\xff\xd8' + bytes(range(256)) * 4),
        ('jpeg/segment-length-huge', lambda c: b'\xff\xd8\xff\xe0\xff\xff' + b'\0' * 32),
    ]
    for id, fn in jb:
        out.append(image_case(id, fn, name='x.jpg', pat=P_BOMB + '|' + P_TRUNC, max_rss_mib=1536))
    # A bomb through infer and train as well.
    bomb = lambda c: gen.jpeg_split(gen.jpeg_resize_header(j(c), 16000, 16000))[0] + b'\xff\xd9'
    out.append(Case('jpeg/bomb-16000-infer', infer_on_image(bomb, 'bad.jpg'), names=['bad.jpg'],
                    pat=P_BOMB, max_rss_mib=1536))
    out.append(Case('jpeg/bomb-16000-train', train_with_bad_image(bomb, 'bad.jpg'),
                    names=['bad.jpg'], pat=P_BOMB, max_rss_mib=1536, absent=['m.safetensors']))
    return out


def mkfifo(p):
    os.mkfifo(p)


def mkdir(p):
    os.makedirs(p)


def dangling(p):
    os.symlink('no-such-target.png', p)


def looping(p):
    os.symlink(os.path.basename(p), p)


def unreadable(p, data=b'x'):
    if as_root():
        raise Skip('running as root: file permissions do not apply')
    with open(p, 'wb') as f:
        f.write(data)
    os.chmod(p, 0)


KINDS = [('folder', mkdir, P_NOTFILE), ('fifo', mkfifo, P_NOTFILE),
         ('dangling-symlink', dangling, P_LINK), ('looping-symlink', looping, P_LINK),
         ('devnull', lambda p: os.symlink('/dev/null', p), P_NOTFILE + '|empty'),
         ('unreadable', unreadable, r'permission|cannot open|denied')]


def fs_cases():
    """Things that are not regular files where a file is expected, and odd dataset trees."""
    out = []
    for kind, make, pat in KINDS:
        t = FIFO_TIMEOUT if kind == 'fifo' else 120

        def img_build(d, ctx, make=make):
            make(os.path.join(d, 'x.png'))
            return {'argv': ['features'] + SMALL + ['x.png', '-o', 'out.safetensors']}
        out.append(Case('fs/image-%s' % kind, img_build, names=['x.png'], pat=pat, timeout=t,
                        absent=['out.safetensors']))

        def w_build(d, ctx, make=make):
            make(os.path.join(d, 'w.safetensors'))
            return {'argv': ['features', '--weights', 'w.safetensors', '--size', '32', ctx.img,
                             '-o', 'out.safetensors']}
        out.append(Case('fs/weights-%s' % kind, w_build, names=['w.safetensors'], pat=pat,
                        timeout=t, absent=['out.safetensors']))

        def m_build(d, ctx, make=make):
            make(os.path.join(d, 'm.safetensors'))
            return {'argv': ['infer', '--model', 'm.safetensors'] + RB + [ctx.img]}
        out.append(Case('fs/model-%s' % kind, m_build, names=['m.safetensors'], pat=pat, timeout=t))

        def ck_build(d, ctx, make=make):
            make(os.path.join(d, 'ck'))
            return {'argv': ['train', '--data', ctx.ds] + SMALL +
                    ['--epochs', '1', '-o', 'm.safetensors', '--checkpoint', 'ck', '--resume']}
        # A missing checkpoint with --resume: a fresh start is fine, or an error naming it.
        out.append(Case('fs/checkpoint-%s' % kind, ck_build, names=['ck'], pat=pat, timeout=t,
                        absent=['m.safetensors'],
                        rc=(0, 1) if 'symlink' in kind else (1,)))

        # Inside datasets: the entry is reported by name (an error, or a warning and skipped).
        out.append(Case('tree/train-entry-%s' % kind, train_with_bad_image(make=make), names=['bad.png'],
                        names_ok=['bad.png'], rc=(0, 1), pat=pat, timeout=t,
                        absent=['m.safetensors']))
        out.append(Case('tree/test-entry-%s' % kind, eval_with_test_image(make=make),
                        names=['bad.png'], names_ok=['bad.png'], rc=(0, 1), pat=pat, timeout=t,
                        absent=['e.json']))
        out.append(Case('tree/mask-%s' % kind, eval_with_mask(make=make),
                        names=['000_mask.png'], names_ok=['000_mask.png'], rc=(0, 1), pat=pat,
                        timeout=t, absent=['e.json']))

        def infer_build(d, ctx, make=make):
            make(os.path.join(d, 'bad.png'))
            return {'argv': ['infer', '--model', ctx.model] + RB + ['bad.png', ctx.img]}
        # infer goes on past an unreadable image, scores the others and reports it by name.
        out.append(Case('fs/infer-image-%s' % kind, infer_build, names=['bad.png'], pat=pat,
                        timeout=t, check=scored_other_image))
    # Odd trees.
    def tree(setup_fn, argv_fn):
        def build(d, ctx):
            setup_fn(d, ctx)
            return {'argv': argv_fn(ctx)}
        return build
    train = lambda ctx: ['train', '--data', 'ds'] + SMALL + ['--epochs', '1', '-o', 'm.safetensors']
    evl = lambda ctx: ['eval', '--model', ctx.model] + RB + ['--data', 'data', '--json', 'e.json']
    trees = [
        ('tree/train-empty-folder', lambda d, c: os.makedirs(os.path.join(d, 'ds')), train, 'ds',
         r'no train/good'),
        ('tree/train-no-folder', lambda d, c: None, train, 'ds', r'no such'),
        ('tree/train-data-is-file', lambda d, c: put(d, 'ds', b'x'), train, 'ds',
         r'not a folder|no train/good|not a directory|no such'),
        ('tree/train-good-is-file', lambda d, c: put(d, 'ds/train/good', b'x'), train, 'ds',
         r'no train/good|not a folder|not a directory'),
        ('tree/train-good-empty', lambda d, c: os.makedirs(os.path.join(d, 'ds/train/good')),
         train, 'good', r'no images'),
        ('tree/train-good-only-text', lambda d, c: put(d, 'ds/train/good/readme.txt', b'x'),
         train, 'good', r'no images'),
        ('tree/train-good-hidden-only', lambda d, c: put(d, 'ds/train/good/.x.png', c.img_bytes),
         train, 'good', r'no images'),
        ('tree/train-good-symlink-loop-dir', lambda d, c: (os.makedirs(os.path.join(d, 'ds/train')),
                                                           os.symlink('good', os.path.join(d, 'ds/train/good'))),
         train, 'good', r'no train/good|too many levels|loop|cannot open|link'),
        ('tree/eval-no-test', lambda d, c: os.makedirs(os.path.join(d, 'data/train/good')), evl,
         'data', r'no test|no such|cannot open'),
        ('tree/eval-test-empty', lambda d, c: os.makedirs(os.path.join(d, 'data/test')), evl,
         'test', r'no test images'),
        ('tree/eval-test-is-file', lambda d, c: put(d, 'data/test', b'x'), evl, 'test',
         r'not a folder|not a directory|cannot open|no test|no such'),
        ('tree/eval-test-good-is-file', lambda d, c: put(d, 'data/test/good', b'x'), evl, 'test',
         r'no test images|not a folder|not a directory'),
    ]
    for id, s, argv, name, pat in trees:
        out.append(Case(id, tree(s, argv), names=[name], pat=pat,
                        absent=['m.safetensors', 'e.json']))
    # eval --masks pointing nowhere must not quietly give image-level metrics only.
    out.append(Case('tree/eval-masks-missing', lambda d, ctx: {
        'argv': ['eval', '--model', ctx.model] + RB + ['--data', ctx.data, '--masks', 'nowhere',
                                                       '--json', 'e.json']},
        names=['nowhere'], pat=r'no such|cannot open|not found|missing', absent=['e.json']))
    out.append(Case('tree/eval-masks-is-file', lambda d, ctx: (put(d, 'masks', b'x'), {
        'argv': ['eval', '--model', ctx.model] + RB + ['--data', ctx.data, '--masks', 'masks',
                                                       '--json', 'e.json']})[1],
        names=['masks'], pat=r'not a folder|not a directory|cannot open', absent=['e.json']))
    # Non-UTF-8 names: fine inputs, and the JSON output stays valid.
    nonutf = b'n\xff\xfeame.png'

    def nonutf_train(d, ctx):
        copytree(ctx.ds, os.path.join(d, 'ds'))
        put(d, b'ds/train/good/' + nonutf, ctx.img_bytes)
        return {'argv': ['train', '--data', 'ds'] + SMALL + ['--epochs', '1', '-o', 'm.safetensors']}
    out.append(Case('tree/train-non-utf8-name', nonutf_train, rc=0, present=['m.safetensors']))

    def nonutf_infer_json(d, ctx):
        put(d, nonutf, ctx.img_bytes)
        return {'argv': ['infer', '--model', ctx.model] + RB + ['--json', '-q', nonutf]}
    out.append(Case('tree/infer-json-non-utf8-name', nonutf_infer_json, rc=0, check=valid_json_out))

    def nonutf_eval_json(d, ctx):
        copytree(ctx.data, os.path.join(d, 'data'))
        os.rename(os.path.join(d, 'data', 'test', 'good', '000.png'),
                  os.path.join(os.fsencode(d), b'data/test/good/' + nonutf))
        return {'argv': ['eval', '--model', ctx.model] + RB + ['--data', 'data', '--json', 'e.json',
                                                               '--out', 'eo']}
    out.append(Case('tree/eval-json-non-utf8-name', nonutf_eval_json, rc=0, present=['e.json'],
                    check=lambda d, rc, o: json_file_ok(os.path.join(d, 'e.json'))))
    # run over a root whose categories are broken.
    def run_root(setup_fn):
        def build(d, ctx):
            os.makedirs(os.path.join(d, 'root'))
            setup_fn(os.path.join(d, 'root'), ctx)
            return {'argv': ['run', '--data', 'root', '--out', 'camp'] + SMALL + ['--epochs', '1']}
        return build
    out.append(Case('tree/run-root-empty', run_root(lambda r, c: None), names=['root'],
                    pat=r'no categories'))
    out.append(Case('tree/run-category-dangling', run_root(
        lambda r, c: os.symlink('nowhere', os.path.join(r, 'cat'))), names=['root'],
        pat=r'no categories|cat'))
    out.append(Case('tree/run-category-loop', run_root(
        lambda r, c: os.symlink('cat', os.path.join(r, 'cat'))), names=['root'],
        pat=r'no categories|cat'))
    out.append(Case('tree/run-root-is-file', lambda d, ctx: (put(d, 'root', b'x'), {
        'argv': ['run', '--data', 'root', '--out', 'camp'] + SMALL})[1], names=['root'],
        pat=r'cannot open|not a folder|not a directory|no categories'))
    out.append(Case('tree/run-category-bad-image', run_root(
        lambda r, c: (copytree(c.ds, os.path.join(r, 'cat')),
                      put(r, 'cat/train/good/bad.png', gen.cut(c.img_bytes, 3)))),
        names=['cat'], pat=r'FAILED|bad.png', name_on_error_line=False))
    return out


def scored_other_image(d, rc, output):
    if b'000.png' not in output:
        return 'the readable image was not scored'
    return None


def valid_json_out(d, rc, output):
    try:
        json.loads(output.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:
        return 'the output is not valid JSON: %s' % e
    return None


def json_file_ok(p):
    try:
        with open(p, 'rb') as f:
            json.loads(f.read().decode('utf-8'))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return '%s is not valid JSON: %s' % (os.path.basename(p), e)
    return None


def option_cases():
    """Bad values for every option of every command, unknown options, missing values."""
    base = {
        'features': lambda c: ['features'] + SMALL + [c.img, '-o', 'out.safetensors'],
        'train': lambda c: ['train', '--data', c.ds] + SMALL + ['--epochs', '1', '-o', 'out.safetensors'],
        'infer': lambda c: ['infer', '--model', c.model] + RB + [c.img, '--out', 'out.safetensors'],
        'eval': lambda c: ['eval', '--model', c.model] + RB + ['--data', c.data, '--out', 'out.safetensors'],
        'run': lambda c: ['run', '--data', c.ds, '--out', 'out.safetensors'] + SMALL + ['--epochs', '1'],
        'bench': lambda c: ['bench', '--size', '32', '--layers', '4', '--reps', '1', '--warmup', '0'],
        'demo': lambda c: ['demo', '--out', 'out.safetensors', '--epochs', '1', '--train', '2',
                           '--size', '32', '--layers', '4'],
        'devices': lambda c: ['devices'],
    }
    backbone = {'--random-backbone': ['x', '-1', '1.5', '', '1000001'],
                '--layers': ['0', '17', 'relu9_9', 'x', ''],
                '--size': ['abc', '3', '8193', '-32', '', '32x', '99999999999999999999']}
    training = {'--epochs': ['0', 'x', '-1', '1000001'], '--batch': ['0', '4097', 'x'],
                '--lr': ['0', '-1', '10', 'nan', 'inf', 'x', ''], '--fpr': ['0', '1', 'nan', 'x'],
                '--latent': ['0', 'x', '-5'], '--seed': ['-1', 'x', '3000000000'],
                '--recipe': ['slow', ''], '--positions': ['0', 'x'], '--patience': ['0', 'x'],
                '--memory': ['12X', '0', '-1', '', '1e20G'], '--store': ['cloud', ''],
                '--precision': ['fp8', '']}
    per_cmd = {
        'features': dict(backbone),
        'train': dict(backbone, **training, **{'--eval-every': ['0', 'x']}),
        'infer': {'--random-backbone': ['x', '-1'], '--layers': ['0', 'x']},
        'eval': {'--random-backbone': ['x', '-1']},
        'run': dict(backbone, **training),
        'bench': dict(backbone, **{'--reps': ['0', 'x', '1001'], '--warmup': ['-1', 'x'],
                                   '--threads': ['0', 'x'], '--latent': ['-1', 'x']}),
        'demo': dict(backbone, **{'--epochs': ['0', 'x', '100001'], '--train': ['1', 'x', '1001']}),
    }
    # Options that take a value, per command (the missing-value cases).
    takes = {
        'features': ['-o', '--output', '--device', '--weights', '--layers', '--size', '--random-backbone'],
        'train': ['--data', '--train', '-o', '--checkpoint', '--eval-every', '--curve', '--epochs',
                  '--batch', '--lr', '--latent', '--fpr', '--seed', '--recipe', '--positions',
                  '--patience', '--memory', '--store', '--precision', '--feature-dir', '--size'],
        'infer': ['--model', '--out', '--weights', '--device'],
        'eval': ['--model', '--data', '--test', '--masks', '--out', '--json'],
        'run': ['--data', '--out', '--categories', '--epochs', '--size'],
        'bench': ['--reps', '--warmup', '--torch', '--threads', '--latent'],
        'demo': ['--out', '--epochs', '--train'],
    }
    out = []

    def opt_case(id, argv_fn, names, rc=2, pat=P_OPT, **kw):
        kw.setdefault('absent', ['out.safetensors'])
        return Case(id, lambda d, ctx: {'argv': argv_fn(ctx)}, rc=rc, names=names, pat=pat,
                    name_on_error_line=False, **kw)

    for cmd, opts in per_cmd.items():
        for opt, values in opts.items():
            for v in values:
                vid = v if v else 'empty'
                vid = vid.replace('/', '_')
                out.append(opt_case('opt/%s%s=%s' % (cmd, opt, vid),
                                    lambda c, cmd=cmd, opt=opt, v=v: base[cmd](c) + [opt, v], [opt]))
    for cmd, opts in takes.items():
        for opt in opts:
            out.append(opt_case('opt/%s%s-missing-value' % (cmd, opt),
                                lambda c, cmd=cmd, opt=opt: base[cmd](c) + [opt], [opt.lstrip('-')]))
    for cmd in base:
        out.append(opt_case('opt/%s-unknown-option' % cmd,
                            lambda c, cmd=cmd: base[cmd](c) + ['--frobnicate'], ['frobnicate']))
        out.append(opt_case('opt/%s-unknown-short-option' % cmd,
                            lambda c, cmd=cmd: base[cmd](c) + ['-Z'], ['Z']))
    # Missing or extra arguments.
    args = [
        ('opt/features-no-output', lambda c: ['features'] + SMALL + [c.img], 'need'),
        ('opt/features-two-images', lambda c: ['features'] + SMALL + [c.img, c.img, '-o', 'out.safetensors'], 'need'),
        ('opt/train-no-data', lambda c: ['train'] + SMALL + ['-o', 'out.safetensors'], 'need'),
        ('opt/train-data-and-train', lambda c: ['train', '--data', c.ds, '--train', c.ds] + SMALL +
         ['-o', 'out.safetensors'], 'need'),
        ('opt/train-extra-argument', lambda c: ['train', '--data', c.ds] + SMALL + ['-o', 'out.safetensors', 'extra'], 'need'),
        ('opt/infer-no-image', lambda c: ['infer', '--model', c.model] + RB, 'need'),
        ('opt/infer-no-model', lambda c: ['infer'] + RB + [c.img], 'need'),
        ('opt/eval-no-data', lambda c: ['eval', '--model', c.model] + RB, 'need'),
        ('opt/eval-extra-argument', lambda c: ['eval', '--model', c.model, '--data', c.data, 'extra'] + RB, 'need'),
        ('opt/run-no-out', lambda c: ['run', '--data', c.ds] + SMALL, 'need'),
        ('opt/bench-extra-argument', lambda c: ['bench', 'extra'], 'unexpected'),
        ('opt/demo-extra-argument', lambda c: ['demo', '--out', 'out.safetensors', 'extra'], 'unexpected'),
        ('opt/no-command', lambda c: [], 'usage'),
        ('opt/unknown-command', lambda c: ['frobnicate'], 'unknown command'),
        ('opt/empty-command', lambda c: [''], 'unknown command'),
    ]
    for id, fn, name in args:
        out.append(opt_case(id, fn, [name]))
    # Values accepted by the parser but refused by the command: exit 1, named.
    more = [
        ('opt/features-device-99', lambda c: ['features', '--device', '99'] + SMALL + [c.img, '-o', 'out.safetensors'], 1, 'device'),
        ('opt/features-device-no-such-name', lambda c: ['features', '--device', 'no-such-device-name'] + SMALL + [c.img, '-o', 'out.safetensors'], 1, 'no-such-device-name'),
        ('opt/features-size-30', lambda c: ['features'] + RB + ['--size', '30', '--layers', '4', c.img, '-o', 'out.safetensors'], 1, '30'),
        ('opt/features-weights-missing', lambda c: ['features', '--weights', 'nowhere.safetensors', '--size', '32', c.img, '-o', 'out.safetensors'], 1, 'nowhere.safetensors'),
        ('opt/infer-layers-other', lambda c: ['infer', '--model', c.model, '--layers', '8'] + RB + [c.img], 2, '--layers'),
        ('opt/infer-other-backbone', lambda c: ['infer', '--model', c.model, '--random-backbone', '1', c.img], 1, 'backbone'),
        ('opt/train-latent-too-big', lambda c: ['train', '--data', c.ds] + SMALL + ['--latent', '9999', '-o', 'out.safetensors'], 1, '9999'),
        ('opt/train-memory-1M', lambda c: ['train', '--data', c.ds] + SMALL + ['--memory', '1M', '-o', 'out.safetensors'], 1, 'memory'),
        ('opt/train-feature-dir-missing', lambda c: ['train', '--data', c.ds] + SMALL + ['--store', 'disk', '--feature-dir', 'nowhere', '-o', 'out.safetensors'], 1, 'nowhere'),
        ('opt/run-categories-unknown', lambda c: ['run', '--data', c.ds, '--out', 'camp', '--categories', 'nope'] + SMALL, 1, 'nope'),
        ('opt/env-weights-missing', lambda c: ['features', '--size', '32', c.img, '-o', 'out.safetensors'], 1, 'nowhere.safetensors'),
        ('opt/env-device-99', lambda c: ['features'] + SMALL + [c.img, '-o', 'out.safetensors'], 1, 'device'),
    ]
    for id, fn, rc, name in more:
        env = {}
        if id == 'opt/env-weights-missing':
            env = {'DFRCL_WEIGHTS': 'nowhere.safetensors'}
        if id == 'opt/env-device-99':
            env = {'DFRCL_DEVICE': '99'}
        out.append(Case(id, lambda d, ctx, fn=fn, env=env: {'argv': fn(ctx), 'env': env}, rc=rc,
                        names=[name], pat=P_OPT + '|' + P_DEST + '|larger|below|fit|range|another',
                        absent=['out.safetensors', 'camp'] if id.startswith('opt/run') else ['out.safetensors'],
                        name_on_error_line=rc == 1))
    return out


def dest_cases():
    """Bad destinations: a folder, "", a missing folder, a file where a folder is needed."""
    out = []
    feat = lambda o: lambda c: ['features'] + SMALL + [c.img, '-o', o]
    train = lambda o: lambda c: ['train', '--data', c.ds] + SMALL + ['--epochs', '1', '-o', o]
    evj = lambda o: lambda c: ['eval', '--model', c.model] + RB + ['--data', c.data, '--json', o]
    evo = lambda o: lambda c: ['eval', '--model', c.model] + RB + ['--data', c.data, '--out', o]
    inf = lambda o: lambda c: ['infer', '--model', c.model] + RB + [c.img, '--out', o]
    run = lambda o: lambda c: ['run', '--data', c.ds, '--out', o] + SMALL + ['--epochs', '1']
    demo = lambda o: lambda c: ['demo', '--out', o, '--epochs', '1', '--train', '2', '--size', '32',
                                '--layers', '4']
    ck = lambda o: lambda c: ['train', '--data', c.data] + SMALL + ['--epochs', '1', '-o', 'm.safetensors',
                                                               '--eval-every', '1', '--curve', o]
    # (id, files to make first, command, name in the message, final paths that must not appear,
    #  a pattern that must not be in the output: work done before the destination was checked)
    TRAINED = r'training on|trained \d+ epochs'
    EVALUATED = r'pixel AUROC|\beval\b.*img/s'
    cases = [
        ('dest/features-o-folder', ['dir/'], feat('dir'), 'dir', [], None),
        ('dest/features-o-empty', [], feat(''), 'output', [], None),
        ('dest/features-o-missing-folder', [], feat('nowhere/out.safetensors'), 'nowhere', ['nowhere'], None),
        ('dest/features-o-under-a-file', ['file'], feat('file/out.safetensors'), 'file', [], None),
        ('dest/train-o-folder', ['dir/'], train('dir'), 'dir', [], TRAINED),
        ('dest/train-o-empty', [], train(''), 'output', [], TRAINED),
        ('dest/train-o-missing-folder', [], train('nowhere/m.safetensors'), 'nowhere', ['nowhere'], TRAINED),
        ('dest/train-o-under-a-file', ['file'], train('file/m.safetensors'), 'file', [], TRAINED),
        ('dest/train-curve-missing-folder', [], ck('nowhere/c.json'), 'nowhere', ['m.safetensors'], None),
        ('dest/eval-json-missing-folder', [], evj('nowhere/e.json'), 'nowhere', ['nowhere'], EVALUATED),
        ('dest/eval-json-folder', ['dir/'], evj('dir'), 'dir', [], EVALUATED),
        ('dest/eval-json-empty', [], evj(''), 'json', [], EVALUATED),
        ('dest/eval-out-is-file', ['file'], evo('file'), 'file', [], EVALUATED),
        ('dest/eval-out-empty', [], evo(''), 'out', [], EVALUATED),
        ('dest/eval-out-under-a-file', ['file'], evo('file/eo'), 'file', [], EVALUATED),
        ('dest/infer-out-is-file', ['file'], inf('file'), 'file', [], None),
        ('dest/infer-out-empty', [], inf(''), 'out', [], None),
        ('dest/infer-out-under-a-file', ['file'], inf('file/io'), 'file', [], None),
        ('dest/run-out-is-file', ['file'], run('file'), 'file', [], TRAINED),
        ('dest/run-out-empty', [], run(''), 'out', [], TRAINED),
        ('dest/demo-out-is-file', ['file'], demo('file'), 'file', [], None),
        ('dest/demo-out-empty', [], demo(''), 'out', [], None),
        ('dest/demo-out-under-a-file', ['file'], demo('file/dm'), 'file', [], None),
    ]
    for id, make, fn, name, absent, forbid in cases:
        def build(d, ctx, make=make, fn=fn):
            for m in make:
                if m.endswith('/'):
                    os.makedirs(os.path.join(d, m))
                else:
                    put(d, m, b'a file\n')
            return {'argv': fn(ctx)}
        # "" cannot be named: the option, or the quoted empty name, will do.
        names = [(name, "''", '""')] if name in ('output', 'out', 'json') else [name]
        out.append(Case(id, build, rc=(1, 2), names=names, pat=P_DEST, absent=absent,
                        forbid=forbid, name_on_error_line=False))
    # A legal name near NAME_MAX must work (the temp name must not overflow it).
    long = 'f' * 240 + '.safetensors'
    out.append(Case('dest/features-o-name-252-chars', lambda d, ctx: {'argv': feat(long)(ctx)},
                    rc=0, present=[long]))
    out.append(Case('dest/train-o-name-252-chars', lambda d, ctx: {'argv': train(long)(ctx)},
                    rc=0, present=[long]))
    # infer --out: names stay inside the folder and never collide.
    def escape(d, ctx):
        os.makedirs(os.path.join(d, 'work'))
        put(d, 'img.png', ctx.img_bytes)
        return {'argv': ['infer', '--model', ctx.model] + RB + ['../img.png', '--out', 'out']}
    def escape_check(d, rc, output):
        outside = [n for n in os.listdir(os.path.join(d, 'work')) if n not in ('out', '.case-output')]
        if outside:
            return 'wrote outside --out: %s' % ', '.join(outside)
        return None
    # (the command runs in work/: ../img.png is the image, work/out/ the folder)
    out.append(Case('dest/infer-out-dotdot-image', lambda d, ctx: dict(escape(d, ctx), cwd='work'),
                    rc=(0, 1), names=['img.png'], check=escape_check))

    def collide(d, ctx):
        put(d, 'a/x/1.png', ctx.img_bytes)
        put(d, 'b/x/1.png', ctx.img_bytes)
        return {'argv': ['infer', '--model', ctx.model] + RB + ['a/x/1.png', 'b/x/1.png', '--out', 'out']}

    def collide_check(d, rc, output):
        if rc != 0:
            return None  # refused: fine (the name is checked)
        n = 0
        for root, _, files in os.walk(os.path.join(d, 'out')):
            n += sum(f.endswith('.npy') for f in files)
        return None if n == 2 else 'two images, %d score maps: one overwrote the other' % n
    out.append(Case('dest/infer-out-same-parent-and-stem', collide, rc=(0, 1), names=['1.png'],
                    check=collide_check))
    return out


def cache_cases():
    """A damaged kernel cache must never stop dfrcl: the entry is rebuilt and the run works."""
    out = []

    def damaged(fn):
        def build(d, ctx):
            cache = os.path.join(d, 'cache')
            os.makedirs(cache)
            for n in sorted(os.listdir(ctx.kernel_cache)):
                src = os.path.join(ctx.kernel_cache, n)
                if os.path.isfile(src) and not n.startswith('.'):
                    shutil.copy(src, os.path.join(cache, n))
            entries = sorted(os.path.join(cache, n) for n in os.listdir(cache))
            if not entries:
                raise Skip('the kernel cache is empty (disabled?)')
            fn(entries)
            argv = ['features'] + SMALL + [ctx.img, '-o', 'out.safetensors']
            return {'argv': argv, 'env': {'DFRCL_CACHE_DIR': cache},
                    'then': {'argv': argv, 'rc': 0}}
        return build

    def each(f):
        return lambda entries: [f(p) for p in entries]

    def truncate_half(p):
        b = read(p)
        put(os.path.dirname(p), os.path.basename(p), b[:len(b) // 2])

    def flip64(p):
        b = bytearray(read(p))
        mid = len(b) // 2
        for i in range(mid, min(mid + 64, len(b))):
            b[i] ^= 0xff
        put(os.path.dirname(p), os.path.basename(p), bytes(b))

    def rotate(entries):  # every valid entry stored under another one's key
        data = [read(p) for p in entries]
        for p, b in zip(entries, data[1:] + data[:1]):
            put(os.path.dirname(p), os.path.basename(p), b)

    def replace(p, make):
        os.unlink(p)
        make(p)

    kinds = [
        ('cache/entry-truncated-half', each(truncate_half)),
        ('cache/entry-64-bytes-flipped', each(flip64)),
        ('cache/entry-under-another-key', rotate),
        ('cache/entry-empty', each(lambda p: put(os.path.dirname(p), os.path.basename(p), b''))),
        ('cache/entry-garbage', each(lambda p: put(os.path.dirname(p), os.path.basename(p),
                                                   bytes(range(256)) * 8))),
        ('cache/entry-first-byte-only', each(lambda p: put(os.path.dirname(p), os.path.basename(p),
                                                          read(p)[:1]))),
        ('cache/entry-folder', each(lambda p: replace(p, os.makedirs))),
        ('cache/entry-fifo', each(lambda p: replace(p, os.mkfifo))),
        ('cache/entry-dangling-symlink', each(lambda p: replace(p, dangling))),
    ]
    for id, fn in kinds:
        out.append(Case(id, damaged(fn), rc=0, present=['out.safetensors'],
                        timeout=40 if 'fifo' in id else 240))
    # DFRCL_CACHE_DIR naming a regular file: say so (and work without the cache).
    out.append(Case('cache/dir-is-a-file', lambda d, ctx: (put(d, 'cachefile', b'x'), {
        'argv': ['features'] + SMALL + [ctx.img, '-o', 'out.safetensors'],
        'env': {'DFRCL_CACHE_DIR': os.path.join(d, 'cachefile')}})[1],
        rc=(0, 1), names=['cachefile'], names_ok=['cachefile'], pat=P_DEST + '|cache'))
    return out


def signal_cases():
    """Interruption: exit 130/143 with a message, no temp file, a state the rerun accepts."""
    out = []

    def big_eval(d, ctx):
        data = os.path.join(d, 'data')
        copytree(ctx.data, data)
        for defect in ('good', 'scratch'):
            src = os.path.join(data, 'test', defect, '000.png')
            for i in range(4, 160):
                shutil.copy(src, os.path.join(data, 'test', defect, '%03d.png' % i))
        return data

    def interrupt_on(marker_fn, sig, delay=0.2):
        def on_start(p, out_path):
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and p.poll() is None:
                if marker_fn(out_path):
                    break
                time.sleep(0.05)
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(sig)
        return on_start

    for sig, name, codes in ((signal.SIGINT, 'int', (130,)), (signal.SIGTERM, 'term', (130, 143))):
        def ev(d, ctx, sig=sig):
            big_eval(d, ctx)
            argv = ['eval', '--model', ctx.model] + RB + ['--data', 'data', '--out', 'eo',
                                                          '--json', 'e.json']
            maps = os.path.join(d, 'eo', 'maps')
            return {'argv': argv, 'then': {'argv': argv, 'rc': 0},
                    'on_start': interrupt_on(lambda o: os.path.isdir(maps) and any(
                        os.scandir(maps)), sig)}
        out.append(Case('signal/eval-%s' % name, ev, rc=codes, names=[], pat=r'interrupt|signal|stopp',
                        absent=['e.json']))

        def tr(d, ctx, sig=sig):
            argv = ['train', '--data', ctx.ds] + SMALL + ['--recipe', 'published', '--epochs', '800',
                                                         '-o', 'm.safetensors']
            return {'argv': argv, 'on_start': interrupt_on(
                lambda o: b'recipe published' in read(o), sig, 0.3)}
        out.append(Case('signal/train-%s' % name, tr, rc=codes, names=[], pat=r'interrupt|resume',
                        absent=['m.safetensors'],
                        check=lambda d, rc, o: None if os.path.exists(
                            os.path.join(d, 'm.safetensors.checkpoint')) else 'no checkpoint'))

        def ft(d, ctx, sig=sig):
            # Interrupted while it builds its kernels into an empty cache.
            argv = ['features'] + SMALL + [ctx.img, '-o', 'out.safetensors', '-v']
            return {'argv': argv, 'env': {'DFRCL_CACHE_DIR': os.path.join(d, 'cache')},
                    'then': {'argv': argv, 'rc': 0},
                    'on_start': interrupt_on(lambda o: b'building' in read(o), sig, 0.1)}
        out.append(Case('signal/cache-fill-%s' % name, ft, rc=codes + (0,), names=[],
                        absent=['out.safetensors']))

        def rn(d, ctx, sig=sig):
            os.makedirs(os.path.join(d, 'root'))
            os.symlink(ctx.ds, os.path.join(d, 'root', 'cat'))
            argv = ['run', '--data', 'root', '--out', 'camp'] + SMALL + ['--recipe', 'published',
                                                                       '--epochs', '800']
            return {'argv': argv, 'on_start': interrupt_on(
                lambda o: b'recipe published' in read(o), sig, 0.3)}
        out.append(Case('signal/run-%s' % name, rn, rc=codes, names=[], pat=r'interrupt|continue',
                        check=lambda d, rc, o: None if os.path.exists(
                            os.path.join(d, 'camp', 'cat', 'train.checkpoint')) else 'no checkpoint'))
    # A stale temp file from a killed process is cleaned up by the next run.
    # dfrcl's temp names are .dfrcl-tmp.<pid>.<random>; pid 4194303 (the largest) is not running.
    def stale(d, ctx):
        put(d, '.dfrcl-tmp.4194303.0123456789ab', b'partial')
        return {'argv': ['features'] + SMALL + [ctx.img, '-o', 'out.safetensors']}
    out.append(Case('signal/stale-temp-cleaned', stale, rc=0, present=['out.safetensors']))
    return out


def all_cases():
    return (option_cases() + truncation_cases() + header_cases() + nonfinite_cases() +
            image_cases() + fs_cases() + dest_cases() + cache_cases() + signal_cases())
