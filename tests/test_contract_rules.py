"""The rules' limits, enums, patterns, required headers and the deadline are read from spec/, never copied.

Each test changes one fact in a copy of the contract and shows the check that enforces it follows the
change: a check holding its own copy of the fact would not, and the test would fail.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from conformance import contract
from conformance.checks import NA, registry
from conformance.checks import schema as schema_module
from tests.test_checks import CTX, ex


@pytest.fixture
def mutate(monkeypatch):
    def apply(change):
        original = contract.load()
        spec = copy.deepcopy(original.spec)
        change(spec)
        mutated = replace(original, spec=spec, operations=contract._operations(spec))
        monkeypatch.setattr(contract, "load", lambda: mutated)
        schema_module._validator.cache_clear()
        return mutated

    yield apply
    schema_module._validator.cache_clear()


def check(name):
    return registry()[name].func


def schemas(spec):
    return spec["components"]["schemas"]


def test_max_length_comes_from_the_spec(mutate):
    body = "x" * 45
    assert check("validation.long_user_name_rejected")(ex("executeAdjustment", userName=body), CTX) is NA
    mutate(lambda spec: schemas(spec)["UserName"].update(maxLength=40))
    assert isinstance(check("validation.long_user_name_rejected")(ex("executeAdjustment", userName=body), CTX), str)


def test_enums_come_from_the_spec(mutate):
    assert isinstance(check("validation.unknown_biz_type_rejected")(ex("executeAdjustment", bizType=13), CTX), str)
    mutate(lambda spec: schemas(spec)["BizType"]["enum"].append(13))
    assert check("validation.unknown_biz_type_rejected")(ex("executeAdjustment", bizType=13), CTX) is NA
    mutate(lambda spec: schemas(spec)["OperationType"]["enum"].append("PARTIAL_CLOSE"))
    exchange = ex("executeAdjustment", operationType="PARTIAL_CLOSE")
    assert check("validation.unknown_operation_type_rejected")(exchange, CTX) is NA


def test_the_decimal_pattern_comes_from_the_spec_and_matches_the_whole_string(mutate):
    plus = ex("executeAdjustment", amount="+5.00")
    assert isinstance(check("validation.non_decimal_amount_rejected")(plus, CTX), str)
    newline = ex("executeAdjustment", amount="5.00\n")
    assert isinstance(check("validation.non_decimal_amount_rejected")(newline, CTX), str)  # "$" is not the end
    mutate(lambda spec: schemas(spec)["DecimalString"].update(pattern="^[-+]?[0-9]+(\\.[0-9]+)?$"))
    assert check("validation.non_decimal_amount_rejected")(plus, CTX) is NA


def test_the_epoch_range_comes_from_the_spec(mutate):
    exchange = ex("executeAdjustment", requestTime=123456789012)  # 12 digits
    assert isinstance(check("validation.request_time_not_13_digits_rejected")(exchange, CTX), str)
    mutate(lambda spec: schemas(spec)["EpochMillis"].update(minimum=100000000000))
    assert check("validation.request_time_not_13_digits_rejected")(exchange, CTX) is NA


def test_required_headers_come_from_the_spec(mutate):
    no_timestamp = ex("executeAdjustment", drop=("timestamp",))
    assert isinstance(check("headers.missing_timestamp_rejected")(no_timestamp, CTX), str)

    def optional_on_execute(spec):
        parameters = spec["paths"]["/external-system-credit-limit-adjustment"]["post"]["parameters"]
        parameters[:] = [p for p in parameters if "timestamp" not in p.get("$ref", "")]
        parameters.append({"$ref": "#/components/parameters/timestampOptional"})

    mutate(optional_on_execute)
    assert check("headers.missing_timestamp_rejected")(no_timestamp, CTX) is NA


def test_the_deadline_comes_from_the_spec(mutate):
    slow = ex("executeAdjustment", elapsed=1500.0)
    assert check("robustness.execute_within_deadline")(slow, CTX) is None
    mutated = mutate(lambda spec: spec["paths"]["/external-system-credit-limit-adjustment"]["post"].update(
        {"x-timeout-ms": 1000}))
    from conformance.checks import Context

    ctx = Context(accounts=CTX.accounts)  # a context made now reads the deadline from the (changed) contract
    assert mutated.rules.execute_deadline_ms == 1000
    assert isinstance(check("robustness.execute_within_deadline")(slow, ctx), str)


def test_money_operations_come_from_the_spec():
    assert contract.load().rules.money_operations == ("executeAdjustment", "cancelAdjustment")
