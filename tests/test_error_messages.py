"""What ComfyUI shows of a failed 3DLabs node: the message says each thing once, and the error type reads as
a short name ("3DLabs.AuthError"), not as the pack's folder path (ComfyUI prints ``__module__`` + name)."""

from __future__ import annotations

import inspect
import pickle
import re

import pytest

from conftest import pack_module
from node_runner import image_args, run

errors = pack_module("nodes.api.errors")


def comfy_type_name(cls: type) -> str:
    """What ComfyUI's execution.full_type_name puts in the error panel (and the execution_error event)."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def sentences(text: str) -> list[str]:
    return [s.strip().rstrip(".").casefold() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]


def assert_said_once(message: str) -> None:
    said = sentences(message)
    assert len(said) == len(set(said)), message
    # The same claim in other words (the first run's "token is set" then "token is configured").
    assert len(re.findall(r"no 3dlabs token", message, re.I)) <= 1, message


def test_a_first_run_without_a_token_says_so_once_and_what_to_do(fresh_runtime):
    with pytest.raises(errors.AuthError) as info:
        run("3DLabsStory", topic="A lighthouse keeper's cat", max_minutes=1, provider="gemini", seed=0,
            unique_id="1")
    message = str(info.value)
    assert_said_once(message)
    assert message.startswith("No 3DLabs token is configured, so nothing was sent.")
    assert "sandbox" in message and "Settings" not in message.split(".")[0]
    assert comfy_type_name(type(info.value)) == "3DLabs.AuthError"


def test_every_error_type_reads_as_a_short_name():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.ThreeDLabsError)]
    assert len(classes) > 15
    for cls in classes:
        name = comfy_type_name(cls)
        assert name == f"3DLabs.{cls.__name__}", name
    # A subclass made later (anywhere) is named the same way.
    assert comfy_type_name(type("LaterError", (errors.JobError,), {})) == "3DLabs.LaterError"


def test_errors_still_pickle_under_their_short_module_name():
    err = errors.JobFailedError("the model refused", job_id="job_1", index=2)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.JobFailedError and str(again) == str(err) and again.job_id == "job_1"
    batch = pickle.loads(pickle.dumps(errors.BatchError([err], [None, None, None])))
    assert type(batch.failures[0]) is errors.JobFailedError and str(batch) == str(errors.BatchError([err], [None] * 3))


def test_a_part_that_restates_another_is_left_out():
    err = errors.ThreeDLabsError("The 3DLabs request failed", hint="Try again.")
    assert str(err) == "The 3DLabs request failed. Try again."


def test_a_batch_that_failed_to_submit_names_its_item_once(sandbox, fresh_runtime, monkeypatch):
    # The second of three prompts is refused: the message names "item 2 of 3" once, in its headline.
    prompts = ["a calm harbour", "a stormy harbour", "a calm field"]
    http = pack_module("nodes.api.http").HttpTransport
    post = http.post_job

    def refuse_second(self, path, body, **kw):
        if body.get("prompt") == prompts[1]:
            raise errors.InvalidRequestError("prompt refused (HTTP 400)", status=400)
        return post(self, path, body, **kw)

    monkeypatch.setattr(http, "post_job", refuse_second)
    with pytest.raises(errors.InvalidRequestError) as info:
        run("3DLabsImageGenerate", **image_args(prompts))
    message = str(info.value)
    assert message.count("item 2 of 3") == 1 and message.startswith("Submitting item 2 of 3"), message
    assert_said_once(message)
