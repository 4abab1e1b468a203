"""Threads and connections of one Image Generate: the benchmark's concurrency figures, and the test's.

Each measurement runs in a fresh interpreter with the sandbox in-process on loopback: one Image
Generate of ``images`` prompts at THREEDLABS_MAX_IN_FLIGHT ``max_in_flight``. Every thread start is
seen (``threading.Thread.start`` is wrapped), so the peak is exact, not sampled: the most threads
alive at once in the process, the caller's included, the sandbox's own not (its servers, the
threads they start, its renderer: the service's side, not the pack's). urllib3's logger is captured
for "Connection pool is full" warnings, which mean connections were opened and thrown away.

    .venv/bin/python scripts/benchmark_concurrency.py [--images 50] [--max-in-flight 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import asyncio, json, logging, os, sys, threading, time
sys.path.insert(0, sys.argv[1] + "/scripts")
from demo import load_pack

server_side, lock = set(), threading.Lock()
live = [threading.main_thread()]
peak = [1]
real_start = threading.Thread.start

def pack_threads():
    return [t for t in threading.enumerate() if t not in server_side]

def start(thread):
    # The sandbox's threads, and every thread one of them starts, are the service's, not the pack's.
    starter = threading.current_thread()
    if starter in server_side or thread.name.startswith("sandbox-"):
        with lock:
            server_side.add(thread)
    real_start(thread)
    with lock:
        peak[0] = max(peak[0], len(pack_threads()))

threading.Thread.start = start
full = []

class Full(logging.Handler):
    def emit(self, record):
        if "Connection pool is full" in record.getMessage():
            full.append(record.getMessage())

urllib3_log = logging.getLogger("urllib3")
urllib3_log.addHandler(Full(logging.WARNING))
urllib3_log.setLevel(logging.WARNING)

images, job_seconds = int(sys.argv[2]), float(sys.argv[3])
pack, mod = load_pack()
sandbox = mod("sandbox.server").SandboxServer(job_seconds=job_seconds).start()
os.environ.update(THREEDLABS_BASE_URL=sandbox.api_url, THREEDLABS_TOKEN=sandbox.static_token)
prompts = [f"scene {i}: a lighthouse in fog, shot {i}" for i in range(images)]
with lock:
    before = len(pack_threads())
    peak[0] = before
node = pack.NODE_CLASS_MAPPINGS["3DLabsImageGenerate"]()
loop = asyncio.new_event_loop()  # lives on, as ComfyUI's does: closing it would start a thread of its own
t0 = time.perf_counter()
out = loop.run_until_complete(node.run(prompt=prompts, provider=["replicate"], model=["flux-schnell"],
                                       aspect_ratio=["16:9"], scene_number=[0], seed=[int(time.time())],
                                       wait=[True]))
seconds = time.perf_counter() - t0
with lock:
    measured = peak[0]
assert out["result"][0].shape[0] == images, out["result"][0].shape
sandbox.stop()
print(json.dumps({"peak_threads": measured, "threads_before": before, "pool_full_warnings": len(full),
                  "first_warning": full[0] if full else None, "seconds": seconds,
                  "jobs": sandbox.stats()["jobs_created_total"]}))
"""


def measure(images: int = 50, max_in_flight: int = 8, job_seconds: float = 2.0, timeout: float = 300) -> dict:
    """One Image Generate of ``images`` prompts in a fresh process: its peak threads (the caller's
    included), the threads alive before it, its "Connection pool is full" warnings and its seconds."""
    with tempfile.TemporaryDirectory(prefix="3dlabs-threads-") as user_dir:
        env = {**os.environ, "THREEDLABS_USER_DIR": user_dir, "THREEDLABS_REUSE": "0",
               "THREEDLABS_MAX_IN_FLIGHT": str(max_in_flight), "THREEDLABS_MAX_JOBS": str(max(50, images))}
        for name in ("THREEDLABS_BASE_URL", "THREEDLABS_TOKEN", "THREEDLABS_TOKEN_COMMAND", "THREEDLABS_PROFILE",
                     "THREEDLABS_WORKSPACE_ID", "THREEDLABS_DRY_RUN"):
            env.pop(name, None)
        out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(images), str(job_seconds)],
                             capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"the probe failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "images": images, "max_in_flight": max_in_flight}


def bench_concurrency(row, images: int = 50, settings: tuple[int, ...] = (8, 16, 64)) -> None:
    """The benchmark's rows: at each max_in_flight, the peak threads and the pool-full warnings."""
    for max_in_flight in settings:
        got = measure(images, max_in_flight)
        bound, peak, full = max_in_flight + 4, got["peak_threads"], got["pool_full_warnings"]
        row(f"threads and connections: {images}-image Generate at max_in_flight {max_in_flight}",
            f"peak {peak} threads (caller included), {full} 'Connection pool is full' warnings; "
            f"{got['seconds']:.1f} s", "-", f"{peak / bound:.2f}x the thread bound",
            f"<= {bound} threads, no warning: {'met' if peak <= bound and not full else 'MISSED'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.images, args.max_in_flight, args.job_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
