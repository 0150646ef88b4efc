"""ctypes declarations of include/dfrcl.h (API 1.x): the structs field by field, in the header's
order and with its reserved space, and the prototypes. Sizes are checked against the C ones
(tests/test_api_args.c) at import, so a header change that is not mirrored here fails loudly."""
import ctypes
import ctypes.util
import os
import sys

c_int, c_uint, c_float, c_double = ctypes.c_int, ctypes.c_uint, ctypes.c_float, ctypes.c_double
c_char_p, c_void_p, c_size_t = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t
c_uint8, c_uint32, c_uint64, c_longlong = (ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64,
                                           ctypes.c_longlong)
POINTER, CFUNCTYPE = ctypes.POINTER, ctypes.CFUNCTYPE

API_MAJOR = 1  # the header's DFRCL_API_VERSION_MAJOR this module mirrors
API_MINOR = 1

# Status codes (enum dfrcl_status).
OK = 0
ERR_NO_DEVICE = -2001
ERR_BUILD = -2002
ERR_IO = -2003
ERR_FORMAT = -2004
ERR_INVALID_ARG = -2005
ERR_DEVICE_MEMORY = -2006
ERR_HOST_MEMORY = -2007
ERR_MISMATCH = -2008
ERR_INTERNAL = -2009
ERR_INTERRUPTED = -2010


class DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("index", c_int),
        ("platform_index", c_int),
        ("platform_name", ctypes.c_char * 128),
        ("platform_version", ctypes.c_char * 128),
        ("name", ctypes.c_char * 256),
        ("vendor", ctypes.c_char * 128),
        ("driver_version", ctypes.c_char * 128),
        ("opencl_c_version", ctypes.c_char * 128),
        ("is_gpu", c_int),
        ("is_cpu", c_int),
        ("compute_units", c_uint),
        ("global_mem_bytes", c_uint64),
        ("max_alloc_bytes", c_uint64),
        ("local_mem_bytes", c_uint64),
        ("max_work_group_size", c_size_t),
        ("is_default", c_int),
        ("reserved", c_uint64 * 16),
    ]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class Settings(ctypes.Structure):
    _fields_ = [
        ("device", c_char_p),
        ("cache_dir", c_char_p),
        ("verbosity", c_int),
        ("precision", c_int),
        ("log", LOG_FN),
        ("log_user", c_void_p),
        ("reserved", c_uint64 * 14),
    ]


class Image(ctypes.Structure):
    _fields_ = [
        ("width", c_int),
        ("height", c_int),
        ("channels", c_int),
        ("pixels", POINTER(c_uint8)),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("layers", c_int),
        ("size", c_int),
        ("channels", c_int),
        ("latent", c_int),
        ("threshold", c_float),
        ("fpr", c_double),
        ("epochs", c_int),
        ("batch", c_int),
        ("train_images", c_int),
        ("lr", c_float),
        ("final_loss", c_double),
        ("seed", c_uint32),
        ("backbone_sha256", ctypes.c_char * 65),
        ("backbone_desc", ctypes.c_char * 256),
        ("recipe", c_int),
        ("positions", c_int),
        ("steps", ctypes.c_int64),
        ("reserved", c_uint64 * 14),
    ]


PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_int, c_int, c_double)
ON_EVAL_FN = CFUNCTYPE(c_int, c_void_p, c_int, c_double, c_void_p)
ON_PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_char_p, c_int, c_int, c_double)


class TrainOptions(ctypes.Structure):
    _fields_ = [
        ("recipe", c_int),
        ("epochs", c_int),
        ("batch", c_int),
        ("lr", c_float),
        ("latent", c_int),
        ("pca_keep", c_double),
        ("pca_images", c_int),
        ("fpr", c_double),
        ("seed", c_uint32),
        ("memory_mib", c_double),
        ("progress", PROGRESS_FN),
        ("user", c_void_p),
        # 1.1
        ("positions", c_int),
        ("patience", c_int),
        ("store", c_int),
        ("store_precision", c_int),
        ("feature_dir", c_char_p),
        ("checkpoint", c_char_p),
        ("checkpoint_s", c_double),
        ("resume", c_int),
        ("eval_every", c_int),
        ("on_eval", ON_EVAL_FN),
        ("on_progress", ON_PROGRESS_FN),
        ("reserved", c_uint64 * 8),
    ]


SCORE_PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_int, c_int)


class ScoreOptions(ctypes.Structure):
    _fields_ = [
        ("batch", c_int),
        ("threads", c_int),
        ("progress", SCORE_PROGRESS_FN),
        ("user", c_void_p),
        ("reserved", c_uint64 * 16),
    ]


class Result(ctypes.Structure):
    # Library-filled; later versions may append fields (so no size check).
    _fields_ = [
        ("index", c_int),
        ("path", c_char_p),
        ("status", c_int),
        ("message", c_char_p),
        ("image", POINTER(Image)),
        ("orig_width", c_int),
        ("orig_height", c_int),
        ("map", POINTER(c_float)),
        ("score", c_float),
        ("threshold", c_float),
        ("anomalous", c_int),
        ("anomalous_fraction", c_double),
        ("device", c_int),
    ]


RESULT_FN = CFUNCTYPE(c_int, c_void_p, POINTER(Result))


class Metrics(ctypes.Structure):
    _fields_ = [
        ("pixel_auroc", c_double),
        ("image_auroc", c_double),
        ("aupro", c_double),
        ("best_f1", c_double),
        ("best_f1_threshold", c_double),
        ("threshold", c_double),
        ("precision", c_double),
        ("recall", c_double),
        ("f1", c_double),
        ("iou", c_double),
        ("pixels", c_longlong),
        ("defect_pixels", c_longlong),
        ("regions", c_longlong),
        ("images", c_int),
        ("defective_images", c_int),
        ("missing_masks", c_int),
        ("reserved", c_uint64 * 15),
    ]


class EvalOptions(ctypes.Structure):
    _fields_ = [
        ("data", c_char_p),
        ("test_dir", c_char_p),
        ("masks_dir", c_char_p),
        ("out_dir", c_char_p),
        ("json_path", c_char_p),
        ("title", c_char_p),
        ("model_name", c_char_p),
        ("score", ScoreOptions),
        ("reserved", c_uint64 * 16),
    ]


class Published(ctypes.Structure):
    _fields_ = [
        ("category", ctypes.c_char * 32),
        ("layers", c_int),
        ("size", c_int),
        ("epochs", c_int),
        ("pixel_auroc", c_double),
        ("aupro", c_double),
        ("source", c_char_p),
        ("reserved", c_uint64 * 8),
    ]


# The C sizes on LP64 (tests/test_api_args.c checks the same numbers on the C side).
_SIZES = {Settings: 152, TrainOptions: 208, ModelInfo: 512, DeviceInfo: 1088, Image: 24,
          ScoreOptions: 152, EvalOptions: 336, Metrics: 240, Published: 136}
if ctypes.sizeof(c_void_p) == 8 and ctypes.sizeof(ctypes.c_long) == 8:
    for _t, _n in _SIZES.items():
        assert ctypes.sizeof(_t) == _n, (_t.__name__, ctypes.sizeof(_t), _n)

ctx_p = c_void_p  # opaque handles
P = POINTER

# name: (restype, argtypes). Functions of API 1.1 may be absent from an older library: those are
# looked up lazily (see function()).
PROTOTYPES = {
    "dfrcl_last_error": (c_char_p, []),
    "dfrcl_status_name": (c_char_p, [c_int]),
    "dfrcl_version": (c_char_p, []),
    "dfrcl_version_api": (c_uint, []),
    "dfrcl_free": (None, [c_void_p]),
    "dfrcl_list_devices": (c_int, [P(P(DeviceInfo)), P(c_int)]),
    "dfrcl_default_settings": (None, [P(Settings)]),
    "dfrcl_open": (c_int, [P(c_void_p), P(Settings)]),
    "dfrcl_close": (None, [P(c_void_p)]),
    "dfrcl_context_device": (P(DeviceInfo), [c_void_p]),
    "dfrcl_context_device_count": (c_int, [c_void_p]),
    "dfrcl_context_device_at": (P(DeviceInfo), [c_void_p, c_int]),
    "dfrcl_layer_name": (c_char_p, [c_int]),
    "dfrcl_backbone_load": (c_int, [P(c_void_p), c_void_p, c_char_p, c_int]),
    "dfrcl_backbone_random": (c_int, [P(c_void_p), c_void_p, c_int, c_uint32]),
    "dfrcl_backbone_close": (None, [P(c_void_p)]),
    "dfrcl_backbone_channels": (c_int, [c_void_p]),
    "dfrcl_backbone_layers": (c_int, [c_void_p]),
    "dfrcl_image_load": (c_int, [P(Image), c_char_p]),
    "dfrcl_image_resize": (c_int, [P(Image), P(Image), c_int, c_int]),
    "dfrcl_image_free": (None, [P(Image)]),
    "dfrcl_features": (c_int, [c_void_p, P(Image), c_int, P(c_float)]),
    "dfrcl_default_train_options": (None, [P(TrainOptions)]),
    "dfrcl_model_train": (c_int, [P(c_void_p), c_void_p, P(c_char_p), c_int, c_int,
                                  P(TrainOptions)]),
    "dfrcl_model_save": (c_int, [c_void_p, c_char_p]),
    "dfrcl_model_load": (c_int, [P(c_void_p), c_void_p, c_char_p]),
    "dfrcl_model_peek": (c_int, [P(ModelInfo), c_char_p]),
    "dfrcl_model_get_info": (c_int, [c_void_p, P(ModelInfo)]),
    "dfrcl_model_close": (None, [P(c_void_p)]),
    "dfrcl_model_score": (c_int, [c_void_p, P(Image), P(c_float), P(c_float)]),
    "dfrcl_model_score_file": (c_int, [c_void_p, c_char_p, P(c_float), P(c_float)]),
    "dfrcl_model_score_batch": (c_int, [c_void_p, P(Image), c_int, c_int, P(c_float),
                                        P(c_float)]),
    # 1.1
    "dfrcl_default_score_options": (None, [P(ScoreOptions)]),
    "dfrcl_model_score_files": (c_int, [c_void_p, P(c_char_p), c_int, P(ScoreOptions),
                                        RESULT_FN, c_void_p]),
    "dfrcl_default_eval_options": (None, [P(EvalOptions)]),
    "dfrcl_evaluate": (c_int, [c_void_p, P(EvalOptions), P(Metrics)]),
    "dfrcl_published_find": (c_int, [c_char_p, c_int, P(Published)]),
    "dfrcl_list_images": (c_int, [c_char_p, c_int, P(P(c_char_p)), P(c_int)]),
    "dfrcl_free_list": (None, [P(c_char_p), c_int]),
    "dfrcl_overlay": (c_int, [P(Image), P(c_float), c_float, P(Image), P(Image)]),
    "dfrcl_image_save_png": (c_int, [P(Image), c_char_p]),
    "dfrcl_save_npy": (c_int, [P(c_float), c_int, c_int, c_char_p]),
    "dfrcl_write_file": (c_int, [c_char_p, c_void_p, c_size_t]),
    "dfrcl_demo_dataset_write": (c_int, [c_char_p, c_int, c_int, c_int, c_int, c_uint32]),
}


def _load():
    path = os.environ.get("DFRCL_LIBRARY")
    if path:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            raise ImportError("dfrcl: cannot load DFRCL_LIBRARY=%s: %s" % (path, e)) from None
    names = []
    try:  # installed by meson: the library it installed beside this package
        from . import _config
        if os.path.exists(_config.LIBRARY):
            names.append(_config.LIBRARY)
    except ImportError:  # in the source tree, or installed by pip
        pass
    names.append("libdfrcl.so.%d" % API_MAJOR)
    found = ctypes.util.find_library("dfrcl")
    if found:
        names.append(found)
    if sys.platform == "darwin":
        names.append("libdfrcl.%d.dylib" % API_MAJOR)
    err = None
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            err = e
    raise ImportError("dfrcl: cannot load libdfrcl (%s); install it (meson install) or set "
                      "DFRCL_LIBRARY to the path of libdfrcl.so.%d" % (err, API_MAJOR))


lib = _load()
_cache = {}


def function(name):
    """The library's function `name` with its prototype, or None when this library lacks it."""
    if name in _cache:
        return _cache[name]
    try:
        f = getattr(lib, name)
    except AttributeError:
        f = None
    if f is not None:
        f.restype, f.argtypes = PROTOTYPES[name]
    _cache[name] = f
    return f


def version_api():
    v = function("dfrcl_version_api")()
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


_major, _minor, _patch = version_api()
if _major != API_MAJOR:
    raise ImportError("dfrcl: libdfrcl (%s) has API %d.%d.%d; this package needs API %d.x"
                      % (getattr(lib, "_name", "?"), _major, _minor, _patch, API_MAJOR))
