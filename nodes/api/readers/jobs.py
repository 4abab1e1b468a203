"""Jobs: the envelope around a job, its id, status word, progress and error, read into a ``Job``."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

from ..errors import ResponseFormatError
from ..models import FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from . import vocabulary as V
from .basics import KINDS, MAX_WRAPPERS, absent, clip, describe, get, has_any, ident, is_number, read, text

_STATUS = {word.replace("_", ""): state for state, words in V.STATUS_SYNONYMS.items() for word in words}
_JOBLIKE = tuple(key for field in V.JOB.values() for key in field.keys)
_PERCENT = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(%?)")
_RATIO = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")


def normalize_status(raw: Any, *, has_error: bool = False, has_result: bool = False,
                     has_progress: bool = False) -> str:
    """One of the five states for a status word (or ``{"state": word}``). A known word wins; otherwise an
    error means failed, a result succeeded, else the job is still going: running once it reports progress."""
    if isinstance(raw, dict):
        raw = get(V.STATUS_OBJECT, raw)
    if isinstance(raw, str) and (state := _STATUS.get(re.sub(r"[\s._-]+", "", raw[:64].lower()))):
        return state
    if has_error:
        return FAILED
    if has_result:
        return SUCCEEDED
    return RUNNING if has_progress else QUEUED


def _fraction(number: int | float, percent: bool = False) -> float | None:
    """A number as a 0..1 fraction, clamped: above 1 (or with ``percent``) it is a percentage."""
    if isinstance(number, int):  # clamped before any float(): 10**400 would overflow it
        number = max(0, min(number, 100))
    elif not math.isfinite(number):
        return None
    return min(1.0, max(0.0, float(number / 100 if percent or number > 1 else number)))


def _ratio(done: Any, total: Any) -> float | None:
    try:
        ratio = float(done) / float(total)
    except (OverflowError, ZeroDivisionError, TypeError):  # TypeError: one of them missing
        return None
    return _fraction(min(ratio, 1.0)) if total > 0 and math.isfinite(ratio) else None


def read_progress(value: Any) -> float | None:
    """Progress as a fraction in 0..1, or None when there is none readable.

    A 0-1 fraction, a 0-100 percentage, "42%", "0.42", "3/10", or an object (vocabulary.PROGRESS) with a
    percentage, a value read like progress itself, or done and total. Exactly 1 is the fraction 1.0 (APIs
    counting in fractions end on it, while 1% lasts a moment); "1%" is 0.01. Booleans, NaN and infinities
    give None.
    """
    if is_number(value):
        return _fraction(value)
    if isinstance(value, str) and len(stripped := value.strip().lower()) <= 64:
        if ratio := _RATIO.fullmatch(stripped):
            return _ratio(float(ratio[1]), float(ratio[2]))
        number = _PERCENT.fullmatch(stripped)
        return _fraction(float(number[1]), percent=bool(number[2])) if number else None
    if isinstance(value, dict):
        found = read(V.PROGRESS, value)
        if found["percent"] is not None:
            return _fraction(found["percent"], percent=True)
        return found["fraction"] if found["fraction"] is not None else _ratio(found["done"], found["total"])
    return None


def unwrap(payload: Any) -> Any:
    """Strip job envelopes (``{job: {...}}``, ``{data: {job: {...}}}``), keeping the envelope's other keys.

    An object with a status is the job itself. ``job`` / ``data`` are descended when the inner object looks
    like a job or the outer one has nothing else job-like; ``result`` only when it has a status of its own
    and the outer object nothing else job-like.
    """
    current = payload
    for _ in range(MAX_WRAPPERS):
        if not isinstance(current, dict) or has_any(current, V.STATUS_KEYS):
            break
        chosen = next((key for key in V.JOB_ENVELOPE_KEYS if isinstance(inner := current.get(key), dict) and inner
                       and (has_any(inner, _JOBLIKE) or not has_any(current, _JOBLIKE, skip=key))), None)
        inner = current.get("result")
        if (chosen is None and isinstance(inner, dict) and has_any(inner, V.STATUS_KEYS)
                and not has_any(current, _JOBLIKE, skip="result")):
            chosen = "result"
        if chosen is None:
            break
        current = {**{key: value for key, value in current.items() if key != chosen}, **current[chosen]}
    return current


def read_job_id(payload: Any) -> str:
    """The job id in a job-creating POST's answer (jobId / job_id / id, bare or wrapped), or the bare answer."""
    if isinstance(payload, (str, int)) and not isinstance(payload, bool):
        if (found := ident(payload)) is not None:
            return found
        raise ResponseFormatError(f"the answer is {describe(payload)}, not a job id")
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected an object with a job id, got {describe(payload)}")
    body = unwrap(payload)
    if (found := get(V.NEW_JOB_ID, body)) is None:
        raise ResponseFormatError(f"the answer carries no job id ({describe(body)})")
    return found


def _number(value: int | float) -> str:
    return "a very large number" if isinstance(value, int) and abs(value) >= 10**18 else str(value)


def _code(value: Any) -> str | None:
    return _number(value) if is_number(value) else clip(found, 80) if (found := text(value)) else None


def render_error(value: Any, depth: int = 0) -> str | None:
    """A server error (string, object, list) as one readable line, or None for "no error"."""
    if value is None or value is False:
        return None
    if value is True:
        return "error (no detail given)"
    if isinstance(value, str):
        return clip(value.strip()) or None
    if is_number(value):
        return _number(value)
    if isinstance(value, dict) and depth < 3:
        found = read(V.ERROR, value, message=lambda inner: render_error(inner, depth + 1))
        message, code = found["message"], found["code"]
        if message and code and code not in message:
            return clip(f"{message} ({code})")
        parts = [f"{key[:40]}: {render_error(item, depth + 1)}" for key, item in itertools.islice(value.items(), 8)
                 if isinstance(key, str) and (text(item) or is_number(item))]
        return message or code or clip("; ".join(parts)) or None
    if isinstance(value, list) and depth < 3:
        parts = dict.fromkeys(filter(None, (render_error(item, depth + 1) for item in value[:10])))
        return clip("; ".join(parts)) or None
    return None


def read_job(payload: Any, job_id: str | None = None) -> Job:
    """A job from ``GET /api/jobs/:id``, bare or in an envelope; ``raw`` is the unwrapped dict.

    ``job_id`` (the id asked for) wins over one in the payload, so the journal's id is kept. An error
    without a status is failed; a failed job without an error field takes its message / detail. An object
    with nothing job-like is unreadable, not "still queued", so it is reported at once, not polled.
    """
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected a job object, got {describe(payload)}")
    body = unwrap(payload)
    if not has_any(body, _JOBLIKE):
        raise ResponseFormatError(f"the job answer has no status, result or error ({describe(body)})")
    job = read(V.JOB, body)
    if job["result"] is None and job["status"] is not None:  # with a status beside it, `data` is the result
        job["result"] = body.get("data")
    error = render_error(job["error"])
    status = normalize_status(job["status"], has_error=error is not None, has_result=not absent(job["result"]),
                              has_progress=bool(job["progress"]))
    if status == FAILED and error is None:
        error = get(V.FAILURE, body)
    return Job(id=ident(job_id) or job["id"] or "", status=status, progress=job["progress"], result=job["result"],
               error=error, raw=body)


KINDS.update(progress=read_progress, error_text=render_error, code=_code,
             flat_progress=lambda value: None if isinstance(value, dict) else read_progress(value))
