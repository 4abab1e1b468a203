"""The fault matrix, continued: meaningful combinations of sandbox fault flags against every node,
every image result shape, the two nodes that make no request, and what queueing again does once a
fault has cleared (it resumes the paid job: nothing is paid twice).

The expectations and the runner are those of test_reliability_faults.py (same tuned-down delays).
"""

from __future__ import annotations

import pytest
from test_reliability_faults import (  # noqa: F401  fast, keep_rendered_pngs, matrix_tally: autouse fixtures
    ALONE,
    JOBS_MADE,
    NODES,
    OK,
    SERVER_OR_RATE,
    E,
    Expect,
    Journal,
    batch_of,
    check,
    clients,
    errors,
    everywhere,
    fast,
    keep_rendered_pngs,
    matrix_tally,
    models,
    ok_everywhere,
    run,
    run_node,
    submit_failed,
    unknown_status,
)

from conftest import pack_module

run_mod = pack_module("nodes.run")
spend = pack_module("nodes.spend")

COMBINED: dict[str, tuple[dict, dict, dict]] = {
    # A bad day that must still deliver: flaky reads, GET resets, shifting shapes, late visibility.
    "error_rate+reset_gets+rotate+404+latency+images_objects": (
        {"error_rate": 0.2, "reset_rate": 0.1, "reset_gets_only": True, "envelope": "rotate",
         "job_404_seconds": 0.3, "latency_ms": 5, "image_shape": "images_objects", "fault_seed": 11},
        ok_everywhere(), {}),
    "post_error_rate+empty_200+malformed+b64": (
        {"post_error_rate": 0.3, "empty_200": 0.3, "malformed_json": 0.2, "image_shape": "b64", "fault_seed": 5},
        ok_everywhere(), {}),
    # The job is made and fails, and its answer is lost: the user hears "may exist", never "failed".
    "fail_jobs+drop_after_create": (
        {"fail_jobs": True, "drop_after_create": True},
        {**submit_failed(E.MaybeSubmittedError, "the job may exist", "not re-sent", jobs=1),
         "wait": Expect(E.JobFailedError, ("generation failed (injected)",), names_job=True)}, {}),
    # Flaky polls do not turn a job that is still running into "status unknown": it times out.
    "hang_jobs+error_rate": (
        {"hang_jobs": True, "error_rate": 0.3, "fault_seed": 3},
        {"story": Expect(E.JobTimeoutError, ("did not finish in time",), names_job=True),
         "plan": Expect(E.JobTimeoutError, ("did not finish in time",), names_job=True),
         "images": batch_of(E.JobTimeoutError, "did not finish in time"),
         "wait": Expect(E.JobTimeoutError, ("did not finish in time",), names_job=True),
         "load": OK, "projects": OK}, {"timeout": 1.0}),
    # 402 comes before any error dice: no job, a clear reason; reads fail as reads.
    "out_of_credits+error_rate=1": (
        {"out_of_credits": True, "error_rate": 1.0},
        {**submit_failed(E.OutOfCreditsError, "out of credits"), "wait": unknown_status(),
         "load": SERVER_OR_RATE, "projects": SERVER_OR_RATE}, {}),
    "server_down+html_instead_of_json": (
        {"server_down": True, "html_instead_of_json": 1.0},
        everywhere(Expect(E.ServerError, ("HTTP 500",)), wait=unknown_status()), {}),
    # Failing jobs never reach the (corrupt) download; the project's images are still checked.
    "fail_jobs+corrupt_images": (
        {"fail_jobs": True, "corrupt_images": True},
        {**ALONE["fail_jobs"][1], "load": Expect(E.ImageDecodeError, ("project proj_demo",))}, {}),
}


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("case", list(COMBINED))
def test_flags_combined(case, node, sandbox, monkeypatch):
    faults, expects, knobs = COMBINED[case]
    check(case, node, faults, expects[node], knobs, sandbox, monkeypatch)


def test_every_combination_covers_every_node():
    assert all(set(expects) == set(NODES) for _, expects, _ in COMBINED.values())


@pytest.mark.parametrize("shape", ["url", "output_list", "images_objects", "data_url", "b64", "nested"])
@pytest.mark.parametrize("node", ["images", "wait"])
def test_every_image_shape_is_delivered(shape, node, sandbox, monkeypatch):
    check(f"image_shape={shape}", node, {"image_shape": shape}, OK, {}, sandbox, monkeypatch)


def test_scene_select_and_recent_jobs_make_no_request(sandbox):
    sandbox.set_faults(server_down=True, reset_rate=1.0)
    plan = models.ScenePlan([models.Scene(1, "a kite", "narration", 4.0)], raw={})
    assert run("3DLabsSceneSelect", scene_plan=plan, index=1) == ("a kite", "narration", 4.0)
    text, ids = run("3DLabsRecentJobs", limit=5)
    assert "no 3DLabs jobs" in text and ids == ""
    assert sandbox.stats()["requests_total"] == 0


RESUMABLE = {
    # case -> faults that leave a paid job whose end the node never saw
    "error_rate=1": {"error_rate": 1.0},
    "empty_200=1": {"empty_200": 1.0},
    "server_down after submit": {"server_down": True},
}


@pytest.mark.parametrize("node", ["story", "plan", "images"])
@pytest.mark.parametrize("case", list(RESUMABLE))
def test_queueing_again_after_the_fault_resumes_and_pays_nothing_twice(case, node, sandbox, monkeypatch):
    """The job was made, then polling failed: the journal keeps it unfinished, not failed, and the
    next queueing (same inputs, faults gone) waits for that job instead of submitting another."""
    real_wait = run_mod.wait_jobs
    if case == "server_down after submit":
        # The server goes down once the jobs are submitted: every poll answer is a 500.
        def down_then_wait(*a, **kw):
            sandbox.set_faults(server_down=True)
            return real_wait(*a, **kw)

        monkeypatch.setattr(run_mod, "wait_jobs", down_then_wait)
    else:
        sandbox.set_faults(retry_after=0, **RESUMABLE[case])
    with pytest.raises((errors.JobStatusUnknownError, errors.BatchError)) as info:
        run_node(node, sandbox, 60.0)
    assert "Could not get the 3DLabs job's status" in str(info.value)
    made = sandbox.stats()["jobs_created_total"]
    assert made == JOBS_MADE[node]
    assert {r["state"] for r in Journal().recent(10)} == {"unknown"}

    monkeypatch.setattr(run_mod, "wait_jobs", real_wait)  # the fault has cleared
    sandbox.set_faults(error_rate=0.0, empty_200=0.0, server_down=False)
    spend.reset_tallies()
    clients.reset_clients()
    run_node(node, sandbox, 60.0)
    assert sandbox.stats()["jobs_created_total"] == made, "queueing again paid for the same job twice"
    assert spend.tally().reused == JOBS_MADE[node] and not spend.tally().submitted
    assert {r["state"] for r in Journal().recent(10)} == {"succeeded"}

