"""Paired CPU seconds of two binhub trees streaming the same store (``binhub stream --to jsonl:``).

    .venv/bin/python bench/stream_pair.py --base OTHER_TREE STORE [--rounds 7]

OTHER_TREE is a checkout of another commit (``git archive COMMIT | tar -x -C DIR``, its C speedups
built or copied in); this tree is the other side. Each round runs both (alternating which goes
first, so load hits both alike) with ``PYTHONPATH`` set to the tree, ``.pyc`` written, after one
warm-up run each; CPU is the process's user+sys (``os.wait4``). Prints the medians and whether
the two outputs (JSON lines and checkpoint) are byte-identical.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE_TREE = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--base", type=Path, required=True, help="the other tree")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    trees = {"base": args.base.resolve(), "this": HERE_TREE}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    work = Path(tempfile.mkdtemp(prefix="stream-pair-"))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}

    def run(name: str) -> tuple[float, float]:
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "binhub", "stream", "--data-dir", str(args.store), "--to",
                                 f"jsonl:{out}", "--until-caught-up", "--log-level", "warning"],
                                env=dict(env, PYTHONPATH=str(trees[name])), cwd=work)
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"{name}: binhub stream failed ({status})")
        return time.perf_counter() - began, usage.ru_utime + usage.ru_stime

    try:
        for name in trees:
            run(name)  # warm-up: .pyc, page cache
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                results[name].append(run(name))
            print(f"round {r + 1}: " + ", ".join(f"{n} {w:.2f} s wall {c:.2f} s CPU" for n, (w, c) in
                                                ((n, v[-1]) for n, v in results.items()))
                  + f"; load {os.getloadavg()[0]:.1f}", flush=True)
        for name, runs in results.items():
            print(f"{name}: CPU median {statistics.median(c for _, c in runs):.2f} s, best "
                  f"{min(c for _, c in runs):.2f} s; wall median {statistics.median(w for w, _ in runs):.2f} s")
        names = sorted(os.listdir(work / "base"))
        same = names == sorted(os.listdir(work / "this")) and all(
            filecmp.cmp(work / "base" / f, work / "this" / f, shallow=False) for f in names)
        print("outputs identical:", same)
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
