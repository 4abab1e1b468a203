"""One place for concurrency: an Image Generate's threads stay within max_in_flight + 4, and urllib3
throws no connection away ("Connection pool is full"), however many images it makes.

Counted, not timed: in a fresh interpreter with the sandbox in-process over real HTTP, every thread
start is seen, so the peak is exact (scripts/benchmark_concurrency.py, which the benchmark runs with
50 images at max_in_flight 8, 16 and 64). The connection pool is sized from the same setting as the
run's pool, so a batch far larger than either must log no warning.
"""

from __future__ import annotations

import threading

import pytest
from benchmark_concurrency import measure

from conftest import pack_module
from node_runner import image_args, run

clients = pack_module("nodes.clients")
config = pack_module("nodes.api.config")
run_mod = pack_module("nodes.run")


@pytest.mark.parametrize("max_in_flight, images", [(2, 16), (16, 36)])
def test_a_generate_stays_within_max_in_flight_plus_four_threads_and_keeps_its_connections(max_in_flight, images):
    got = measure(images, max_in_flight, job_seconds=0.3, timeout=240)
    assert got["jobs"] == images
    # The caller, the node's thread, the pool's max_in_flight workers and the one download watch thread.
    assert 3 <= got["peak_threads"] <= max_in_flight + 4, got
    assert got["pool_full_warnings"] == 0, got["first_warning"]



@pytest.mark.usefixtures("fresh_runtime")
def test_downloads_start_no_thread_of_their_own(sandbox, monkeypatch):
    """Each download's deadline is watched by the process's one watch thread: once it and the pool's workers
    exist, downloads (four at once here) start no thread at all."""
    ids = run("3DLabsImageGenerate", **image_args(["a", "b", "c", "d"]))[2].split("\n")  # both exist after it
    client = clients.client_for()
    refs = [ref for job_id in ids for ref in client.image_refs_of(client.get_job(job_id))]
    started = []
    real_start = threading.Thread.start

    def spy(thread):
        if not threading.current_thread().name.startswith("sandbox-"):  # the sandbox serves each connection
            started.append(thread.name)
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy)
    size = config.load_settings().max_in_flight
    futures = [run_mod.submit(size, client.fetch_image, ref) for ref in refs]
    assert len(refs) == 4 and all(future.result(timeout=60)[:8] == b"\x89PNG\r\n\x1a\n" for future in futures)
    assert [name for name in started if not name.startswith("3dlabs-run")] == [], started
