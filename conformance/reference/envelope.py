"""The response envelope (reference §2.4), the same for every answer, success or failure.

``{"code", "msg", "bizCode", "tm", "trace", "msgParams", "data", "ok", "fail"}``:
code "0" with ok=true, fail=false and an object in data on success; a non-zero
string code with data null, ok=false, fail=true on failure. Always HTTP 200 and
``application/json`` (spec decision D5), except 405/404 for wrong methods/paths.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

SUCCESS = "0"


@dataclass(frozen=True)
class Answer:
    code: str
    msg: str
    data: Any = None  # the success payload (an object); ignored on failure
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


def success(data: Any) -> Answer:
    return Answer(SUCCESS, "Success", data)


def failure(code: str, msg: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    assert code != SUCCESS
    return Answer(code, msg, None, status, headers)


CANCEL_LOOKUP_CODES = ("US_0000001", "US_0000002")


def body(answer: Answer, trace: str, started: float, fault: str | None) -> dict[str, Any]:
    """The envelope as a dict; ``started`` is the request's ``time.perf_counter()``."""
    ok = answer.ok
    envelope: dict[str, Any] = {
        "code": answer.code,
        "msg": answer.msg,
        "bizCode": "",
        "tm": max(0, int((time.perf_counter() - started) * 1000)),
        "trace": trace,
        "msgParams": None,
        "data": answer.data if ok else None,
        "ok": ok,
        "fail": not ok,
    }
    if fault == "ok-fail-both-true" and ok:
        envelope["fail"] = True
    elif fault == "ok-with-nonzero-code" and answer.code in CANCEL_LOOKUP_CODES:
        envelope.update(ok=True, fail=False, data={})
    elif fault == "code-as-number" and not ok and answer.code not in CANCEL_LOOKUP_CODES:
        envelope["code"] = 400
    elif fault == "data-not-object-on-success" and ok and answer.data == {}:
        envelope["data"] = None
    elif fault == "failure-data-as-string" and not ok:
        envelope["data"] = answer.code
    elif fault == "trace-not-echoed":
        envelope["trace"] = f"wallet-{uuid.uuid4().hex}"
    elif fault == "negative-tm":
        envelope["tm"] = -1
    elif fault == "tm-implausible":
        envelope["tm"] = 3_600_000
    elif fault == "msg-as-number":
        envelope["msg"] = 0
    elif fault == "envelope-missing-bizcode":
        del envelope["bizCode"]
    return envelope


def render(answer: Answer, trace: str, started: float, fault: str | None) -> Response:
    status = answer.status
    if fault == "status-201" and answer.ok:
        status = 201
    elif fault == "errors-as-http-400" and not answer.ok and status == 200:
        status = 400
    media_type = "text/plain" if fault == "content-type-text-plain" else "application/json"
    content = json.dumps(body(answer, trace, started, fault), separators=(",", ":"))
    return Response(content, status_code=status, media_type=media_type, headers=dict(answer.headers))
