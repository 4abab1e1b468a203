"""Cancel, as both supported cores deliver it, ends a node within half a second wherever it is.

ComfyUI's internals are faked (tests/fake_comfyui.py) as 0.3.64 has them (the interrupt is an Exception)
and as current cores do (a BaseException); the API is the sandbox over real HTTP. Each case presses
Cancel while the node does one thing: polls a job, waits out a Retry-After, downloads a dripping
image, or shows previews of finished scenes (where ComfyUI's progress hook clears the flag itself and
raises from inside the pack's progress and preview calls). A caught interrupt must never be a Cancel lost.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fake_comfyui import install

from conftest import load_pack, pack_module
from node_runner import image_args, run

comfy = pack_module("nodes.comfy")
Journal = pack_module("nodes.api.journal").Journal

pytestmark = pytest.mark.usefixtures("fresh_runtime")
LIMIT = 0.5  # seconds from the press to the node's end


@pytest.fixture(params=[False, True], ids=["core-0.3.64", "core-current"])
def core(request, monkeypatch, sandbox):
    return install(monkeypatch, base_exception=request.param)


def cancel_during(core, prompts: list[str], after: float | None, ready=lambda: True, **over):
    """Run Image Generate, press Cancel once ``ready()`` holds and ``after`` seconds have passed (None: the
    fake's hook presses it); return the seconds from the press to the node's end, and what ended it."""
    began = time.monotonic()
    stop = threading.Event()

    def press():
        while not stop.is_set() and (time.monotonic() - began < after or not ready()):
            time.sleep(0.01)
        if not stop.is_set():
            core.press_cancel()

    presser = threading.Thread(target=press, daemon=True)
    if after is not None:
        presser.start()
    try:
        run("3DLabsImageGenerate", **image_args(prompts, **over))
    except BaseException as exc:  # noqa: BLE001  what ended the node is the point
        ended = exc
    else:
        ended = None
    finally:
        stop.set()
        if after is not None:
            presser.join()
    assert core.pressed_at is not None, f"the node ended before Cancel was pressed ({ended!r})"
    return time.monotonic() - core.pressed_at, ended


def assert_cancelled(core, elapsed, ended):
    assert isinstance(ended, core.Interrupt), f"{core.kind}: the node ended with {ended!r}, not ComfyUI's interrupt"
    assert elapsed < LIMIT, f"{core.kind}: Cancel took {elapsed:.2f} s"


def test_cancel_while_polling(core, sandbox):
    elapsed, ended = cancel_during(core, ["HANG a lighthouse"], 0.6)
    assert_cancelled(core, elapsed, ended)
    assert {r["state"] for r in Journal().recent(5)} == {"submitted"}  # the job stays collectable


def test_cancel_while_waiting_out_a_retry_after(core, sandbox):
    sandbox.set_faults(error_rate=1.0, retry_after=30)  # every status request: 429 / 5xx, come back in 30 s
    elapsed, ended = cancel_during(core, ["a harbour at dawn"], 0.8,
                                   ready=lambda: sandbox.stats()["requests"].get("GET /api/jobs", 0) >= 1)
    assert_cancelled(core, elapsed, ended)


def test_cancel_while_downloading(core, sandbox):
    sandbox.set_faults(image_drip_bps=2000)  # a result image over minutes
    elapsed, ended = cancel_during(core, ["a slow download"], 0.3,
                                   ready=lambda: sandbox.stats()["faults_injected"]["image_drip"] >= 1)
    assert_cancelled(core, elapsed, ended)


def test_cancel_while_previews_are_shown(core, sandbox):
    """Scenes finish and are previewed while one job still runs: the press lands in ComfyUI's progress hook
    (it clears the flag and raises inside the pack's progress or preview call), and must still end the node."""
    core.press_at_preview = 2
    deadline = threading.Timer(20, core.flag.set)  # a lost Cancel fails the test instead of hanging it
    deadline.start()
    try:
        elapsed, ended = cancel_during(core, ["a", "b", "c", "HANG d"], None)
    finally:
        deadline.cancel()
    assert_cancelled(core, elapsed, ended)
    assert core.hook_raised >= 1, "the press never went through ComfyUI's progress hook"


def test_a_preview_that_meets_cancel_sets_it_again(core):
    bar_calls = []
    core.utils.ProgressBar.update_absolute  # noqa: B018  the fake's hook is what clears the flag
    core.press_cancel()
    comfy.preview("7", object(), 1, 2)  # never raises...
    bar_calls.append(core.flag.is_set())
    assert bar_calls == [True], "...but the Cancel it met is set again for the run to see"
    with pytest.raises(core.Interrupt):
        comfy.NodeProgress("7").update(0.5)  # a progress update re-raises, and sets the flag again too
    assert core.flag.is_set()
    with pytest.raises(core.Interrupt):
        comfy.check_interrupt()


def test_a_node_still_running_when_the_prompt_ends_stops_at_once(core, sandbox):
    """ComfyUI consumes the Cancel flag when it starts its next node and ends the prompt there; its event
    loop then cancels the tasks left and waits for their threads. A concurrent node of the pack, blind to
    the consumed flag, must still end at once instead of holding the queue until its job does."""
    node = load_pack().NODE_CLASS_MAPPINGS["3DLabsImageGenerate"]()
    ended_at = []

    async def prompt():
        asyncio.create_task(node.run(**image_args(["HANG left running"])))
        while sandbox.stats()["jobs_created_total"] < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        ended_at.append(time.monotonic())  # another node ended the prompt: ComfyUI's execute_async returns

    rescue = threading.Timer(20, core.flag.set)  # a node that never stops fails the test instead of hanging it
    rescue.start()
    try:
        asyncio.run(prompt())
    finally:
        rescue.cancel()
    waited = time.monotonic() - ended_at[0]
    assert waited < LIMIT, f"{core.kind}: the prompt's end waited {waited:.2f} s for the pack's thread"
