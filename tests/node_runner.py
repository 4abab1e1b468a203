"""Running the pack's node classes outside ComfyUI, as ComfyUI would call them.

One place for what every node-level test needs: call a node's FUNCTION (awaiting it when it is
async), take its result tuple, build Image Generate's list-shaped inputs (INPUT_IS_LIST), and press
ComfyUI's Cancel part-way through. A test of the client alone submits and waits the way a node run
does (``submit_job``, ``collect_jobs``): the client has no job path of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from conftest import load_pack, pack_module


def call_node(node_id: str, **kwargs):
    """The node's whole answer: ``{"ui": ..., "result": ...}`` or a bare tuple."""
    node = load_pack().NODE_CLASS_MAPPINGS[node_id]()
    out = getattr(node, node.FUNCTION)(**kwargs)
    return asyncio.run(out) if asyncio.iscoroutine(out) else out


def run(node_id: str, **kwargs):
    """The node's outputs as a tuple."""
    out = call_node(node_id, **kwargs)
    return out["result"] if isinstance(out, dict) else out


def image_args(prompts, **over):
    """Image Generate's inputs as ComfyUI hands them to an INPUT_IS_LIST node: every value a list."""
    args = dict(prompt=prompts, provider=["replicate"], model=["flux-schnell"], aspect_ratio=["16:9"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["7"])
    args.update({k: [v] for k, v in over.items()})
    return args


@contextlib.contextmanager
def cancel_after(seconds: float):
    """Press Cancel ``seconds`` into the block, as a user would; released again when the block ends."""
    comfy = pack_module("nodes.comfy")
    timer = threading.Timer(seconds, comfy.set_local_interrupt, args=(True,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        comfy.set_local_interrupt(False)


def submit_job(client, kind: str, *args, cancel_check=None, **fields) -> str:
    """POST one ``kind`` job ("story", "scene-plan", "image") the way a node run does: the body built and
    checked by ``nodes/api/endpoints.py``, sent by ``client.submit_once``. No request key: always sent."""
    endpoints = pack_module("nodes.api.endpoints")
    endpoint, build = {"story": (endpoints.STORIES, endpoints.story_body),
                       "scene-plan": (endpoints.SCENE_PLANNING, endpoints.scene_plan_body),
                       "image": (endpoints.IMAGES, endpoints.image_body)}[kind]
    body = build(*args, **fields)
    label = str(body.get("prompt") or body.get("topic") or kind)[:80]
    return client.submit_once(endpoint, kind, body, label=label, cancel_check=cancel_check).job_id


def collect_jobs(client, job_ids, timeout: float = 30.0) -> list:
    """Wait for jobs the way the nodes do (``NodeRun.collect``: a worker per job, each final state
    journaled), with ``client`` (anything with ``get_job`` and ``journal``) as the run's client."""
    clients, run_mod = pack_module("nodes.clients"), pack_module("nodes.run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clients, "client_for", lambda current=None: client)
        with run_mod.NodeRun("test", None) as node_run:
            return node_run.collect(list(job_ids), [time.monotonic()] * len(job_ids), timeout, None)
