"""Running the pack's node classes outside ComfyUI, as ComfyUI would call them.

One place for what every node-level test needs: call a node's FUNCTION (awaiting it when it is
async), take its result tuple, build Image Generate's list-shaped inputs (INPUT_IS_LIST), and press
ComfyUI's Cancel part-way through.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

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
