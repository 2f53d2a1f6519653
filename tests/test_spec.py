"""The contract as data is sound: the spec validates, its examples keep their schemas, the catalogue is well-formed."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from conformance import contract
from conformance.checks import schema as spec_schema

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "webhook-api.md"
CONTRACT = contract.load()


def test_spec_is_valid_openapi():
    validate(yaml.safe_load(CONTRACT.spec_bytes))


def test_spec_is_openapi_3_0_3_with_the_three_operations():
    assert CONTRACT.spec["openapi"] == "3.0.3"
    assert {(op.method, op.path) for op in CONTRACT.operations.values()} == {
        ("POST", "/get-user-amount"),
        ("POST", "/external-system-credit-limit-adjustment"),
        ("POST", "/cancel-external-system-credit-limit-adjustment"),
    }
    server = CONTRACT.spec["servers"][0]
    assert server["variables"]["basePath"]["default"] == "/api/cats-gateway"
    assert server["variables"]["host"]["default"] == "prewppc-3.cmfbl.com"


def _examples():
    for operation in CONTRACT.operations.values():
        raw = CONTRACT.spec["paths"][operation.path]["post"]
        for name, example in raw["requestBody"]["content"]["application/json"]["examples"].items():
            yield pytest.param(
                operation.operation_id, "request", example["value"], id=f"{operation.operation_id}-{name}"
            )
        for name, example in raw["responses"]["200"]["content"]["application/json"]["examples"].items():
            yield pytest.param(
                operation.operation_id, "response", example["value"], id=f"{operation.operation_id}-{name}"
            )


@pytest.mark.parametrize(("operation", "which", "value"), list(_examples()))
def test_every_example_validates_against_its_schema(operation, which, value):
    errors = (spec_schema.request_errors if which == "request" else spec_schema.response_errors)(operation, value)
    assert errors == []


def test_header_examples_validate():
    for operation in CONTRACT.operations.values():
        for parameter in operation.header_parameters:
            jsonschema.validate(parameter["example"], spec_schema.to_json_schema(parameter["schema"]))


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("executeAdjustment", {"tradeType": 81, "accountId": 15, "sortType": "desc"}),  # the vendor's placeholder
        ("cancelAdjustment", {"tradeType": 81, "accountId": 15, "sortType": "desc"}),
    ],
)
def test_vendor_placeholder_examples_are_not_valid_requests(operation, body):
    assert spec_schema.request_errors(operation, body)


def _field_table():
    """Every field of the reference's request tables (§3.1, §4.1, §5.1): name, required, limit."""
    return {
        "getUserAmount": {"thirdServerCode": (True, None), "userName": (True, None), "currency": (True, None)},
        "executeAdjustment": {
            "thirdServerCode": (True, None),
            "userName": (True, 48),
            "currency": (True, 16),
            "bizType": (True, None),
            "operationType": (True, None),
            "amount": (True, None),
            "amountDigits": (True, None),
            "orderId": (True, None),
            "requestUniqueNo": (True, 48),
            "requestTime": (True, None),
            "ip": (True, None),
            "metadata": (False, 200),
        },
        "cancelAdjustment": {
            "thirdServerCode": (True, None),
            "userName": (True, 48),
            "currency": (True, 16),
            "bizType": (True, None),
            "amount": (True, None),
            "amountDigits": (True, None),
            "orderId": (False, None),
            "requestUniqueNo": (True, 48),
            "reverseRequestUniqueNo": (True, None),
            "requestTime": (True, None),
            "ip": (True, None),
            "cancelRemark": (True, 200),
            "metadata": (False, 200),
        },
    }


@pytest.mark.parametrize("operation", list(CONTRACT.operations))
def test_spec_transcribes_every_documented_field(operation):
    schema = CONTRACT.operations[operation].request_schema
    expected = _field_table()[operation]
    assert set(schema["properties"]) == set(expected)
    assert set(schema["required"]) == {name for name, (required, _) in expected.items() if required}
    for name, (_, limit) in expected.items():
        assert schema["properties"][name].get("maxLength") == limit, name


def test_documented_enums_and_patterns():
    execute = CONTRACT.operations["executeAdjustment"].request_schema["properties"]
    assert execute["bizType"]["enum"] == [1, 2, 10, 11, 12]
    assert execute["operationType"]["enum"] == ["OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"]
    assert execute["requestTime"]["minimum"] == 10**12 and execute["requestTime"]["maximum"] == 10**13 - 1
    headers = {p["name"]: p for p in CONTRACT.operations["cancelAdjustment"].header_parameters}
    assert headers["timestamp"]["required"] is False and headers["trace"]["required"] is True
    for op in ("getUserAmount", "executeAdjustment"):
        named = {p["name"]: p for p in CONTRACT.operations[op].header_parameters}
        assert named["timestamp"]["required"] is True and named["companyId"]["schema"]["type"] == "integer"


def test_ambiguity_decisions_cite_existing_reference_sections():
    sections = CONTRACT.reference_sections()
    decisions = CONTRACT.spec["info"]["x-decisions"]
    assert len(decisions) >= 10
    for decision in decisions:
        cited = [s.strip().lstrip("§") for s in decision["source"].split(",")]
        # "§8.14" names item 14 of the numbered list in section 8.
        assert cited and all(c in sections or c.split(".")[0] in {"8", "11", "12"} for c in cited), decision["id"]


# -------------------------------------------------------------------- catalogue
def test_catalogue_has_enough_requirements_each_graded_and_sourced():
    requirements = CONTRACT.requirements
    assert len(requirements) >= 35
    sections = CONTRACT.reference_sections()
    for requirement in requirements.values():
        assert contract.ID_PATTERN.match(requirement.id), requirement.id
        assert requirement.level in contract.LEVELS
        # MUST only for what the docs or HTTP state; inferred or ambiguous rules are SHOULD.
        assert contract.BASES[requirement.basis] == requirement.level, requirement.id
        assert requirement.statement and requirement.clause
        assert requirement.source and all(s in sections for s in requirement.source), requirement.id


def test_catalogue_ids_are_unique_in_the_file():
    ids = [entry["id"] for entry in yaml.safe_load(CONTRACT.catalogue_bytes)["requirements"]]
    assert len(ids) == len(set(ids))


def test_catalogue_and_spec_agree_on_operation_names():
    used = {op for requirement in CONTRACT.requirements.values() for op in requirement.operations}
    assert used == set(CONTRACT.operations)


def test_every_requirement_has_a_check():
    from conformance.checks import checks_for

    assert [rid for rid in CONTRACT.requirements if not checks_for(rid)] == []


@pytest.mark.skipif(not SHARED_REFERENCE.exists(), reason="shared/reference is not beside this checkout")
def test_pinned_reference_matches_the_shared_one():
    assert CONTRACT.reference_bytes == SHARED_REFERENCE.read_bytes(), (
        "spec/webhook-api.reference.md differs from shared/reference/webhook-api.md: re-pin it and review the spec"
    )
