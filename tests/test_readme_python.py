"""The README's Python example ("## Use from Python") runs as written, in an empty folder, and
prints what it says: a score, the metrics, an error naming the missing file.

Usage: test_readme_python.py REPO_ROOT   (env: DFRCL_LIBRARY, PYTHONPATH=python/)
Exits 77 (skipped) without NumPy or without an OpenCL device.
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import numpy  # noqa: F401
except ImportError:
    print("skip: no NumPy for %s (Debian: apt install python3-numpy)" % sys.executable)
    sys.exit(77)

readme = open(os.path.join(sys.argv[1], "README.md"), encoding="utf-8").read()
m = re.search(r"^## Use from Python\n.*?^```python\n(.*?)^```$", readme, re.S | re.M)
if not m:
    print("FAIL: no ```python block under '## Use from Python' in README.md")
    sys.exit(1)
code = m.group(1)

import dfrcl  # noqa: E402

if not dfrcl.devices():
    print("skip: no OpenCL device")
    sys.exit(77)

with tempfile.TemporaryDirectory(prefix="dfrcl-readme-py-") as tmp:
    with open(os.path.join(tmp, "example.py"), "w") as f:
        f.write(code)
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp, capture_output=True, text=True)
    print(r.stdout, r.stderr, sep="")
    want = [r"^score \d+\.\d+, anomalous: (True|False)$",
            r"^pixel AUROC \d\.\d+, AUPRO \d\.\d+$",
            r"^error: .*missing\.png.*\(DFRCL_ERR_IO\)$"]
    missing = [w for w in want if not re.search(w, r.stdout, re.M)]
    if r.returncode != 0 or missing:
        print("FAIL: the README's Python example exited %d; lines not printed: %s"
              % (r.returncode, missing))
        sys.exit(1)
    for f in ("fabric.safetensors", "fabric-eval/report.html"):
        if not os.path.exists(os.path.join(tmp, f)):
            print("FAIL: the example did not write " + f)
            sys.exit(1)
print("ok: the README's Python example runs")
