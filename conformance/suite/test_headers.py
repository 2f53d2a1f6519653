"""Request headers per operation: required, optional, case, types (reference §2.3)."""

from __future__ import annotations

import pytest

from conformance.suite.plugin import expect
from conformance.suite.teller import OPERATIONS

TIMESTAMP_REQUIRED = ("getUserAmount", "executeAdjustment")


def _headers_without(client, operation, name):
    return [(k, v) for k, v in client.documented_headers(operation) if k != name]


def _headers_with(client, operation, name, value):
    return [(k, value if k == name else v) for k, v in client.documented_headers(operation)]


@pytest.fixture
def gate(operation, profile):
    if operation != "getUserAmount" and not profile.money_allowed:
        pytest.skip("money movement is not allowed for this target (use --allow-money-movement)")


@pytest.mark.requirement("HDR-001")
@pytest.mark.parametrize("operation", OPERATIONS)
def test_missing_trace_is_rejected(operation, gate, teller, client, journal, account):
    exchange = teller.call(
        operation,
        teller.body_for(operation, account),
        headers=_headers_without(client, operation, "trace"),
        negative=True,
    )
    expect(journal, "HDR-001", exchange)


@pytest.mark.requirement("HDR-002")
@pytest.mark.parametrize("operation", OPERATIONS)
def test_missing_company_id_is_rejected(operation, gate, teller, client, journal, account):
    exchange = teller.call(
        operation,
        teller.body_for(operation, account),
        headers=_headers_without(client, operation, "companyId"),
        negative=True,
    )
    expect(journal, "HDR-002", exchange)


@pytest.mark.requirement("HDR-003")
@pytest.mark.parametrize("operation", TIMESTAMP_REQUIRED)
def test_missing_timestamp_is_rejected(operation, gate, teller, client, journal, account):
    exchange = teller.call(
        operation,
        teller.body_for(operation, account),
        headers=_headers_without(client, operation, "timestamp"),
        negative=True,
    )
    expect(journal, "HDR-003", exchange)


@pytest.mark.requirement("HDR-005")
@pytest.mark.parametrize("spelling", ["Title-Case", "UPPER", "lower"])
def test_header_names_are_case_insensitive(spelling, teller, client, journal, account):
    def recase(name):
        return {"Title-Case": name[:1].upper() + name[1:], "UPPER": name.upper(), "lower": name.lower()}[spelling]

    headers = [(recase(k), v) for k, v in client.documented_headers("getUserAmount")]
    exchange = teller.call("getUserAmount", teller.balance_body(account), headers=headers)
    expect(journal, "HDR-005", exchange)
    expect(journal, "ENV-005", exchange)


@pytest.mark.requirement("HDR-006")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("company", ["abc", "12.5", "439x"])
def test_non_integer_company_id_is_rejected(operation, company, gate, teller, client, journal, account):
    exchange = teller.call(
        operation,
        teller.body_for(operation, account),
        headers=_headers_with(client, operation, "companyId", company),
        negative=True,
    )
    expect(journal, "HDR-006", exchange)


@pytest.mark.requirement("HDR-007")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("kind", ["seconds-10-digits", "14-digits", "not-a-number"])
def test_timestamp_not_13_digits_is_rejected(operation, kind, gate, teller, client, journal, account):
    import time

    value = {
        "seconds-10-digits": str(int(time.time())),
        "14-digits": str(int(time.time() * 10000)),
        "not-a-number": "yesterday",
    }[kind]
    exchange = teller.call(
        operation,
        teller.body_for(operation, account),
        headers=_headers_with(client, operation, "timestamp", value),
        negative=True,
    )
    expect(journal, "HDR-007", exchange)
