#!/usr/bin/env python3
"""The bad-input suite: every case builds a small hostile input in its own folder (from the
generators in gen.py, nothing large is committed), runs one dfrcl command and checks that

  - the exit code is the expected one (a signal, a hang past the case's timeout: FAIL),
  - the output names the file (or option) and says what is wrong (a regular expression),
  - no sanitizer report is in the output,
  - no file is left at the command's final output path when it failed,
  - no temp file (*.tmp.* or .dfrcl-tmp*) is left anywhere in the case's folder.

Usage: run.py DFRCL REPO_ROOT [--jobs N] [--only REGEX] [--list] [--keep]

Case ids are stable (class/name); known_failures.txt lists the ids that fail on the current code
for a known reason not yet fixed: those report XFAIL (and XPASS once they pass) and do not fail
the suite. Python 3 standard library only."""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402

SANITIZER = re.compile(rb'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:')
TEMP = re.compile(r'\.tmp\.|^\.dfrcl-tmp')


def temp_files(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            s = os.fsdecode(n)
            if TEMP.search(s):
                found.append(os.path.relpath(os.path.join(root, n), folder))
    return found


def run_cmd(argv, cwd, env, timeout, on_start=None):
    """Runs argv with its output in a file; returns (rc or None on timeout, output bytes,
    peak RSS in KiB). A process group, so a hang is killed with everything it started."""
    out_path = os.path.join(cwd, '.case-output')
    with open(out_path, 'wb') as out:
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        if on_start:
            on_start(p, out_path)
        t_end = time.monotonic() + timeout
        rc, rss = None, 0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                rss = ru.ru_maxrss
                p.returncode = rc
                break
            if time.monotonic() > t_end:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = -9
                rss = ru.ru_maxrss
                break
            time.sleep(0.02)
    with open(out_path, 'rb') as f:
        output = f.read()
    os.unlink(out_path)
    return rc, output, rss


def check(case, cdir, rc, output, rss):
    """The reasons a finished case fails ([] when it passes)."""
    why = []
    text = output.decode('utf-8', 'replace')
    if rc is None:
        why.append('did not finish within %d s (a hang?)' % case.timeout)
    elif rc < 0:
        why.append('killed by signal %d' % -rc)
    elif rc not in case.rc:
        why.append('exit %d, want %s' % (rc, ' or '.join(map(str, case.rc))))
    if SANITIZER.search(output):
        why.append('sanitizer report in the output')
    if rc is not None and rc != 0:
        for name in case.names:  # a name, or a tuple of names any of which will do
            alts = [os.fsencode(n) for n in (name if isinstance(name, tuple) else (name,))]
            lines = output.splitlines()
            if case.name_on_error_line:
                ok = any(nb in ln and re.search(rb'error|warning|cannot|refus', ln, re.I)
                         for ln in lines for nb in alts)
            else:
                ok = any(nb in output for nb in alts)
            if not ok:
                why.append('no error line names %s' % ' or '.join(map(repr, alts)))
    elif rc == 0:
        for name in case.names_ok:
            if os.fsencode(name) not in output:
                why.append('output does not mention %r' % name)
    if rc is not None and rc != 0 and case.pat and not re.search(case.pat, text, re.I | re.M):
        why.append('no line matches /%s/' % case.pat)
    if rc == 0 and case.pat_ok and not re.search(case.pat_ok, text, re.I | re.M):
        why.append('no line matches /%s/' % case.pat_ok)
    if case.forbid and re.search(case.forbid, text, re.I | re.M):
        why.append('output matches the forbidden /%s/' % case.forbid)
    if rc != 0:
        for p in case.absent:
            if os.path.lexists(os.path.join(cdir, p)):
                why.append('left %s behind' % p)
    else:
        for p in case.present:
            if not os.path.exists(os.path.join(cdir, p)):
                why.append('exit 0 but %s was not written' % p)
    tmp = temp_files(cdir)
    if tmp:
        why.append('temp files left: %s' % ', '.join(tmp[:3]))
    if case.max_rss_mib and rss > case.max_rss_mib * 1024:
        why.append('peak memory %d MiB, over %d MiB' % (rss // 1024, case.max_rss_mib))
    if case.check and rc is not None:
        extra = case.check(cdir, rc, output)
        if extra:
            why.append(extra)
    return why


def run_case(case, ctx):
    cdir = os.path.join(ctx.work, 'cases', case.id.replace('/', '__'))
    os.makedirs(cdir)
    if case.skip:
        return 'skip', [case.skip], 0.0
    t0 = time.monotonic()
    try:
        spec = case.build(cdir, ctx)
    except cases.Skip as e:
        return 'skip', [str(e)], 0.0
    env = dict(ctx.env)
    env.update(spec.get('env', {}))
    for k in spec.get('unset', []):
        env.pop(k, None)
    argv = [ctx.dfrcl] + spec['argv']
    cwd = os.path.join(cdir, spec.get('cwd', ''))
    rc, output, rss = run_cmd(argv, cwd, env, case.timeout, spec.get('on_start'))
    why = check(case, cdir, rc, output, rss)
    # A second command (a rerun after an interruption, a run after a self-healing cache).
    if not why and spec.get('then'):
        then = spec['then']
        rc2, out2, _ = run_cmd([ctx.dfrcl] + then['argv'], cwd, env, case.timeout)
        if rc2 != then.get('rc', 0):
            why.append('the follow-up command exited %s, want %d' % (rc2, then.get('rc', 0)))
        if SANITIZER.search(out2):
            why.append('sanitizer report in the follow-up output')
        output += b'\n--- follow-up ---\n' + out2
    return ('fail' if why else 'ok'), (why, output, rc), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('dfrcl')
    ap.add_argument('root')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--only', help='run only the cases whose id matches this regex')
    ap.add_argument('--list', action='store_true', help='list the case ids and exit')
    ap.add_argument('--keep', action='store_true', help='keep the work folder')
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    all_cases = cases.all_cases()
    ids = [c.id for c in all_cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        sys.exit('duplicate case ids: %s' % ', '.join(sorted(dup)))
    if a.list:
        print('\n'.join(ids))
        return 0
    known = set()
    with open(os.path.join(here, 'known_failures.txt')) as f:
        for ln in f:
            ln = ln.split('#', 1)[0].strip()
            if ln:
                known.add(ln)
    unknown = known - set(ids)
    if unknown:
        print('note: known_failures.txt lists ids that are no cases: %s' % ', '.join(sorted(unknown)))
    sel = [c for c in all_cases if not a.only or re.search(a.only, c.id)]

    work = tempfile.mkdtemp(prefix='dfrcl-bad-inputs-')
    env = dict(os.environ)
    env.setdefault('DFRCL_CACHE_DIR', os.path.join(work, 'kernel-cache'))
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=0')
    env.pop('DFRCL_WEIGHTS', None)
    env.pop('DFRCL_DEVICE', None)
    ctx = cases.Context(os.path.abspath(a.dfrcl), os.path.abspath(a.root), work, env)
    t0 = time.monotonic()
    try:
        cases.setup(ctx, run_cmd)
    except Exception as e:  # the suite cannot run at all: say why, fail
        print('bad_inputs: setup failed: %s' % e)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 1
    print('bad_inputs: setup in %.1f s, %d cases, work folder %s' % (time.monotonic() - t0,
                                                                      len(sel), work))
    sys.stdout.flush()
    counts = {'ok': 0, 'FAIL': 0, 'XFAIL': 0, 'XPASS': 0, 'SKIP': 0}
    lock = threading.Lock()

    def one(case):
        try:
            status, detail, secs = run_case(case, ctx)
        except Exception as e:
            status, detail, secs = 'fail', (['the case could not be built: %r' % e], b'', None), 0
        xf = case.id in known
        with lock:
            if status == 'skip':
                counts['SKIP'] += 1
                print('SKIP %s (%s)' % (case.id, detail[0]))
            elif status == 'ok':
                label = 'XPASS' if xf else 'ok'
                counts[label] += 1
                print('%s %s (%.1f s)%s' % (label, case.id, secs,
                                            ' : remove it from known_failures.txt' if xf else ''))
            else:
                why, output, rc = detail
                label = 'XFAIL' if xf else 'FAIL'
                counts[label] += 1
                print('%s %s: %s' % (label, case.id, '; '.join(why)))
                if not xf:
                    for ln in output.decode('utf-8', 'replace').splitlines()[-12:]:
                        print('    | ' + ln[:300])
            sys.stdout.flush()

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        list(ex.map(one, sel))
    passed = counts['ok'] + counts['XPASS']
    print('bad_inputs: %d expected failures (XFAIL), %d unexpected passes (XPASS)'
          % (counts['XFAIL'], counts['XPASS']))
    print('bad_inputs: %.0f s' % (time.monotonic() - t0))
    print('bad_inputs: %d passed, %d failed, %d skipped' % (passed, counts['FAIL'], counts['SKIP']))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if counts['FAIL'] else 0


if __name__ == '__main__':
    sys.exit(main())
