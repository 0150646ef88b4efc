"""dfrcl: DFR anomaly segmentation on any OpenCL device, from Python.

A thin ctypes layer over libdfrcl (include/dfrcl.h); no compiled extension. The library is found
through the DFRCL_LIBRARY environment variable (a path to libdfrcl.so.1), else the system's
library path.

    import dfrcl
    print(dfrcl.devices())
    with dfrcl.Model.train("fabric", random_backbone=1, layers=8, size=128, epochs=5) as m:
        m.save("fabric.safetensors")
        score_map, score = m.score("fabric/test/hole/000.png")

Failures raise dfrcl.Error (a RuntimeError) carrying dfrcl's message and status. Handles: a Model
keeps its backbone and context alive and closes what it opened itself (model, then backbone,
then context); close() or a `with` block releases the device memory at once.
"""
import contextlib
import ctypes
import dataclasses
import os
import signal
import tempfile
import threading
import weakref
from ctypes import byref

from . import _lib
from ._lib import function as _fn

try:
    import numpy as _np
except ImportError:  # devices(), Context and files work without NumPy; arrays need it
    _np = None

__all__ = ["Error", "Interrupted", "Context", "Backbone", "Model", "Result", "devices",
           "evaluate", "version", "api_version", "layer_name", "list_images", "demo_dataset",
           "load_image", "resize", "overlay", "save_png", "save_npy", "published", "peek"]

api_version = _lib.version_api()


def version():
    """dfrcl's release, for people ("0.1.0")."""
    return _fn("dfrcl_version")().decode()


# ---- errors ---------------------------------------------------------------------------------

class Error(RuntimeError):
    """A dfrcl call failed: .status (the code), .status_name, .message (dfrcl_last_error)."""

    def __init__(self, status, message):
        self.status = status
        name = _fn("dfrcl_status_name")(status)
        self.status_name = name.decode() if name else str(status)
        self.message = message
        super().__init__("%s (%s)" % (message, self.status_name) if message else self.status_name)


class Interrupted(Error):
    """A progress callback asked to stop (DFRCL_ERR_INTERRUPTED)."""


def _last_error():
    return (_fn("dfrcl_last_error")() or b"").decode(errors="replace")


def _error(rc):
    cls = Interrupted if rc == _lib.ERR_INTERRUPTED else Error
    return cls(rc, _last_error())


def _check(rc, stash=None):
    """Raises for a non-zero status; an exception a callback stashed (KeyboardInterrupt...) wins."""
    if stash is not None and stash.exc is not None:
        exc, stash.exc = stash.exc, None
        raise exc
    if rc != 0:
        raise _error(rc)


def _need(name):
    f = _fn(name)
    if f is None:
        major, minor, patch = api_version
        raise Error(_lib.ERR_INTERNAL, "this libdfrcl (API %d.%d.%d) lacks %s; install a newer one"
                    % (major, minor, patch, name))
    return f


def _numpy():
    if _np is None:
        raise ImportError("dfrcl: this needs NumPy (pip install numpy, or apt install "
                          "python3-numpy)")
    return _np


class _Stash:
    """Keeps the first exception a callback raised, so it is re-raised after the C call."""

    def __init__(self):
        self.exc = None

    def call(self, fn, *args):
        """fn(*args) -> int for C: non-zero stops; an exception stops too and is kept."""
        if self.exc is not None:
            return 1
        try:
            return 1 if fn(*args) else 0
        except BaseException as e:  # KeyboardInterrupt included: Ctrl-C stops the C call
            self.exc = e
            return 1


@contextlib.contextmanager
def _sigint_stops(stash):
    """Ctrl-C during a long C call with callbacks: Python's handler would raise
    KeyboardInterrupt at a callback's first line, where it cannot be caught; instead it is noted,
    the next callback stops the call, and KeyboardInterrupt is raised once the call returns.
    Only from the main thread, and only over Python's default handler."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def note(_signum, _frame):
        if stash.exc is None:
            stash.exc = KeyboardInterrupt()
    old = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _no_progress(*_args):
    return False


def _path(p):
    return os.fsencode(os.fspath(p))


def _str(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def _struct_dict(s, skip=("reserved",)):
    out = {}
    for name, _t in s._fields_:
        if name in skip:
            continue
        v = getattr(s, name)
        out[name] = _str(v)
    return out


# ---- devices and contexts -------------------------------------------------------------------

def devices():
    """Every OpenCL device as a dict (index, name, vendor, is_gpu, global_mem_bytes, is_default,
    ...); [] when there is none."""
    out = ctypes.POINTER(_lib.DeviceInfo)()
    n = ctypes.c_int()
    rc = _fn("dfrcl_list_devices")(byref(out), byref(n))
    if rc == _lib.ERR_NO_DEVICE:
        return []
    _check(rc)
    try:
        return [_struct_dict(out[i]) for i in range(n.value)]
    finally:
        _fn("dfrcl_free")(ctypes.cast(out, ctypes.c_void_p))


def _selector(device):
    if device is None:
        return None
    if isinstance(device, (list, tuple)):
        device = ",".join(str(d) for d in device)
    return str(device).encode()


_PRECISIONS = {None: 0, 0: 0, "auto": 0, 16: 16, "fp16": 16, 32: 32, "fp32": 32}


class _Handle:
    """An opaque dfrcl handle closed by `closer` (a dfrcl_*_close taking a pointer to it)."""

    _closer = None

    def __init__(self):
        self._h = ctypes.c_void_p()

    @property
    def closed(self):
        return not self._h.value

    def _handle(self):
        if not self._h.value:
            raise Error(_lib.ERR_INVALID_ARG, "%s is closed" % type(self).__name__)
        return self._h

    def _close_handle(self):
        if self._h.value:
            _fn(self._closer)(byref(self._h))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Context(_Handle):
    """An OpenCL context on one device or several.

    device: None (DFRCL_DEVICE, else the first GPU, else the first device), an index, a name
    substring, "all", or a list of those (the context spans them; scoring spreads images over
    them). precision: None/"auto", "fp16"/16 or "fp32"/32 storage on the device. verbosity: 0
    quiet, 1 info, 2 debug. log: a callable(level, message) receiving this context's messages
    (default: stderr). cache_dir: the compiled-kernel cache (None: the default; "": none).
    """

    _closer = "dfrcl_close"

    def __init__(self, device=None, precision=None, verbosity=1, log=None, cache_dir=None):
        super().__init__()
        self._dependents = weakref.WeakSet()  # backbones (which close their models first)
        self._log_cb = None
        if precision not in _PRECISIONS:
            raise ValueError("precision %r: use None/'auto', 'fp16' or 'fp32'" % (precision,))
        s = _lib.Settings()
        _fn("dfrcl_default_settings")(byref(s))
        s.device = _selector(device)
        s.cache_dir = None if cache_dir is None else _path(cache_dir)
        s.verbosity = int(verbosity)
        s.precision = _PRECISIONS[precision]
        if log is not None:
            def on_log(_user, level, msg):
                try:
                    log(level, _str(msg))
                except Exception:  # a logger must not break the library's call
                    import traceback
                    traceback.print_exc()
            # Kept on the context: the library calls it for as long as the context lives.
            self._log_cb = _lib.LOG_FN(on_log)
            s.log = self._log_cb
        _check(_fn("dfrcl_open")(byref(self._h), byref(s)))

    @property
    def device(self):
        """The (first) device the context runs on, as a dict."""
        p = _fn("dfrcl_context_device")(self._handle())
        if not p:
            raise _error(_lib.ERR_INVALID_ARG)
        return _struct_dict(p.contents)

    @property
    def devices(self):
        """Every device the context spans, as dicts."""
        count, at = _fn("dfrcl_context_device_count"), _fn("dfrcl_context_device_at")
        if count is None or at is None:
            return [self.device]
        n = count(self._handle())
        _check(n if n < 0 else 0)
        return [_struct_dict(at(self._h, i).contents) for i in range(n)]

    def close(self):
        """Closes what was opened on this context (models, backbones), then the context."""
        for d in list(self._dependents):
            d.close()
        self._close_handle()

    def __repr__(self):
        if self.closed:
            return "<dfrcl.Context closed>"
        return "<dfrcl.Context on %s>" % ", ".join(d["name"] for d in self.devices)


class Backbone(_Handle):
    """The VGG19 backbone: pretrained weights (a safetensors file with torchvision names) or a
    seeded random one (for tests and demos: its features mean nothing). Use Backbone.load or
    Backbone.random."""

    _closer = "dfrcl_backbone_close"

    def __init__(self, context, weights=None, random_seed=None, layers=0):
        super().__init__()
        if (weights is None) == (random_seed is None):
            raise ValueError("give either weights (a file) or random_seed")
        self.context = context
        self._models = weakref.WeakSet()
        # A backbone and its models share device buffers: one call at a time on them (re-entrant:
        # a training callback may score the model it is given).
        self.lock = threading.RLock()
        if weights is not None:
            rc = _fn("dfrcl_backbone_load")(byref(self._h), context._handle(), _path(weights),
                                            int(layers))
        else:
            rc = _fn("dfrcl_backbone_random")(byref(self._h), context._handle(), int(layers),
                                              int(random_seed) & 0xFFFFFFFF)
        _check(rc)
        context._dependents.add(self)

    @classmethod
    def load(cls, context, weights, layers=0):
        """layers: ReLU layers from relu1_1 (1..16); 0 = all the file has, at most 12."""
        return cls(context, weights=weights, layers=layers)

    @classmethod
    def random(cls, context, seed, layers=12):
        return cls(context, random_seed=seed, layers=layers)

    @property
    def channels(self):
        n = _fn("dfrcl_backbone_channels")(self._handle())
        _check(n if n < 0 else 0)
        return n

    @property
    def layers(self):
        n = _fn("dfrcl_backbone_layers")(self._handle())
        _check(n if n < 0 else 0)
        return n

    def features(self, image, size):
        """The regional feature [C, size/4, size/4] (float32) of a uint8 image array (resized to
        size x size when it is not) or an image file."""
        np = _numpy()
        arr = _image_array(image)
        if arr.shape[0] != size or arr.shape[1] != size:
            arr = resize(arr, size, size)
        img, keep = _as_image(arr)
        out = np.empty((self.channels, size // 4, size // 4), np.float32)
        with self.lock:
            _check(_fn("dfrcl_features")(self._handle(), byref(img), int(size),
                                         out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        return out

    def close(self):
        """Closes the models on this backbone, then the backbone."""
        for m in list(self._models):
            m.close()
        self._close_handle()


# ---- images ---------------------------------------------------------------------------------

def _as_image(arr):
    """A dfrcl_image over a uint8 HxW or HxWx3 array (no copy unless it is not contiguous);
    returns the struct and the array to keep alive while it is used."""
    np = _numpy()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise TypeError("dfrcl: images are uint8 arrays, not %s" % arr.dtype)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError("dfrcl: an image is HxW (grey) or HxWx3 (RGB), not shape %s%s"
                         % (arr.shape, " (drop alpha: a[..., :3])" if arr.ndim == 3
                            and arr.shape[2] == 4 else ""))
    arr = np.ascontiguousarray(arr)
    img = _lib.Image(arr.shape[1], arr.shape[0], 1 if arr.ndim == 2 else 3,
                     arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    return img, arr


def _from_image(img):
    """A NumPy copy of a dfrcl_image."""
    np = _numpy()
    n = img.width * img.height * img.channels
    flat = np.ctypeslib.as_array(img.pixels, shape=(n,)).copy()
    return flat.reshape((img.height, img.width) if img.channels == 1
                        else (img.height, img.width, img.channels))


def _image_array(image):
    if isinstance(image, (str, bytes, os.PathLike)):
        return load_image(image)
    return image


def load_image(path):
    """Decodes a PNG or JPEG file into a uint8 array (HxW grey or HxWx3 RGB)."""
    img = _lib.Image()
    _check(_fn("dfrcl_image_load")(byref(img), _path(path)))
    try:
        return _from_image(img)
    finally:
        _fn("dfrcl_image_free")(byref(img))


def resize(image, width, height):
    """Resizes a uint8 image array as dfrcl does (PIL's antialiased bilinear filter)."""
    src, keep = _as_image(image)
    dst = _lib.Image()
    _check(_fn("dfrcl_image_resize")(byref(dst), byref(src), int(width), int(height)))
    try:
        return _from_image(dst)
    finally:
        _fn("dfrcl_image_free")(byref(dst))


def _float_map(m):
    np = _numpy()
    m = np.ascontiguousarray(m, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError("dfrcl: a map is a 2-D array, not shape %s" % (m.shape,))
    return m


def overlay(image, score_map, threshold):
    """The image with the pixels above threshold tinted and outlined, and their 0/255 mask:
    (overlay HxWx3, mask HxW) uint8 arrays. The map has the image's size."""
    img, keep = _as_image(image)
    m = _float_map(score_map)
    if m.shape != (img.height, img.width):
        raise ValueError("dfrcl: the map is %s, the image %dx%d" % (m.shape, img.height, img.width))
    ov, mask = _lib.Image(), _lib.Image()
    _check(_need("dfrcl_overlay")(byref(img), m.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                  float(threshold), byref(ov), byref(mask)))
    try:
        return _from_image(ov), _from_image(mask)
    finally:
        _fn("dfrcl_image_free")(byref(ov))
        _fn("dfrcl_image_free")(byref(mask))


def save_png(image, path):
    """Writes a uint8 image array as PNG (atomically)."""
    img, keep = _as_image(image)
    _check(_need("dfrcl_image_save_png")(byref(img), _path(path)))


def save_npy(score_map, path):
    """Writes a 2-D float map as a .npy file (atomically), as dfrcl's outputs are."""
    m = _float_map(score_map)
    _check(_need("dfrcl_save_npy")(m.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                   m.shape[1], m.shape[0], _path(path)))


def list_images(folder, train=False):
    """The image files (.png, .jpg, .jpeg, sorted) of a folder; with train=True the folder is a
    dataset (MVTec AD layout) and the files are those of folder/train/good."""
    paths = ctypes.POINTER(ctypes.c_char_p)()
    n = ctypes.c_int()
    _check(_need("dfrcl_list_images")(_path(folder), 1 if train else 0, byref(paths), byref(n)))
    try:
        return [os.fsdecode(paths[i]) for i in range(n.value)]
    finally:
        _fn("dfrcl_free_list")(paths, n.value)


def demo_dataset(folder, size=128, n_train=16, n_test_good=8, n_test_defect=4, seed=0):
    """Writes the synthetic woven-fabric dataset of `dfrcl demo` (MVTec AD layout with masks);
    the same files for the same arguments. Returns the folder."""
    _check(_need("dfrcl_demo_dataset_write")(_path(folder), int(size), int(n_train),
                                             int(n_test_good), int(n_test_defect),
                                             int(seed) & 0xFFFFFFFF))
    return folder


def published(data, layers=12):
    """The DFR paper's figures for an MVTec AD category (named by the last part of `data`), as a
    dict, or None when the paper does not report it."""
    p = _lib.Published()
    rc = _need("dfrcl_published_find")(_path(data), int(layers), byref(p))
    _check(rc if rc < 0 else 0)
    return _struct_dict(p) if rc == 1 else None


def layer_name(layer):
    """'relu1_1' .. 'relu5_4' for layer 0..15."""
    name = _fn("dfrcl_layer_name")(int(layer))
    if name is None:
        raise _error(_lib.ERR_INVALID_ARG)
    return name.decode()


# ---- models ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    """One scored file (Model.score_files). error is None when it was scored; else the file
    could not be read, and map/score are None."""
    index: int
    path: str
    score: float = None
    anomalous: bool = None
    anomalous_fraction: float = None
    threshold: float = None
    map: object = None  # float32 size x size, or None
    orig_size: tuple = None  # the file's (width, height)
    device: int = None
    status: int = 0
    error: str = None


_RECIPES = {"fast": 0, "published": 1, 0: 0, 1: 1}
_STORES = {None: 0, "auto": 0, "device": 1, "host": 2, "disk": 3}


def _train_paths(data):
    if isinstance(data, (str, bytes, os.PathLike)):
        d = os.fspath(data)
        d_s = os.fsdecode(d)
        dataset = os.path.isdir(os.path.join(d_s, "train", "good"))
        if _fn("dfrcl_list_images") is not None:
            paths = list_images(d, train=dataset)
        else:  # an API 1.0 library: list them here
            folder = os.path.join(d_s, "train", "good") if dataset else d_s
            paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                           if f.lower().endswith((".png", ".jpg", ".jpeg")))
        if not paths:
            raise Error(_lib.ERR_INVALID_ARG, "%s: no training images (.png, .jpg) in %s"
                        % (d_s, "train/good" if dataset else "the folder"))
        return paths
    return [p if _is_array(p) else os.fspath(p) for p in data]


def _is_array(x):
    return not isinstance(x, (str, bytes, os.PathLike))


def _write_arrays(items, folder):
    """Image arrays among training items written as PNG (lossless) into folder: the library
    trains on files."""
    out = []
    for i, x in enumerate(items):
        if _is_array(x):
            p = os.path.join(folder, "%06d.png" % i)
            save_png(x, p)
            x = p
        out.append(x)
    return out


class Model(_Handle):
    """A trained DFR model. Make one with Model.train or Model.load; it keeps its backbone and
    context alive and closes the ones it opened itself."""

    _closer = "dfrcl_model_close"

    def __init__(self, backbone, owned=()):
        """(internal) use Model.train or Model.load."""
        super().__init__()
        self.backbone = backbone
        self.context = backbone.context
        self._owned = list(owned)  # closed after the model, in this order
        self._info = None

    @staticmethod
    def _open_backbone(context, backbone, weights, random_backbone, layers, device, precision,
                       verbosity, log):
        """The backbone to use and what the model must close after itself."""
        if backbone is not None:
            return backbone, []
        if weights is None and random_backbone is None:
            weights = os.environ.get("DFRCL_WEIGHTS") or None
            if weights is None:
                raise ValueError("dfrcl: give weights= (VGG19 safetensors; or set DFRCL_WEIGHTS) "
                                 "or random_backbone=SEED")
        owned = []
        if context is None:
            context = Context(device=device, precision=precision, verbosity=verbosity, log=log)
            owned.append(context)
        try:
            if weights is not None and random_backbone is not None:
                raise ValueError("dfrcl: give weights= or random_backbone=, not both")
            if weights is not None:
                bb = Backbone.load(context, weights, layers=0 if layers is None else layers)
            else:
                bb = Backbone.random(context, random_backbone,
                                     layers=12 if layers is None else layers)
        except BaseException:
            for o in owned:
                o.close()
            raise
        return bb, [bb] + owned

    def _adopt(self):
        """Registers the model with its backbone, so closing that closes the model first."""
        self.backbone._models.add(self)

    @classmethod
    def train(cls, data, *, weights=None, random_backbone=None, layers=None, size=256,
              epochs=0, recipe="fast", batch=0, lr=0.0, latent=0, fpr=0.0, seed=0,
              positions=0, patience=0, memory_mib=0.0, store=None, checkpoint=None,
              resume=False, progress=None, eval_every=0, on_eval=None, context=None,
              backbone=None, device=None, precision=None, verbosity=1, log=None):
        """Trains a model on defect-free images.

        data: a dataset folder (MVTec AD layout: its train/good), a folder of images, or a list
        of image files and/or uint8 image arrays (arrays are written to temporary PNG files). The backbone: weights= (VGG19 safetensors, default $DFRCL_WEIGHTS) or
        random_backbone=SEED, with `layers` ReLU layers (weights: 0 = all, at most 12; random:
        12), or backbone= an open Backbone. context= an open Context, else one is opened with
        device, precision, verbosity and log. size: the side images are resized to.
        epochs, recipe ("fast"/"published"), batch, lr, latent, fpr, seed, positions, patience,
        memory_mib, store, checkpoint, resume: as `dfrcl train` (0 = the default).
        progress: callable(phase, done, total, loss) with phase "features", "train", "step" or
        "threshold"; returning True stops training (raises dfrcl.Interrupted).
        on_eval: callable(epoch, train_seconds, model) every eval_every epochs and after the
        last, with a model that scores as the trained one would at that point (threshold 0;
        valid during the call only: score or evaluate it there); True stops training.
        """
        if recipe not in _RECIPES:
            raise ValueError("recipe %r: 'fast' or 'published'" % (recipe,))
        if store not in _STORES:
            raise ValueError("store %r: None/'auto', 'device', 'host' or 'disk'" % (store,))
        paths = _train_paths(data)
        if any(_is_array(p) for p in paths):
            with tempfile.TemporaryDirectory(prefix="dfrcl-train-") as tmp:
                return cls.train(_write_arrays(paths, tmp), weights=weights,
                                 random_backbone=random_backbone, layers=layers, size=size,
                                 epochs=epochs, recipe=recipe, batch=batch, lr=lr, latent=latent,
                                 fpr=fpr, seed=seed, positions=positions, patience=patience,
                                 memory_mib=memory_mib, store=store, checkpoint=checkpoint,
                                 resume=resume, progress=progress, eval_every=eval_every,
                                 on_eval=on_eval, context=context, backbone=backbone,
                                 device=device, precision=precision, verbosity=verbosity,
                                 log=log)
        bb, owned = cls._open_backbone(context, backbone, weights, random_backbone, layers,
                                       device, precision, verbosity, log)
        model = cls(bb, owned)
        try:
            o = _lib.TrainOptions()
            _fn("dfrcl_default_train_options")(byref(o))
            o.recipe = _RECIPES[recipe]
            for name, v in (("epochs", epochs), ("batch", batch), ("latent", latent),
                            ("positions", positions), ("patience", patience)):
                if v:
                    setattr(o, name, int(v))
            for name, v in (("lr", lr), ("fpr", fpr), ("memory_mib", memory_mib)):
                if v:
                    setattr(o, name, float(v))
            o.seed = int(seed) & 0xFFFFFFFF
            o.store = _STORES[store]
            if checkpoint is not None:
                o.checkpoint = _path(checkpoint)
            o.resume = 1 if resume else 0
            stash = _Stash()

            def on_progress(_user, phase, done, total, loss):
                # called even without `progress`: where a Ctrl-C stops training
                return stash.call(progress or _no_progress, _str(phase), done, total, loss)
            cb = _lib.ON_PROGRESS_FN(on_progress)  # referenced until the call returns
            o.on_progress = cb
            ecb, stopped_at = None, []
            if on_eval is not None:
                def eval_cb(_user, epoch, seconds, handle):
                    if not stash.call(_call_borrowed, on_eval, bb, epoch, seconds, handle):
                        return 0
                    stopped_at.append(epoch)
                    return _lib.ERR_INTERRUPTED  # what dfrcl_model_train then returns
                ecb = _lib.ON_EVAL_FN(eval_cb)
                o.on_eval, o.eval_every = ecb, int(eval_every) or 1
            arr = (ctypes.c_char_p * len(paths))(*[_path(p) for p in paths])
            with bb.lock, _sigint_stops(stash):
                rc = _fn("dfrcl_model_train")(byref(model._h), bb._handle(), arr, len(paths),
                                              int(size), byref(o))
            del cb, ecb
            if rc == _lib.ERR_INTERRUPTED and stopped_at and stash.exc is None:
                raise Interrupted(rc, "on_eval stopped training after epoch %d" % stopped_at[0])
            _check(rc, stash)
        except BaseException:
            model.close()
            raise
        model._adopt()
        return model

    @classmethod
    def load(cls, path, *, weights=None, random_backbone=None, context=None, backbone=None,
             device=None, precision=None, verbosity=1, log=None):
        """Loads a model file with the backbone it was trained with: weights= (a file), or
        random_backbone=SEED, or backbone= an open Backbone; without any of them, a model trained
        on a random backbone reopens it from its own record, else $DFRCL_WEIGHTS is used."""
        info = peek(path)
        if weights is None and random_backbone is None and backbone is None:
            desc = info["backbone_desc"].split()
            if len(desc) == 3 and desc[:2] == ["random", "seed"] and desc[2].isdigit():
                random_backbone = int(desc[2])
        bb, owned = cls._open_backbone(context, backbone, weights, random_backbone,
                                       info["layers"], device, precision, verbosity, log)
        model = cls(bb, owned)
        try:
            with bb.lock:
                _check(_fn("dfrcl_model_load")(byref(model._h), bb._handle(), _path(path)))
        except BaseException:
            model.close()
            raise
        model._adopt()
        return model

    def save(self, path):
        """Writes the model file (atomically)."""
        with self.backbone.lock:
            _check(_fn("dfrcl_model_save")(self._handle(), _path(path)))

    @property
    def info(self):
        """What the model records, as a dict (layers, size, channels, latent, threshold, ...)."""
        if self._info is None:
            i = _lib.ModelInfo()
            _check(_fn("dfrcl_model_get_info")(self._handle(), byref(i)))
            self._info = _struct_dict(i)
        return dict(self._info)

    @property
    def size(self):
        return self.info["size"]

    @property
    def threshold(self):
        return self.info["threshold"]

    def score(self, image):
        """Scores one image: a uint8 array (HxW or HxWx3, resized to the model's size when it
        is not) or an image file. Returns (map, score): the float32 size x size pixel score map
        and the image score (its maximum); pixels above model.threshold are anomalous."""
        np = _numpy()
        s = self.size
        out = np.empty((s, s), np.float32)
        score = ctypes.c_float()
        outp = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if isinstance(image, (str, bytes, os.PathLike)):
            with self.backbone.lock:
                _check(_fn("dfrcl_model_score_file")(self._handle(), _path(image), outp,
                                                     byref(score)))
            return out, float(score.value)
        img, keep = _as_image(image)
        if img.width != s or img.height != s:
            img, keep = _as_image(resize(keep, s, s))
        with self.backbone.lock:
            _check(_fn("dfrcl_model_score")(self._handle(), byref(img), outp, byref(score)))
        return out, float(score.value)

    def score_batch(self, images, batch=0):
        """Scores a list of uint8 image arrays `batch` at a time on the device (0: automatic).
        Returns (maps N x size x size, scores N) as float32 arrays."""
        np = _numpy()
        s = self.size
        imgs, keep = (_lib.Image * len(images))(), []
        for i, a in enumerate(images):
            a = np.asarray(a)
            if a.shape[0] != s or a.shape[1] != s:
                a = resize(a, s, s)
            imgs[i], k = _as_image(a)
            keep.append(k)
        maps = np.empty((len(images), s, s), np.float32)
        scores = np.empty(len(images), np.float32)
        if images:
            with self.backbone.lock:
                _check(_fn("dfrcl_model_score_batch")(
                    self._handle(), imgs, len(images), int(batch),
                    maps.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                    scores.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        return maps, scores

    def score_files(self, paths, batch=0, threads=0, maps=True, progress=None):
        """Scores image files (any size), decoding ahead on `threads` threads and `batch` images
        per launch on every device of the context (0: automatic). Returns a list of Result in
        input order; an unreadable file gives a Result with .error set and the others go on.
        maps=False keeps only the scores. progress: callable(done, total); True stops
        (dfrcl.Interrupted)."""
        np = _numpy()
        paths = [os.fspath(p) for p in paths]
        f = _fn("dfrcl_model_score_files")
        if f is None:  # an API 1.0 library: one at a time
            return [self._score_one(i, p, maps) for i, p in enumerate(paths)]
        results = []
        stash = _Stash()
        s = self.size

        def on_result(_user, rp):
            r = rp.contents
            res = Result(index=r.index, path=paths[r.index], status=r.status,
                         orig_size=(r.orig_width, r.orig_height), device=r.device)
            if r.status == 0:
                res.score, res.threshold = float(r.score), float(r.threshold)
                res.anomalous = bool(r.anomalous)
                res.anomalous_fraction = float(r.anomalous_fraction)
                if maps:
                    res.map = np.ctypeslib.as_array(r.map, shape=(s, s)).copy()
            else:
                res.error = _str(r.message) or _last_error()
            results.append(res)
            return False

        def on_progress(_user, done, total):
            return stash.call(progress or _no_progress, done, total)

        o = _lib.ScoreOptions()
        _fn("dfrcl_default_score_options")(byref(o))
        o.batch, o.threads = int(batch), int(threads)
        pcb = _lib.SCORE_PROGRESS_FN(on_progress)
        o.progress = pcb
        rcb = _lib.RESULT_FN(lambda u, rp: stash.call(on_result, u, rp))
        arr = (ctypes.c_char_p * len(paths))(*[_path(p) for p in paths])
        with self.backbone.lock, _sigint_stops(stash):
            rc = f(self._handle(), arr, len(paths), byref(o), rcb, None)
        del pcb, rcb
        _check(rc, stash)
        return results

    def _score_one(self, i, path, maps):
        try:
            m, sc = self.score(path)
        except Error as e:
            return Result(index=i, path=path, status=e.status, error=e.message)
        t = self.threshold
        return Result(index=i, path=path, score=sc, anomalous=sc > t,
                      anomalous_fraction=float((m > t).mean()), threshold=t,
                      map=m if maps else None, device=0)

    def close(self):
        """Closes the model, then the backbone and context it opened itself."""
        self._close_handle()
        owned, self._owned = self._owned, []
        for o in owned:
            o.close()

    def __repr__(self):
        if self.closed:
            return "<dfrcl.Model closed>"
        i = self.info
        return "<dfrcl.Model %d layers, size %d, latent %d, threshold %g>" % (
            i["layers"], i["size"], i["latent"], i["threshold"])


class _BorrowedModel(Model):
    """A model handle the library lends to a callback: usable during it, never closed here."""

    def close(self):
        self._h = ctypes.c_void_p()


def _call_borrowed(fn, backbone, epoch, seconds, handle):
    m = _BorrowedModel(backbone)
    m._h = ctypes.c_void_p(handle)
    try:
        return fn(epoch, seconds, m)
    finally:
        m.close()


def peek(path):
    """A model file's record (as Model.info) without loading it."""
    i = _lib.ModelInfo()
    _check(_fn("dfrcl_model_peek")(byref(i), _path(path)))
    return _struct_dict(i)


def evaluate(model, data=None, out_dir=None, json_path=None, *, test_dir=None, masks_dir=None,
             batch=0, threads=0, progress=None, title=None, model_name=None):
    """Scores a test set and returns its metrics as a dict (the keys of `dfrcl eval --json`'s
    "metrics": pixel_auroc, image_auroc, aupro, best_f1, ..., NaN where undefined).

    data: a dataset folder (MVTec AD layout: test/<good|defect>/, ground_truth/<defect>/);
    test_dir and masks_dir replace its two folders. out_dir: also write maps/, overlays/ and
    report.html there; json_path: also write the JSON. progress: callable(done, total); True
    stops (dfrcl.Interrupted)."""
    f = _need("dfrcl_evaluate")
    o = _lib.EvalOptions()
    _fn("dfrcl_default_eval_options")(byref(o))
    for name, v in (("data", data), ("test_dir", test_dir), ("masks_dir", masks_dir),
                    ("out_dir", out_dir), ("json_path", json_path)):
        if v is not None:
            setattr(o, name, _path(v))
    if title is not None:
        o.title = title.encode()
    if model_name is not None:
        o.model_name = model_name.encode()
    o.score.batch, o.score.threads = int(batch), int(threads)
    stash = _Stash()

    def on_progress(_user, done, total):
        return stash.call(progress or _no_progress, done, total)
    pcb = _lib.SCORE_PROGRESS_FN(on_progress)
    o.score.progress = pcb
    m = _lib.Metrics()
    with model.backbone.lock, _sigint_stops(stash):
        rc = f(model._handle(), byref(o), byref(m))
    del pcb
    _check(rc, stash)
    return _struct_dict(m)
