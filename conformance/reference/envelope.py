"""The response envelope (reference §2.4), the same for every answer, success or failure.

``{"code", "msg", "bizCode", "tm", "trace", "msgParams", "data", "ok", "fail"}``:
code "0" with ok=true, fail=false and an object in data on success; a non-zero
string code with data null, ok=false, fail=true on failure. Always HTTP 200 and
``application/json`` (spec decision D5), except 405/404 for wrong methods/paths.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

SUCCESS = "0"
NO_VARIANTS: frozenset[str] = frozenset()

# variant errors-http-400: the HTTP status of each failure code (other codes: 409, a business refusal)
ERROR_STATUS = {
    "INVALID_HEADER": 400,
    "INVALID_JSON": 400,
    "INVALID_PARAMETER": 400,
    "UNSUPPORTED_MEDIA_TYPE": 415,  # Spring's answer to a body that is not application/json
    "ACCOUNT_NOT_FOUND": 404,
}
# variant numeric-error-codes: the wallet's numeric code for each failure (unlisted: "9999")
NUMERIC_CODES = {
    "INVALID_HEADER": "1001",
    "INVALID_JSON": "1002",
    "INVALID_PARAMETER": "1003",
    "UNSUPPORTED_MEDIA_TYPE": "1004",
    "METHOD_NOT_ALLOWED": "1005",
    "NOT_FOUND": "1006",
    "ACCOUNT_NOT_FOUND": "2001",
    "INSUFFICIENT_FUNDS": "2003",
    "LIMIT_EXCEEDED": "2004",
    "ALREADY_CANCELLED": "2005",
    "ALREADY_REVERSED": "2006",
    "CANCEL_MISMATCH": "2007",
    "OPERATION_NOT_SUPPORTED": "2008",
    "INTERNAL_ERROR": "9000",
}
MINIMAL_FIELDS = ("code", "msg", "trace", "data", "ok", "fail")  # variant minimal-envelope
SPRING_JSON = "application/json;charset=UTF-8"  # variant spring-content-type
CHUNK = 64  # variant chunked-responses: bytes per chunk
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps(..., separators) builds one per call


@dataclass(frozen=True)
class Answer:
    code: str
    msg: str
    data: Any = None  # the success payload (an object); ignored on failure
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    settle: Callable[[], None] | None = None  # fault lost-cancel-answer-refunds-again: deferred bookkeeping

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS


def success(data: Any) -> Answer:
    return Answer(SUCCESS, "Success", data)


def failure(code: str, msg: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    assert code != SUCCESS
    return Answer(code, msg, None, status, headers)


CANCEL_LOOKUP_CODES = ("US_0000001", "US_0000002")


def body(
    answer: Answer, trace: str, started: float, fault: str | None, variants: frozenset[str] = NO_VARIANTS
) -> dict[str, Any]:
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
    if variants:
        _vary(envelope, answer, variants)
    return envelope


def _vary(envelope: dict[str, Any], answer: Answer, variants: frozenset[str]) -> None:
    """The legal readings of D6 and D20 (variants), applied in place."""
    if not answer.ok:
        if "numeric-error-codes" in variants and answer.code not in CANCEL_LOOKUP_CODES:
            envelope["code"] = NUMERIC_CODES.get(answer.code, "9999")
        if "error-data-empty" in variants:
            envelope["data"] = {}
        elif "error-data-absent" in variants:
            del envelope["data"]
    if "minimal-envelope" in variants:
        for name in list(envelope):
            if name not in MINIMAL_FIELDS:
                del envelope[name]


def render(
    answer: Answer,
    trace: str,
    started: float,
    fault: str | None,
    variants: frozenset[str] = NO_VARIANTS,
    accept_encoding: str = "",
) -> Response:
    status = answer.status
    if fault == "status-201" and answer.ok:
        status = 201
    elif fault == "errors-as-http-400" and not answer.ok and status == 200:
        status = 400
    media_type = "text/plain" if fault == "content-type-text-plain" else "application/json"
    content = _ENCODER.encode(body(answer, trace, started, fault, variants)).encode()
    if not variants:
        return JsonResponse(content, status, media_type, answer.headers)
    headers = dict(answer.headers)
    if "errors-http-400" in variants and not answer.ok and status == 200:
        status = ERROR_STATUS.get(answer.code, 409)
    if "spring-content-type" in variants and media_type == "application/json":
        media_type = SPRING_JSON
    if "gzip-responses" in variants and "gzip" in accept_encoding.lower():
        content = gzip.compress(content, compresslevel=1, mtime=0)
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    if "connection-close" in variants:
        headers["Connection"] = "close"
    if "chunked-responses" in variants:
        return StreamingResponse(_chunks(content), status_code=status, media_type=media_type, headers=headers)
    return Response(content, status_code=status, media_type=media_type, headers=headers)


class JsonResponse(Response):
    """A Starlette Response with its raw headers built directly (no header merging: the wallet sets few)."""

    def __init__(
        self, content: bytes, status: int, media_type: str, headers: tuple[tuple[str, str], ...] = ()
    ):
        self.status_code = status
        self.body = content
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", media_type.encode()),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        ]


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), CHUNK):
        yield content[start : start + CHUNK]
