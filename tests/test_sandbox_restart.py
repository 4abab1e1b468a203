"""The bundled sandbox restarted (ComfyUI restarted: a new random port, the same user directory): the same
graph queued again pays for nothing. Its jobs are journaled under the sandbox's name, not its URL, and the
sandbox keeps them in the user directory, so every one is collected by id from the new sandbox."""

from __future__ import annotations

import socket

import pytest
import torch

from conftest import pack_module
from node_runner import image_args, run

config = pack_module("nodes.api.config")
clients = pack_module("nodes.clients")
bridge = pack_module("nodes.sandbox_bridge")
server_module = pack_module("sandbox.server")
spend = pack_module("nodes.spend")


@pytest.fixture
def bundled_sandbox(monkeypatch, fresh_runtime, fast_polls):
    """"sandbox" chosen in the settings; the bundled sandbox with quick jobs, started on demand."""
    real = server_module.SandboxServer
    monkeypatch.setattr(server_module, "SandboxServer", lambda **kw: real(**{**kw, "job_seconds": 0.2}))
    config.update_config(settings_changes={"use_sandbox": True})


def the_graph():
    """Story -> Scene Plan -> Image Generate, as the templates chain them; what each returned and paid."""
    spend.reset_tallies()
    story, _, story_id = run("3DLabsStory", topic="A lighthouse keeper's cat", max_minutes=1, provider="gemini",
                             seed=0, unique_id="1")
    plan, prompts, _, _, plan_id, *_per_scene = run("3DLabsScenePlan", story=story, max_minutes=1, seed=0,
                                                    unique_id="2")
    images, _, image_ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts))
    tally = spend.tally()
    return {"ids": [story_id, plan_id, *image_ids.split("\n")], "images": images,
            "reused": tally.reused, "submitted": dict(tally.submitted)}


def test_a_rerun_after_the_sandbox_restarts_on_another_port_reuses_every_job(bundled_sandbox):
    first = the_graph()
    old = bridge.running()
    old_port = int(old.origin.rsplit(":", 1)[1])
    assert sum(old.stats()["jobs_created"].values()) == len(first["ids"]) and first["reused"] == 0

    bridge.stop()
    clients.reset_clients()
    # Hold the old port, so that the restarted sandbox surely gets another one, as after a ComfyUI restart.
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old one may be in TIME_WAIT
        holder.bind(("127.0.0.1", old_port))
        holder.listen()
        again = the_graph()
        new = bridge.running()
    assert new is not old and not new.origin.endswith(f":{old_port}")
    assert sum(new.stats()["jobs_created"].values()) == 0, new.stats()["jobs_created"]
    assert again["submitted"] == {} and again["reused"] == len(first["ids"])
    assert again["ids"] == first["ids"]
    assert torch.equal(again["images"], first["images"])
