"""The dfrcl Python package (python/dfrcl) through the built libdfrcl: devices, a tiny model
trained on the demo dataset with a random backbone, save/load, scoring arrays, files and
batches against each other and against `dfrcl infer --json`, errors, cancellation, evaluation
against `dfrcl eval --json`, and handle lifetimes.

Usage: test_python.py DFRCL_EXE [TestPython.test_name ...]
       (env: DFRCL_LIBRARY, PYTHONPATH=python/)
Exits 77 (skipped) without NumPy or without an OpenCL device.
"""
import ctypes
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

try:
    import numpy as np
except ImportError:
    print("skip: no NumPy for %s (Debian: apt install python3-numpy)" % sys.executable)
    sys.exit(77)

import dfrcl  # noqa: E402

EXE = sys.argv[1] if len(sys.argv) > 1 else None
SEED, LAYERS, SIZE = 7, 4, 32


def setUpModule():
    global TMP, DATA, MODEL_PATH
    TMP = tempfile.mkdtemp(prefix="dfrcl-py-")
    DATA = os.path.join(TMP, "fabric")
    dfrcl.demo_dataset(DATA, size=48, n_train=4, n_test_good=2, n_test_defect=1, seed=3)
    MODEL_PATH = os.path.join(TMP, "m.safetensors")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def train(data=None, **kw):
    args = dict(random_backbone=SEED, layers=LAYERS, size=SIZE, epochs=2, verbosity=0)
    args.update(kw)
    return dfrcl.Model.train(DATA if data is None else data, **args)


def test_images():
    return dfrcl.list_images(os.path.join(DATA, "test", "hole")) + \
        dfrcl.list_images(os.path.join(DATA, "test", "good"))


class TestLayout(unittest.TestCase):
    def test_structs_match_the_header(self):
        """Every ctypes field at the offset the C compiler gives it, every struct its size."""
        cc, inc = os.environ.get("DFRCL_CC"), os.environ.get("DFRCL_INCLUDE")
        if not cc or not inc:
            self.skipTest("DFRCL_CC / DFRCL_INCLUDE not set")
        from dfrcl import _lib
        structs = {_lib.DeviceInfo: "dfrcl_device_info", _lib.Settings: "dfrcl_settings",
                   _lib.Image: "dfrcl_image", _lib.ModelInfo: "dfrcl_model_info",
                   _lib.TrainOptions: "dfrcl_train_options", _lib.ScoreOptions:
                   "dfrcl_score_options", _lib.Result: "dfrcl_result", _lib.Metrics:
                   "dfrcl_metrics", _lib.EvalOptions: "dfrcl_eval_options",
                   _lib.Published: "dfrcl_published"}
        lines, want = [], []
        for t, c in structs.items():
            lines.append('printf("%%zu\\n", sizeof(%s));' % c)
            want.append(ctypes.sizeof(t))
            for name, _ in t._fields_:
                lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (c, name))
                want.append(getattr(t, name).offset)
        src = os.path.join(TMP, "layout.c")
        with open(src, "w") as f:
            f.write("#include <dfrcl.h>\n#include <stddef.h>\n#include <stdio.h>\n"
                    "int main(void)\n{\n%s\nreturn 0;\n}\n" % "\n".join(lines))
        exe = os.path.join(TMP, "layout")
        subprocess.run([cc, "-std=c11", "-I", inc, src, "-o", exe], check=True)
        got = [int(x) for x in subprocess.run([exe], check=True, capture_output=True,
                                              text=True).stdout.split()]
        self.assertEqual(got, want)


class TestPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.phases = set()

        def progress(phase, done, total, loss):
            cls.phases.add(phase)
            assert 0 <= done <= total, (phase, done, total)
        cls.model = train(progress=progress)
        cls.model.save(MODEL_PATH)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def test_devices(self):
        devs = dfrcl.devices()
        self.assertGreater(len(devs), 0)
        self.assertTrue(all(isinstance(d["name"], str) and d["name"] for d in devs))
        self.assertEqual(sum(d["is_default"] for d in devs), 1)
        self.assertEqual(dfrcl.api_version[0], 1)

    def test_info_and_progress(self):
        info = self.model.info
        self.assertEqual((info["layers"], info["size"], info["train_images"]), (LAYERS, SIZE, 4))
        self.assertEqual(info["backbone_desc"], "random seed %d" % SEED)
        self.assertGreater(info["threshold"], 0)
        self.assertTrue({"features", "train", "threshold"} <= self.phases, self.phases)

    def test_train_on_arrays(self):
        """Arrays (written as PNG for the library) train the model the files train."""
        arrays = [dfrcl.load_image(p) for p in dfrcl.list_images(DATA, train=True)]
        img = test_images()[0]
        with train(data=arrays) as m:
            self.assertEqual(m.info["train_images"], 4)
            np.testing.assert_array_equal(m.score(img)[0], self.model.score(img)[0])

    def test_save_load_same_map(self):
        img = test_images()[0]
        a, sa = self.model.score(img)
        # the backbone comes back from the model's own record ("random seed 7")
        with dfrcl.Model.load(MODEL_PATH, verbosity=0) as m2:
            i1, i2 = self.model.info, m2.info
            # the file keeps the loss as a float32
            self.assertAlmostEqual(i1.pop("final_loss"), i2.pop("final_loss"), delta=1e-6)
            self.assertEqual(i1, i2)
            b, sb = m2.score(img)
        self.assertEqual(a.dtype, np.float32)
        self.assertEqual(a.shape, (SIZE, SIZE))
        np.testing.assert_array_equal(a, b)
        self.assertEqual(sa, sb)
        self.assertAlmostEqual(sa, float(a.max()), places=6)

    def test_array_equals_path(self):
        for path in test_images()[:2]:
            arr = dfrcl.load_image(path)
            self.assertEqual(arr.dtype, np.uint8)
            self.assertEqual(arr.shape, (48, 48, 3))  # resized to 32 inside score
            m_path, s_path = self.model.score(path)
            m_arr, s_arr = self.model.score(arr)
            np.testing.assert_allclose(m_arr, m_path, rtol=1e-5, atol=1e-6)
            self.assertAlmostEqual(s_arr, s_path, delta=1e-5 * abs(s_path))
            # grey and already-sized arrays go through too
            g = np.ascontiguousarray(dfrcl.resize(arr, SIZE, SIZE)[:, :, 1])
            mg, _ = self.model.score(g)
            self.assertEqual(mg.shape, (SIZE, SIZE))
            self.assertTrue(np.isfinite(mg).all())

    def test_matches_cli(self):
        if not EXE:
            self.skipTest("no dfrcl command given")
        paths = test_images()[:2]
        out = subprocess.run([EXE, "infer", "--json", "-q", "--model", MODEL_PATH,
                              "--random-backbone", str(SEED)] + paths,
                             check=True, capture_output=True, text=True).stdout
        cli = {os.path.abspath(i["path"]): i["score"] for i in json.loads(out)["images"]}
        for p in paths:
            _, s = self.model.score(p)
            self.assertAlmostEqual(s, cli[os.path.abspath(p)], delta=1e-5 * abs(s))

    def test_score_files_and_batch(self):
        paths = test_images()
        bad = os.path.join(TMP, "not-an-image.png")
        with open(bad, "wb") as f:
            f.write(b"not a png")
        res = self.model.score_files(paths[:1] + [bad] + paths[1:], batch=2, threads=2)
        self.assertEqual([r.index for r in res], list(range(len(paths) + 1)))
        self.assertIsNotNone(res[1].error)
        self.assertIn("not-an-image.png", res[1].error)
        self.assertIsNone(res[1].map)
        good = [r for r in res if r.error is None]
        self.assertEqual(len(good), len(paths))
        arrays = [dfrcl.load_image(p) for p in paths]
        maps, scores = self.model.score_batch(arrays, batch=2)
        for i, (r, p) in enumerate(zip(good, paths)):
            m, s = self.model.score(p)
            self.assertEqual(r.path, p)
            self.assertEqual(r.orig_size, (48, 48))
            np.testing.assert_allclose(r.map, m, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(maps[i], m, rtol=1e-5, atol=1e-6)
            self.assertAlmostEqual(r.score, s, delta=1e-5 * abs(s))
            self.assertAlmostEqual(float(scores[i]), s, delta=1e-5 * abs(s))
            self.assertEqual(r.anomalous, s > self.model.threshold)
            self.assertAlmostEqual(r.anomalous_fraction, float((m > r.threshold).mean()),
                                   delta=1.5 / m.size)

    def test_errors(self):
        missing = os.path.join(TMP, "missing.safetensors")
        with self.assertRaises(dfrcl.Error) as cm:
            dfrcl.Model.load(missing, random_backbone=SEED, verbosity=0)
        e = cm.exception
        self.assertIsInstance(e, RuntimeError)
        self.assertIn("missing.safetensors", e.message)
        self.assertIn("missing.safetensors", str(e))
        self.assertEqual((e.status, e.status_name), (-2003, "DFRCL_ERR_IO"))
        with self.assertRaises(dfrcl.Error) as cm:
            self.model.score(os.path.join(TMP, "nope.png"))
        self.assertIn("nope.png", cm.exception.message)
        with self.assertRaises(dfrcl.Error) as cm:  # the backbone the model was not trained with
            dfrcl.Model.load(MODEL_PATH, random_backbone=SEED + 1, verbosity=0)
        self.assertEqual(cm.exception.status_name, "DFRCL_ERR_MISMATCH")
        with self.assertRaises(TypeError):
            self.model.score(np.zeros((SIZE, SIZE), np.float32))
        with self.assertRaises(ValueError):
            self.model.score(np.zeros((SIZE, SIZE, 4), np.uint8))
        with self.assertRaises(dfrcl.Error) as cm:
            dfrcl.Context(device="no-such-device-xyz", verbosity=0)
        self.assertEqual(cm.exception.status_name, "DFRCL_ERR_NO_DEVICE")

    def test_progress_stops_training(self):
        seen = []

        def stop(phase, done, total, loss):
            seen.append(phase)
            return phase == "train"  # after the first epoch
        with self.assertRaises(dfrcl.Interrupted) as cm:
            train(progress=stop, epochs=50)
        self.assertEqual(cm.exception.status_name, "DFRCL_ERR_INTERRUPTED")
        self.assertEqual(seen.count("train"), 1)
        self.assertNotIn("threshold", seen)

        # Ctrl-C while the library trains (from another thread, so that it lands in C code and
        # Python sees it at the next callback's first line)
        def ctrl_c(phase, done, total, loss):
            if phase == "train" and done == 1:
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            seen.append(phase)
        seen.clear()
        with self.assertRaises(KeyboardInterrupt):
            train(progress=ctrl_c, epochs=50, patience=-1)
        self.assertLess(seen.count("train"), 50)
        self.assertNotIn("threshold", seen)
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

        def boom(phase, done, total, loss):
            raise ZeroDivisionError("from the callback")
        with self.assertRaises(ZeroDivisionError):  # the callback's own exception comes through
            train(progress=boom)

    def test_on_eval(self):
        img = test_images()[0]
        seen = []

        def on_eval(epoch, seconds, m):
            mt = dfrcl.evaluate(m, DATA)
            seen.append((epoch, m.info["threshold"], mt["images"], m.score(img)[0]))
            return epoch == 2
        with self.assertRaises(dfrcl.Interrupted) as cm:
            train(epochs=10, patience=-1, eval_every=1, on_eval=on_eval)
        self.assertIn("epoch 2", str(cm.exception))
        self.assertEqual([s[0] for s in seen], [1, 2])
        self.assertEqual([s[1:3] for s in seen], [(0, 5), (0, 5)])  # threshold 0 while training
        # the model handed over after the last epoch scores as the trained model does
        last = []
        with train(eval_every=5, on_eval=lambda e, t, m: last.append(m.score(img)[0])) as m:
            self.assertEqual(len(last), 1)
            np.testing.assert_array_equal(last[0], m.score(img)[0])
            np.testing.assert_array_equal(last[0], self.model.score(img)[0])

    def test_two_devices(self):
        if len(dfrcl.devices()) < 2:
            self.skipTest("one OpenCL device (POCL_DEVICES='pthread pthread' gives two)")
        with dfrcl.Context(device="all", verbosity=0) as ctx:
            self.assertEqual(len(ctx.devices), len(dfrcl.devices()))
            m = dfrcl.Model.load(MODEL_PATH, context=ctx)
            paths = test_images()
            res = m.score_files(paths, batch=1, threads=2)
            for r, p in zip(res, paths):
                self.assertIn(r.device, range(len(ctx.devices)))
                np.testing.assert_allclose(r.map, self.model.score(p)[0], rtol=1e-5, atol=1e-6)
            mt = dfrcl.evaluate(m, DATA)
            ref = dfrcl.evaluate(self.model, DATA)
            for k in ("pixel_auroc", "image_auroc", "aupro", "images"):
                self.assertAlmostEqual(mt[k], ref[k], delta=1e-6, msg=k)

    def test_evaluate_matches_cli(self):
        jpath = os.path.join(TMP, "py-eval.json")
        out = os.path.join(TMP, "py-eval")
        mt = dfrcl.evaluate(self.model, DATA, out_dir=out, json_path=jpath)
        self.assertTrue(os.path.exists(os.path.join(out, "report.html")))
        self.assertEqual(mt["images"], 2 + 3)
        self.assertEqual(mt["defective_images"], 3)
        with open(jpath) as f:
            own = json.load(f)["metrics"]
        for key, v in own.items():
            self.assertIn(key, mt)
            if v is None:
                self.assertTrue(math.isnan(mt[key]), key)
            else:
                self.assertAlmostEqual(mt[key], v, delta=1e-9 * max(1, abs(v)), msg=key)
        if not EXE:
            return
        cpath = os.path.join(TMP, "cli-eval.json")
        subprocess.run([EXE, "eval", "-q", "--model", MODEL_PATH, "--random-backbone", str(SEED),
                        "--data", DATA, "--json", cpath], check=True, capture_output=True)
        with open(cpath) as f:
            cli = json.load(f)["metrics"]
        self.assertTrue(set(cli) <= set(mt), set(cli) - set(mt))
        for key, v in cli.items():
            if v is None:
                self.assertTrue(math.isnan(mt[key]), key)
            else:
                self.assertAlmostEqual(mt[key], v, delta=1e-6 * max(1, abs(v)), msg=key)

    def test_context_log_and_lifetimes(self):
        msgs = []
        ctx = dfrcl.Context(verbosity=2, log=lambda level, m: msgs.append((level, m)))
        self.assertTrue(msgs, "the context's logger got no message at verbosity 2")
        self.assertTrue(all(isinstance(m, str) and not m.endswith("\n") for _, m in msgs))
        self.assertEqual(ctx.devices[0]["name"], ctx.device["name"])
        bb = dfrcl.Backbone.random(ctx, SEED, layers=LAYERS)
        m = dfrcl.Model.load(MODEL_PATH, backbone=bb)
        img = test_images()[0]
        np.testing.assert_array_equal(m.score(img)[0], self.model.score(img)[0])
        feat = bb.features(img, SIZE)
        self.assertEqual(feat.shape, (bb.channels, SIZE // 4, SIZE // 4))
        ctx.close()  # closes the model, then the backbone, then the context
        self.assertTrue(m.closed and bb.closed and ctx.closed)
        with self.assertRaises(dfrcl.Error):
            m.score(img)
        m.close()  # twice is harmless
        ctx.close()


if __name__ == "__main__":
    if not dfrcl.devices():
        print("skip: no OpenCL device")
        sys.exit(77)
    # test_python.py EXE [TestPython.test_name ...]: only those
    prog = unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:], exit=False)
    r = prog.result
    if r.wasSuccessful() and r.testsRun and len(r.skipped) == r.testsRun:
        sys.exit(77)  # everything asked for was skipped (one device for test_two_devices)
    sys.exit(0 if r.wasSuccessful() else 1)
