"""Conforming variants of the reference wallet: other legal readings of the docs.

The default wallet is one reading of the docs; a real independent wallet makes
many other choices the docs leave open (spec decisions D1-D20 in
``spec/webhook.openapi.yaml`` ``info.x-decisions``). Each variant is one such
choice, named after the decision it exercises. A variant must never make the
suite fail a run: if it did, the check would be wrong (or the variant illegal).
Some variants are legal but draw a SHOULD warning; their description says which.

Unlike faults, variants combine: ``WalletConfig(variants=frozenset({...}))``,
``conformance reference --variant A --variant B``. Combinations that contradict
each other (two answers to the same question) are refused (:data:`EXCLUSIVE`).
Like a fault, a variant is a small branch in the normal code path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    # the spec decision id it exercises, e.g. "D5-error-status"; "documented:REQ-ID" when the freedom is the
    # documented rule's own latitude (EXE-001: any answer within 3 s)
    decision: str
    description: str
    warns: tuple[str, ...] = ()  # the SHOULD requirements this legal reading draws a warning on


_CATALOGUE = (
    # ------------------------------------------------------------ the envelope and the wire (D5, D6, D20)
    Variant("errors-http-400", "D5-error-status",
            "Every error answer keeps the envelope but uses an HTTP error status: 400 for malformed JSON, "
            "headers and parameters, 415 for another media type, 404 for an unknown account, 409 for business "
            "refusals "
            "(US_0000001/US_0000002 included). Draws the SHOULD ENV-012 warning.", warns=("ENV-012",)),
    Variant("numeric-error-codes", "D20-error-answers",
            'Failure codes are numeric strings ("1001", "2003", ...) instead of names; US_0000001 and '
            "US_0000002 stay as documented."),
    Variant("error-data-empty", "D20-error-answers",
            "Failure envelopes carry data {} instead of null."),
    Variant("error-data-absent", "D20-error-answers",
            "Failure envelopes have no data field at all. Draws the SHOULD ENV-011 warning on failures.",
            warns=("ENV-011",)),
    Variant("minimal-envelope", "D6-envelope-required",
            "Envelopes carry only code, msg, trace, data, ok and fail (no bizCode, tm, msgParams). trace stays: "
            "ENV-005 (MUST) requires the echo. Draws the SHOULD ENV-011 warning.", warns=("ENV-011",)),
    Variant("execute-data-balance", "D20-error-answers",
            'Successful execute and cancel answers carry the account\'s balance after the call in data '
            '({"balance": "99990.00", "currency": "USD"}).'),
    Variant("spring-content-type", "D20-error-answers",
            "Responses are sent as Content-Type: application/json;charset=UTF-8 (Spring's default)."),
    Variant("gzip-responses", "D20-error-answers",
            "Response bodies are gzip-compressed (Content-Encoding: gzip) when the request accepts gzip."),
    Variant("chunked-responses", "D20-error-answers",
            "Response bodies are streamed with Transfer-Encoding: chunked (no Content-Length)."),
    Variant("connection-close", "D20-error-answers",
            "Every answer carries Connection: close and the wallet closes the connection after it."),
    Variant("slow-but-in-time", "documented:EXE-001",
            "The first 5 executes answer after 1.5-2.5 s (seeded jitter), inside the 3 s deadline; later "
            "executes are fast, so runs stay short."),
    # ------------------------------------------------------------ balance (D2, D18)
    Variant("snake-keys", "D2-balance-keys",
            "Balance data in snake_case (user_name, amount_digits), as in the docs' example."),
    Variant("auto-open-accounts", "D18-unknown-currency-for-known-user",
            "A balance query for a known user (thirdServerCode and userName held) in a currency the wallet "
            "holds no account in, an ISO 4217 code (or USDT), answers success, amount 0 for exactly that user "
            "and currency; executes to such an account are refused for lack of funds (INSUFFICIENT_FUNDS)."),
    # ------------------------------------------------------------ request reading (D10, D12, D17, D19)
    Variant("lenient-scalar-coercion", "D21-scalar-coercion",
            'Scalars of another type are read as the documented one when nothing is lost (Jackson\'s default): '
            '"2" or 2.0 for an integer field is 2, 86000001 for a string field is "86000001".'),
    Variant("null-optional-accepted", "D12-null-optional",
            "null in an optional field (metadata, cancel orderId) is read as absent (Jackson, Pydantic "
            "Optional). The default wallet refuses it as a wrong type."),
    Variant("fresh-timestamps-only", "D17-freshness",
            "A timestamp header or requestTime more than 5 minutes from the wallet's clock is refused."),
    Variant("company-pinned", "D10-companyid",
            "Only companyId 439 (the company the wallet is configured for) is accepted; other integers are "
            "refused INVALID_HEADER."),
    Variant("strict-unknown-fields", "D19-extra-fields-and-formats",
            "Bodies with undocumented fields are refused (Jackson FAIL_ON_UNKNOWN_PROPERTIES)."),
    Variant("strict-ip", "D19-extra-fields-and-formats",
            "An ip that is not an IPv4 or IPv6 address is refused."),
    Variant("metadata-must-be-json", "D19-extra-fields-and-formats",
            "metadata that is not JSON text is refused."),
    Variant("bounded-ids", "D19-extra-fields-and-formats",
            "thirdServerCode or reverseRequestUniqueNo longer than 64 characters is refused."),
    # ------------------------------------------------------------ the money rules (D13-D16)
    Variant("invalid-execute-not-remembered", "D13-invalid-execute-received",
            "An execute refused as invalid (headers, media type, JSON, schema, sign) is not stored: its cancel "
            "answers US_0000002. Valid executes, refused or applied, are still remembered."),
    Variant("overtrading-ignored-success", "D14-abnormal-overtrading",
            'ABNORMAL_OVERTRADING is answered "0" and moves nothing; its cancel answers "0" and moves '
            "nothing."),
    Variant("overtrading-ignored-refused", "D14-abnormal-overtrading",
            "ABNORMAL_OVERTRADING is refused (OPERATION_NOT_SUPPORTED) and moves nothing; its cancel answers "
            "US_0000001."),
    Variant("overtrading-overdraws", "D14-abnormal-overtrading",
            "ABNORMAL_OVERTRADING is always applied, even past zero (it settles a shortfall); its cancel "
            "gives back exactly what it took."),
    Variant("mismatched-cancel-refused", "D15-cancel-mismatch",
            "A cancel whose account, currency or amount differs from its applied execute is refused "
            "(CANCEL_MISMATCH) and moves nothing; the execute stays applied."),
    Variant("second-cancel-refused", "D16-second-cancel",
            "A second cancel (new requestUniqueNo) of an execute already reversed is refused "
            "(ALREADY_REVERSED) and moves nothing. The same branch as the fault of that name: legal (D16), "
            "it draws the SHOULD CAN-007 warning and never fails a run.", warns=("CAN-007",)),
)

VARIANTS: dict[str, Variant] = {variant.name: variant for variant in _CATALOGUE}
assert len(VARIANTS) == len(_CATALOGUE), "duplicate variant name"

# Groups of variants that answer the same question differently: at most one of each group.
EXCLUSIVE: tuple[frozenset[str], ...] = (
    frozenset({"overtrading-ignored-success", "overtrading-ignored-refused", "overtrading-overdraws"}),
    frozenset({"error-data-empty", "error-data-absent"}),
)

PINNED_COMPANY = "439"
FRESHNESS_MS = 5 * 60 * 1000
MAX_ID_LENGTH = 64
SLOW_EXECUTES = 5  # slow-but-in-time: only the first executes are slow
SLOW_RANGE = (1.5, 2.5)
# auto-open-accounts: decimals of an account opened on demand (ISO 4217 minor units; others 2)
ON_DEMAND_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3,
                    "JOD": 3, "TND": 3, "USDT": 6}


@functools.cache
def _iso_currencies() -> frozenset[str]:
    import pycountry

    return frozenset(currency.alpha_3 for currency in pycountry.currencies)


def openable_currency(currency: str) -> bool:
    """auto-open-accounts: an account is opened on demand only in an ISO 4217 currency (or USDT)."""
    return currency in ON_DEMAND_DIGITS or currency in _iso_currencies()


def check_variants(names: Iterable[str] | str | None) -> frozenset[str]:
    """The variants as a frozenset; ValueError for an unknown name or a contradicting combination."""
    if names is None:
        return frozenset()
    if isinstance(names, str):
        names = (names,)
    chosen = frozenset(names)
    unknown = sorted(name for name in chosen if name not in VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r} (list them with --list-variants)")
    for group in EXCLUSIVE:
        clash = sorted(chosen & group)
        if len(clash) > 1:
            raise ValueError(f"variants {' and '.join(clash)} contradict each other: choose one")
    return chosen
