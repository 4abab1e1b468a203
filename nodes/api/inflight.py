"""One POST per request key at a time: the gate in this process and the claim in the journal.

A job-creating request keyed by its request key (``nodes/reuse.py``) goes out once at a time per user
directory. In this process a second caller with the same key waits for the first one's POST and gets
its job id. Across processes, the POST is preceded by a claim in the journal's ``claims`` table, taken
in one BEGIN IMMEDIATE transaction with the owner's pid, host and time; another process finds it and
waits. A claim whose owner died, or older than the POST's own timeouts, is an answer lost: journaled as
maybe submitted and refused, like every lost answer, until the inputs (the seed) change. Each POST
started under a key carries its own Idempotency-Key (this journal's random salt, the key, the attempt),
so an API that honours the header makes one job per attempt; nothing here relies on that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AnswerLostError, MaybeSubmittedError
from .jobs import CANCEL_CHECK_SECONDS, sleep_unless_canceled
from .journal import MAYBE_SUBMITTED, SETTLED_STATES, Journal

log = logging.getLogger("3dlabs")

CLAIM_POLL_SECONDS = 0.2  # how often a process waiting for another one's POST looks at the claim
_HOST = platform.node()
CancelCheck = Callable[[], None] | None


@dataclass(frozen=True)
class Submission:
    job_id: str
    paid: bool  # False: another caller's POST (this process or another) made the job; nothing paid here


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.job_id: str | None = None
        self.error: BaseException | None = None


_flights: dict[tuple[str, str], _Flight] = {}
_flights_lock = threading.Lock()


def find_lost(journal: Journal, key: str, *, base_url: str, workspace: str | None) -> dict | None:
    """The record of this request's lost answer, unless a later job under the key settled (the user moved
    on, or an older version of the pack sent it again)."""
    for rec in journal.by_request(key):
        if rec.get("base_url") != base_url or rec.get("workspace") != workspace:
            continue
        if str(rec.get("id", "")).startswith("unknown-") or rec.get("state") == MAYBE_SUBMITTED:
            return rec
        if rec.get("state") in SETTLED_STATES:
            return None
    return None


def lost_detail(rec: dict | None, why: str = "") -> str:
    """One line on a lost answer: what was sent, when, why it is unknown, and its line in Recent Jobs."""
    if rec is None:
        return why
    label = str(rec.get("label") or "").removeprefix("answer lost: ")
    at = rec.get("submitted_at")
    when = time.strftime(" at %Y-%m-%d %H:%M", time.localtime(at)) if isinstance(at, (int, float)) else ""
    reason = why or str(rec.get("error") or "")
    return (f"{rec.get('kind', 'job')} request {label!r} sent{when}" + (f" ({reason})" if reason else "")
            + f"; Recent Jobs lists it as {rec.get('id')}")


def fresh_key() -> str:
    """An Idempotency-Key for a POST outside any claim: its own retries carry it, nothing else does."""
    return secrets.token_hex(16)


def submit_once(journal: Journal, key: str, post: Callable[[str], str], record_lost: Callable[[str], dict | None],
                *, base_url: str, workspace: str | None, ttl: float, cancel_check: CancelCheck) -> Submission:
    """``post(idempotency_key)`` (which journals the job, or the lost answer) once for ``key``, or the job
    another caller's POST made, or AnswerLostError for a request whose answer was lost.
    ``record_lost(why)`` journals a claim left behind as a lost answer and returns its record."""
    gate = (str(journal.path), key)
    while True:
        with _flights_lock:
            flight = _flights.get(gate)
            first = flight is None
            if first:
                flight = _flights[gate] = _Flight()
        if first:
            break
        log.info("3DLabs: the same request is being sent by another node; waiting for its job instead of paying")
        while not flight.done.wait(CANCEL_CHECK_SECONDS):
            if cancel_check is not None:
                cancel_check()
        if flight.job_id is not None:
            return Submission(flight.job_id, paid=False)
        if isinstance(flight.error, MaybeSubmittedError):
            raise AnswerLostError("the same request went out a moment ago from another node, and its answer was "
                                  f"lost ({flight.error.detail})") from None
        # That POST made no job (refused, Canceled, invalid): this caller goes through the journal in turn.
    try:
        outcome = _claimed(journal, key, post, record_lost, base_url, workspace, ttl, cancel_check)
        flight.job_id = outcome.job_id
        return outcome
    except BaseException as exc:
        flight.error = exc
        raise
    finally:
        with _flights_lock:
            _flights.pop(gate, None)
        flight.done.set()


def _claimed(journal: Journal, key: str, post: Callable[[str], str], record_lost: Callable[[str], dict | None],
             base_url: str, workspace: str | None, ttl: float, cancel_check: CancelCheck) -> Submission:
    waiting_for = None
    while True:
        if cancel_check is not None:  # a run Canceled before its POST began pays nothing
            cancel_check()
        try:
            claim = journal.transaction(lambda conn: _take(conn, key, ttl))
        except (sqlite3.Error, OSError) as exc:  # bookkeeping never stops a generation; the gate still holds
            log.warning("3DLabs: could not claim the request in the job journal (%s); sending it unclaimed", exc)
            return Submission(post(fresh_key()), paid=True)
        if claim[0] == "busy":
            if waiting_for != claim[1]:
                waiting_for = claim[1]
                log.info("3DLabs: process %s is sending the same request; waiting for its job", claim[1])
            sleep_unless_canceled(CLAIM_POLL_SECONDS, cancel_check)
            continue
        if claim[0] == "stale":
            rec = record_lost(claim[2])
            _release(journal, key, claim[1])
            raise AnswerLostError(lost_detail(rec, claim[2]))
        _, token, idempotency_key = claim
        try:
            # Held by this caller now: a job another process made under the key is already journaled.
            paid = journal.find_paid(key, base_url=base_url, workspace=workspace)
            if paid is not None:
                log.info("3DLabs: job %s was made for the same request meanwhile; using it", paid["id"])
                return Submission(paid["id"], paid=False)
            lost = find_lost(journal, key, base_url=base_url, workspace=workspace)
            if lost is not None:
                raise AnswerLostError(lost_detail(lost))
            return Submission(post(idempotency_key), paid=True)
        finally:
            _release(journal, key, token)


def _take(conn: sqlite3.Connection, key: str, ttl: float) -> tuple:
    """In one write transaction: ("claimed", token, idempotency key), ("busy", owner) or ("stale", token, why)."""
    row = conn.execute("SELECT attempt, token, owner_pid, owner_host, claimed_at, expires_at FROM claims "
                       "WHERE request = ?", (key,)).fetchone()
    now = time.time()
    if row is not None and row[1]:
        why = _stale(row[2], row[3], row[4], row[5], now)
        return ("busy", f"{row[2]} on {row[3]}") if why is None else ("stale", row[1], why)
    attempt = (row[0] if row else 0) + 1
    token = secrets.token_hex(8)
    conn.execute("INSERT OR REPLACE INTO claims (request, attempt, token, owner_pid, owner_host, claimed_at, "
                 "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)", (key, attempt, token, os.getpid(), _HOST, now, now + ttl))
    found = conn.execute("SELECT value FROM meta WHERE key = 'idempotency_salt'").fetchone()
    salt = found[0] if found else secrets.token_hex(16)
    if not found:  # per user directory: two processes here agree on a key, another user's never matches
        conn.execute("INSERT INTO meta (key, value) VALUES ('idempotency_salt', ?)", (salt,))
    return "claimed", token, hashlib.sha256(f"{salt}:{key}:{attempt}".encode()).hexdigest()[:32]


def _stale(pid: int, host: str, claimed_at: float, expires_at: float, now: float) -> str | None:
    """Why a claim in flight can no longer be waited for, or None while its POST may still be going."""
    if now > expires_at:
        return f"its POST began {now - claimed_at:.0f} s ago, longer than a POST may take"
    if host == _HOST and (pid == os.getpid() or not _alive(pid)):
        # This process's own claim outside its gate was left by a POST that never finished recording.
        return f"the process that sent it (pid {pid}) ended before its answer was recorded"
    return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: only the claim's age tells
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _release(journal: Journal, key: str, token: str) -> None:
    try:
        journal.transaction(lambda conn: conn.execute(
            "UPDATE claims SET token = NULL, owner_pid = NULL, owner_host = NULL WHERE request = ? AND token = ?",
            (key, token)))
    except (sqlite3.Error, OSError) as exc:  # the claim then ages out as a lost answer: safe, if not kind
        log.warning("3DLabs: could not release the journal's claim on a request (%s)", exc)
