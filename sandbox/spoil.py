"""Answers spoiled on purpose once they are decided: a job-creating POST's (after its job exists) and a
job status read's. For the fault flags ``post_answer``, ``post_answer_delay_ms`` and ``poll_answer``.

Each spoiled form is one a client cannot read, though the request was served: a status line that reads
"Connection refused" (its code is the letters 2OO, so http.client raises with those words), JSON nested
100,000 deep, a charset no codec knows, or 32 MiB of empty objects (the client's byte cap, filled).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from .faults import Faults

if TYPE_CHECKING:
    from .api import Answer, Route
    from .handlers import ApiHandler

DEPTH = 100_000
MANY_BYTES = 32 * 1024 * 1024 - 64  # just under the client's 32 MiB cap: only an object count stops it
REFUSED_STATUS_LINE = b"HTTP/1.1 2OO Connection refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def spoiled_body(how: str, value: dict) -> tuple[bytes, str]:
    """``value`` (a JSON object) as the spoiled bytes and Content-Type ``how`` names."""
    data = json.dumps(value).encode()
    if how == "bogus_charset":
        return data, "application/json; charset=x-bogus"
    if how == "deep_nesting":
        filler = b"[" * DEPTH + b"]" * DEPTH
    else:  # many_objects
        filler = b"[" + b"{}," * ((MANY_BYTES - len(data) - 16) // 3) + b"{}]"
    return data[:-1] + b', "more": ' + filler + b"}", "application/json; charset=utf-8"


def spoil(handler: ApiHandler, route: Route | None, answer: Answer, faults: Faults) -> bool:
    """Send ``answer`` spoiled as the flags say and return True; False (nothing sent) to answer normally."""
    if answer.created_job:
        if faults.post_answer_delay_ms > 0:
            handler.state.stats.fault("slow_post_answer")
            time.sleep(faults.post_answer_delay_ms / 1000.0)
        how = faults.post_answer
    elif route is not None and route.template == "/api/jobs/{jobId}" and answer.status == 200:
        how = faults.poll_answer
    else:
        return False
    if how == "ok" or not isinstance(answer.body, dict):
        return False
    handler.state.stats.fault(how)
    if how == "refused_status_line":
        handler.close_connection = True
        handler.wfile.write(REFUSED_STATUS_LINE)
        return True
    data, content_type = spoiled_body(how, answer.body)
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    return True
