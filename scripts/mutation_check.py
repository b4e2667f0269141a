#!/usr/bin/env python3
"""Plant known bugs in the trainer one at a time and check that the tests catch each of them.

    python scripts/mutation_check.py                 # every mutation, default tests
    python scripts/mutation_check.py --list          # what would be planted, nothing run
    python scripts/mutation_check.py -m a -m g       # only these
    python scripts/mutation_check.py --tests "python_tests/test_trainer_runner.py"

Each mutation is an exact text substitution in one file of the working tree (no copy of the
repository): the file is read, the substitution applied in memory, the mutated text written, the
tests run in a subprocess, and the original bytes written back in a ``finally`` (also on Ctrl-C /
SIGTERM). Other engineers edit these files concurrently, so:

* a pattern that is not found exactly the expected number of times aborts that mutation with a
  clear message (the code moved: update the pattern), it is never guessed;
* before restoring, the file is compared with what was written; if someone saved it in between,
  only the planted text is reverted in their version (and a warning printed) instead of
  overwriting their edit;
* the test subprocess keeps its bytecode in a private ``PYTHONPYCACHEPREFIX`` (removed at the
  end), never in the shared ``__pycache__``, and the restored file gets a modification time at
  least a second after the mutated one, so no stale bytecode of a mutant can outlive the run;
* the tests first run once on the unmutated code; if they fail there, nothing is mutated.

Keep runs short and rare: while a mutant is planted, anyone importing the trainer gets the bug.
Exit status: 0 when every mutation was killed, 1 when one survived, 2 on a setup problem.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "graphpro_ext/graphpro"
DEFAULT_TESTS = "python_tests/test_trainer_runner.py python_tests/test_trainer_method.py"


@dataclass
class Mutation:
    key: str
    what: str
    path: str  # relative to the repository root
    old: str
    new: str
    count: int = 1  # occurrences of ``old`` expected (all are replaced)


MUTATIONS = [
    # --- the eight of issue 9 ---------------------------------------------------------------
    Mutation("a", "previous stages loaded oldest-first for the interpolative update",
             f"{PKG}/methods/graphpro.py",
             "recent = [runner.load_table(method, n - 1 - i) for i in range(w)]",
             "recent = [runner.load_table(method, n - w + i) for i in range(w)]"),
    Mutation("b", "interpolative update starts one stage late",
             f"{PKG}/methods/graphpro.py",
             "if not spec.iu or n - 1 < w:",
             "if not spec.iu or n - 1 <= w:"),
    Mutation("c", "prompt graph includes snapshot n itself",
             f"{PKG}/methods/graphpro.py",
             "sample_prompt(data.snapshots[:n - 1],",
             "sample_prompt(data.snapshots[:n],"),
    Mutation("d", "sign of the sampling decay flipped",
             f"{PKG}/methods/graphpro.py",
             "data.snapshots[:n - 1], cfg.sample_decay,",
             "data.snapshots[:n - 1], -cfg.sample_decay,"),
    Mutation("e", "tuned and cold user groups swapped",
             f"{PKG}/metrics.py",
             '(("tuned", es.tuned), ("cold", ~es.tuned))',
             '(("tuned", ~es.tuned), ("cold", es.tuned))'),
    Mutation("f1", "validation mask built with the held-out part instead of the training part",
             f"{PKG}/stages.py",
             "h = Interactions.concat([self.history(n - 1), train])",
             "h = Interactions.concat([self.history(n - 1), val])"),
    Mutation("f2", "validation mask includes the held-out pairs",
             f"{PKG}/stages.py",
             "h = Interactions.concat([self.history(n - 1), train])",
             "h = Interactions.concat([self.history(n - 1), train, val])"),
    Mutation("g", "negatives may be held-out validation items",
             f"{PKG}/methods/base.py",
             "snap = Interactions.concat([train, val])",
             "snap = Interactions.concat([train])"),
    Mutation("h", "random gate without row normalisation (W and b)",
             f"{PKG}/methods/graphpro.py",
             "w = F.normalize(torch.randn(d, d, generator=generator), dim=1).to(x)\n"
             "    b = F.normalize(torch.randn(1, d, generator=generator), dim=1).to(x)",
             "w = torch.randn(d, d, generator=generator).to(x)\n"
             "    b = torch.randn(1, d, generator=generator).to(x)"),
    # --- further ones worth keeping dead -----------------------------------------------------
    Mutation("h_w", "random gate: W rows not normalised",
             f"{PKG}/methods/graphpro.py",
             "w = F.normalize(torch.randn(d, d, generator=generator), dim=1).to(x)",
             "w = torch.randn(d, d, generator=generator).to(x)"),
    Mutation("h_b", "random gate: b not normalised",
             f"{PKG}/methods/graphpro.py",
             "b = F.normalize(torch.randn(1, d, generator=generator), dim=1).to(x)",
             "b = torch.randn(1, d, generator=generator).to(x)"),
    Mutation("h_col", "random gate: W normalised by columns instead of rows",
             f"{PKG}/methods/graphpro.py",
             "w = F.normalize(torch.randn(d, d, generator=generator), dim=1).to(x)",
             "w = F.normalize(torch.randn(d, d, generator=generator), dim=0).to(x)"),
    Mutation("i", "no random gate before the prompt propagation",
             f"{PKG}/methods/graphpro.py",
             "random_gate(start, gen)", "start"),
    Mutation("j", "prompt graph built with the fine-tuning tau",
             f"{PKG}/methods/graphpro.py",
             "Interactions.concat([data.pretrain, *prev]), cfg.tau_pretrain)",
             "Interactions.concat([data.pretrain, *prev]), cfg.tau_finetune)"),
    Mutation("k", "prompt propagation without the temporal prompt",
             f"{PKG}/methods/graphpro.py",
             "tw = cfg.time_weight if time_weight is None else time_weight",
             "tw = 0.0 if time_weight is None else time_weight"),
    Mutation("l", "prompt graph without the pre-training graph",
             f"{PKG}/methods/graphpro.py",
             "Interactions.concat([data.pretrain, *prev])",
             "Interactions.concat([*prev])"),
    Mutation("m", "eq. (8) rates counted from the wrong end",
             f"{PKG}/methods/graphpro.py",
             "return rates if phi >= 0 else rates[::-1]",
             "return rates[::-1] if phi >= 0 else rates"),
    Mutation("n", "interpolation weights: oldest stage weighs most by default",
             f"{PKG}/methods/graphpro.py",
             "w = torch.arange(window, 0, -1, dtype=torch.float64)",
             "w = torch.arange(1, window + 1, dtype=torch.float64)"),
    Mutation("o", "interpolation without row normalisation",
             f"{PKG}/methods/graphpro.py",
             "return F.normalize(0.5 * pretrained + 0.5 * mix, dim=1)",
             "return 0.5 * pretrained + 0.5 * mix"),
    Mutation("p", "only the last table kept on disk (window > 1 reads a deleted x_n)",
             f"{PKG}/methods/graphpro.py",
             "return cfg.window  # eq. (14)",
             "return 1  # eq. (14)"),
    Mutation("q", "stages train on the held-out pairs too",
             f"{PKG}/methods/base.py",
             "g = runner.graph(train, cfg.tau_finetune)",
             "g = runner.graph(Interactions.concat([train, val]), cfg.tau_finetune)"),
    Mutation("r", "test mask misses snapshot n",
             f"{PKG}/stages.py",
             "h = self.history(n)\n        tuned",
             "h = self.history(n - 1)\n        tuned"),
    Mutation("s", "tuned users = every user of snapshot n (held-out-only users included)",
             f"{PKG}/stages.py",
             "tuned = unique(self.split(n)[0].users)",
             "tuned = unique(self.data.snapshots[n - 1].users)"),
    Mutation("t", "learnable gate without its bias",
             f"{PKG}/models/lightgcn.py",
             "return x * torch.sigmoid(full @ self.gate_w + self.gate_b)",
             "return x * torch.sigmoid(full @ self.gate_w)"),
    Mutation("u", "validation mask misses the earlier snapshots",
             f"{PKG}/stages.py",
             "h = Interactions.concat([self.history(n - 1), train])",
             "h = Interactions.concat([self.data.pretrain, train])"),
]


class Abort(Exception):
    pass


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def plant(m: Mutation) -> tuple[str, bytes, bytes]:
    """(absolute path, original bytes, mutated bytes), without writing anything."""
    path = os.path.join(ROOT, m.path)
    if not os.path.exists(path):
        raise Abort(f"[{m.key}] {m.path}: no such file")
    with open(path, "rb") as f:
        orig = f.read()
    text = orig.decode("utf-8")
    found = text.count(m.old)
    if found != m.count:
        raise Abort(f"[{m.key}] {m.path}: pattern found {found} times, expected {m.count}; the "
                    f"code moved, update the pattern in scripts/mutation_check.py:\n    {m.old!r}")
    return path, orig, text.replace(m.old, m.new).encode("utf-8")


def restore(m: Mutation, path: str, orig: bytes, mutated: bytes, t_written: float) -> None:
    """Put the original back, never clobbering an edit someone saved while the mutant ran."""
    wait = t_written + 1.05 - time.time()
    if wait > 0:  # restored mtime in a later second than the mutant's: no stale .pyc can match
        time.sleep(wait)
    with open(path, "rb") as f:
        now = f.read()
    if now == mutated:
        _write(path, orig)
        return
    text = now.decode("utf-8", errors="surrogateescape")
    if text.count(m.new) == m.count and m.new not in orig.decode("utf-8"):
        _write(path, text.replace(m.new, m.old).encode("utf-8", errors="surrogateescape"))
        print(f"WARNING [{m.key}] {m.path} was edited by someone else while the mutant ran; "
              "reverted only the planted text in their version", file=sys.stderr)
        return
    print(f"ERROR [{m.key}] {m.path} was edited by someone else while the mutant ran and the "
          f"planted text cannot be located; FIX BY HAND: replace\n    {m.new!r}\nwith\n    "
          f"{m.old!r}", file=sys.stderr)
    raise Abort(f"could not restore {m.path}")


def run_tests(cmd: list[str], env: dict, timeout: float) -> tuple[bool, str, float]:
    """(passed, short reason, seconds)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout:.0f}s", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    if p.returncode == 0:
        return True, "", dt
    out = p.stdout + p.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.MULTILINE)
    if failed:
        why = ", ".join(dict.fromkeys(f.split("::", 1)[-1] for f in failed))
    else:
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        why = f"exit {p.returncode}: {lines[-1][:80] if lines else ''}"
    return False, why, dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mutation", action="append", default=[],
                    help="run only these keys (repeatable); default: all")
    ap.add_argument("--tests", default=DEFAULT_TESTS,
                    help=f"pytest arguments (default: {DEFAULT_TESTS!r})")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    ap.add_argument("--all-failures", action="store_true",
                    help="run each mutant's tests to the end (no -x) and list every test that "
                         "catches it (slower)")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not run the tests on the unmutated code first")
    args = ap.parse_args(argv)

    chosen = MUTATIONS
    if args.mutation:
        known = {m.key: m for m in MUTATIONS}
        bad = [k for k in args.mutation if k not in known]
        if bad:
            print(f"unknown mutation(s) {bad}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        chosen = [known[k] for k in args.mutation]
    if args.list:
        for m in chosen:
            print(f"{m.key:6s} {m.path:32s} {m.what}")
        return 0
    # every pattern must be present before anything is touched
    try:
        for m in chosen:
            plant(m)
    except Abort as e:
        print(f"ABORT: {e}", file=sys.stderr)
        return 2

    cache = tempfile.mkdtemp(prefix="mutation-pycache-")
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the private cache is reused by every mutant run
    try:
        return _run_all(args, chosen, cmd_env=env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run_all(args, chosen, cmd_env) -> int:
    env = cmd_env
    cmd = [sys.executable, "-m", "pytest", *([] if args.all_failures else ["-x"]), "-q",
           "-p", "no:cacheprovider", *shlex.split(args.tests)]
    print(f"tests: {' '.join(cmd[1:])}")

    def on_term(signum, frame):  # SIGTERM -> KeyboardInterrupt, so the finally restores
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    if not args.skip_baseline:
        ok, why, dt = run_tests(cmd, env, args.timeout)
        print(f"baseline (no mutation): {'pass' if ok else 'FAIL: ' + why} ({dt:.1f}s)")
        if not ok:
            print("the tests fail on the unmutated code; nothing mutated", file=sys.stderr)
            return 2

    rows = []
    for m in chosen:
        try:
            path, orig, mutated = plant(m)  # re-read now: the file may have changed meanwhile
        except Abort as e:
            print(f"ABORT: {e}", file=sys.stderr)
            rows.append((m, "ABORTED", "pattern not found", 0.0))
            continue
        t_written = time.time()
        try:
            _write(path, mutated)
            t_written = time.time()
            ok, why, dt = run_tests(cmd, env, args.timeout)
        finally:
            try:
                restore(m, path, orig, mutated, t_written)
            except Abort as e:
                print(f"ABORT: {e}", file=sys.stderr)
                return 2
        rows.append((m, "SURVIVED" if ok else "killed", why, dt))
        print(f"  {m.key:6s} {'SURVIVED' if ok else 'killed':8s} {dt:6.1f}s  {why}", flush=True)

    print()
    w = max(len(m.what) for m, *_ in rows) if rows else 10
    kw = max([3] + [len(m.key) for m, *_ in rows])
    print(f"| {'key':{kw}s} | {'mutation':{w}s} | result   | caught by")
    print(f"|{'-' * (kw + 2)}|{'-' * (w + 2)}|----------|----------")
    for m, res, why, _ in rows:
        print(f"| {m.key:{kw}s} | {m.what:{w}s} | {res:8s} | {why}")
    survived = [m.key for m, res, *_ in rows if res != "killed"]
    if survived:
        print(f"\nnot killed: {', '.join(survived)}")
        return 1
    print(f"\nall {len(rows)} mutations killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
