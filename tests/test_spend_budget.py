"""The spend budget across prompts: jobs per rolling hour and day, counted from the journal before any POST.

Prompt after prompt (a page queueing through ComfyUI's own /prompt, which checks no origin for a rebound
Host) passes any per-prompt cap; the budget is what stops it. Over real HTTP against the sandbox.
"""

from __future__ import annotations

import threading
import time

import pytest

from conftest import jobs_created, pack_module
from node_runner import image_args, run

budget = pack_module("nodes.api.budget")
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal

pytestmark = pytest.mark.usefixtures("fresh_runtime")


def one_prompt(n: int, seed: int) -> None:
    """One prompt of ``n`` one-job nodes (each its own tally, as ComfyUI gives each prompt one)."""
    spend.reset_tallies()
    for k in range(n):
        run("3DLabsImageGenerate", **image_args([f"scene {k} of prompt {seed}"], seed=seed))


def test_four_prompts_of_three_jobs_with_an_hourly_budget_of_five(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_MAX_JOBS_PER_HOUR", "5")
    one_prompt(3, 1)
    with pytest.raises(errors.SpendBudgetError) as info:
        for seed in (2, 3, 4):
            one_prompt(3, seed)
    assert jobs_created(sandbox) == {"image": 5}
    message = str(info.value)
    assert "5 jobs allowed per hour" in message and "THREEDLABS_MAX_JOBS_PER_HOUR" in message
    assert "submitted none" in message and "Max jobs per hour" in message
    # Reused jobs cost nothing and are never refused: the first prompt again collects all three.
    one_prompt(3, 1)
    assert jobs_created(sandbox) == {"image": 5}


def test_a_list_that_would_pass_the_budget_submits_none_of_it(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_MAX_JOBS_PER_DAY", "4")
    with pytest.raises(errors.SpendBudgetError, match="per day"):
        run("3DLabsImageGenerate", **image_args(["a", "b", "c", "d", "e"]))
    assert jobs_created(sandbox) == {}


def test_two_concurrent_nodes_cannot_both_slip_under_the_budget(sandbox, monkeypatch):
    """Held jobs count until journaled: two nodes of one prompt reserving at once pass the limit together never."""
    monkeypatch.setenv("THREEDLABS_MAX_JOBS_PER_HOUR", "3")
    outcomes = []

    def node(tag):
        try:
            run("3DLabsImageGenerate", **image_args([f"{tag} 1", f"{tag} 2"]))
            outcomes.append("ok")
        except errors.SpendBudgetError:
            outcomes.append("refused")

    threads = [threading.Thread(target=node, args=(tag,)) for tag in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["ok", "refused"] and jobs_created(sandbox) == {"image": 2}


def test_the_budget_counts_what_the_journal_holds_across_restarts(sandbox, monkeypatch):
    """Jobs paid by an earlier ComfyUI run (the journal is on disk) count; the window rolls."""
    monkeypatch.setenv("THREEDLABS_MAX_JOBS_PER_HOUR", "3")
    journal = Journal()
    for k in range(3):
        journal.record_submitted(f"job_earlier_{k}", "image", label="paid before a restart")
    assert budget.spent(journal, budget.HOUR) == 3
    with pytest.raises(errors.SpendBudgetError):
        run("3DLabsImageGenerate", **image_args(["one more"]))
    assert jobs_created(sandbox) == {}
    usage = budget.usage(journal, {"hour": 3, "day": 1000})
    assert usage["hour"] == {"limit": 3, "used": 3, "left": 0} and usage["day"]["left"] == 997
    assert budget.spent(journal, budget.HOUR, now=time.time() + 2 * 3600) == 0  # older than an hour: out
    assert budget.spent(journal, budget.DAY, now=time.time() + 2 * 3600) == 3
