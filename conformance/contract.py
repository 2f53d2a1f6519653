"""The contract as data: the OpenAPI document, the requirement catalogue, the reference text.

One source of truth: ``spec/`` at the repository root, shipped in the wheel as the
package ``conformance._spec``. Everything else reads the contract through
:func:`load`; nothing opens the files on its own.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SPEC_FILE = "webhook.openapi.yaml"
CATALOGUE_FILE = "requirements.yaml"
REFERENCE_FILE = "webhook-api.reference.md"

LEVELS = ("MUST", "SHOULD")
BASES = {"documented": "MUST", "http": "MUST", "ambiguous": "SHOULD", "inferred": "SHOULD"}
ID_PATTERN = re.compile(r"^(ENV|HDR|VAL|CUR|BAL|EXE|CAN|ROB|DLV)-\d{3}$")


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    basis: str
    operations: tuple[str, ...]
    statement: str
    source: tuple[str, ...]
    clause: str
    money: bool = False

    @property
    def is_must(self) -> bool:
        return self.level == "MUST"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str  # path suffix relative to the base URL, e.g. "/get-user-amount"
    header_parameters: tuple[dict, ...]
    request_schema: dict
    response_schema: dict
    timeout_ms: float | None = None  # x-timeout-ms: the platform's documented deadline, when there is one
    moves_money: bool = False  # x-money: the call can move money (execute, cancel)

    @property
    def required_headers(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.header_parameters if p.get("required"))

    @property
    def optional_headers(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.header_parameters if not p.get("required"))

    def header_schema(self, name: str) -> dict | None:
        lowered = name.lower()
        return next((p["schema"] for p in self.header_parameters if p["name"].lower() == lowered), None)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.request_schema.get("required", ()))

    def field_schema(self, name: str) -> dict | None:
        return self.request_schema.get("properties", {}).get(name)

    @property
    def max_lengths(self) -> dict[str, int]:
        """Body field -> maxLength, as the request schema declares them."""
        return {name: prop["maxLength"] for name, prop in self.request_schema.get("properties", {}).items()
                if isinstance(prop, dict) and "maxLength" in prop}


@dataclass(frozen=True)
class Rules:
    """The rules' limits, enums and patterns, read from the spec (never copied into code)."""

    decimal_pattern: re.Pattern[str]  # components.schemas.DecimalString.pattern, matched against the whole string
    epoch_millis: tuple[int, int]  # components.schemas.EpochMillis minimum, maximum
    biz_types: tuple[int, ...]  # components.schemas.BizType.enum
    operation_types: tuple[str, ...]  # components.schemas.OperationType.enum
    execute_deadline_ms: float  # x-timeout-ms of the execute operation
    money_operations: tuple[str, ...]  # operations with x-money: true
    documented_headers: tuple[str, ...]  # every header parameter name, in spec order

    def is_decimal(self, value: Any) -> bool:
        """A plain decimal string: the spec's pattern over the WHOLE string ("42.10\\n" is not one)."""
        return isinstance(value, str) and self.decimal_pattern.fullmatch(value) is not None

    def is_epoch_millis(self, value: Any) -> bool:
        low, high = self.epoch_millis
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    def is_epoch_millis_text(self, text: str) -> bool:
        """A header value that is the decimal digits of an in-range epoch-milliseconds integer."""
        return text.isascii() and text.isdigit() and self.is_epoch_millis(int(text))


@dataclass(frozen=True, eq=False)
class Contract:
    spec_dir: Path
    spec: dict
    spec_bytes: bytes
    catalogue_bytes: bytes
    reference_bytes: bytes
    requirements: dict[str, Requirement]
    operations: dict[str, Operation]

    @functools.cached_property
    def rules(self) -> Rules:
        schemas = _resolve(self.spec, self.spec["components"]["schemas"])
        execute = self.operations["executeAdjustment"]
        names: list[str] = []
        for operation in self.operations.values():
            names += [p["name"] for p in operation.header_parameters if p["name"] not in names]
        return Rules(
            decimal_pattern=re.compile(schemas["DecimalString"]["pattern"]),
            epoch_millis=(schemas["EpochMillis"]["minimum"], schemas["EpochMillis"]["maximum"]),
            biz_types=tuple(schemas["BizType"]["enum"]),
            operation_types=tuple(schemas["OperationType"]["enum"]),
            execute_deadline_ms=float(execute.timeout_ms),  # type: ignore[arg-type]
            money_operations=tuple(op.operation_id for op in self.operations.values() if op.moves_money),
            documented_headers=tuple(names),
        )

    @property
    def spec_path(self) -> Path:
        return self.spec_dir / SPEC_FILE

    @property
    def catalogue_path(self) -> Path:
        return self.spec_dir / CATALOGUE_FILE

    @property
    def reference_path(self) -> Path:
        return self.spec_dir / REFERENCE_FILE

    @property
    def spec_sha256(self) -> str:
        return hashlib.sha256(self.spec_bytes).hexdigest()

    @property
    def catalogue_sha256(self) -> str:
        return hashlib.sha256(self.catalogue_bytes).hexdigest()

    def requirement(self, requirement_id: str) -> Requirement:
        return self.requirements[requirement_id]

    def operation_for_path(self, path: str) -> Operation | None:
        """The operation whose path suffix ends ``path`` (the base URL may carry a prefix)."""
        path = path.split("?", 1)[0].rstrip("/")
        for operation in self.operations.values():
            if path.endswith(operation.path):
                return operation
        return None

    def reference_sections(self) -> set[str]:
        """Section numbers of the reference text: "2", "2.4", ..."""
        text = self.reference_bytes.decode("utf-8")
        return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", text, flags=re.MULTILINE))


def spec_directory() -> Path:
    """Where the contract files are: the installed package data, else the source tree."""
    try:
        root = resources.files("conformance._spec")
        candidate = Path(str(root))
        if (candidate / SPEC_FILE).is_file():
            return candidate
    except ModuleNotFoundError:
        pass
    candidate = Path(__file__).resolve().parent.parent / "spec"
    if (candidate / SPEC_FILE).is_file():
        return candidate
    raise FileNotFoundError("the contract files (spec/) are missing from this installation")


def _resolve(spec: dict, node: Any) -> Any:
    """Inline every local $ref (the spec has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node and len(node) == 1:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(spec, target)
        return {key: _resolve(spec, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, item) for item in node]
    return node


def _operations(spec: dict) -> dict[str, Operation]:
    operations = {}
    for path, item in spec["paths"].items():
        for method, raw in item.items():
            op = _resolve(spec, raw)
            operations[op["operationId"]] = Operation(
                operation_id=op["operationId"],
                method=method.upper(),
                path=path,
                header_parameters=tuple(p for p in op.get("parameters", []) if p["in"] == "header"),
                request_schema=op["requestBody"]["content"]["application/json"]["schema"],
                response_schema=op["responses"]["200"]["content"]["application/json"]["schema"],
                timeout_ms=op.get("x-timeout-ms"),
                moves_money=bool(op.get("x-money", False)),
            )
    return operations


def _requirements(catalogue: dict) -> dict[str, Requirement]:
    requirements: dict[str, Requirement] = {}
    for entry in catalogue["requirements"]:
        requirement = Requirement(
            id=entry["id"],
            level=entry["level"],
            basis=entry["basis"],
            operations=tuple(entry["operations"]),
            statement=entry["statement"],
            source=tuple(str(s) for s in entry["source"]),
            clause=entry["clause"],
            money=bool(entry.get("money", False)),
        )
        if requirement.id in requirements:
            raise ValueError(f"duplicate requirement id {requirement.id}")
        requirements[requirement.id] = requirement
    return requirements


@functools.cache
def load() -> Contract:
    directory = spec_directory()
    spec_bytes = (directory / SPEC_FILE).read_bytes()
    catalogue_bytes = (directory / CATALOGUE_FILE).read_bytes()
    spec = yaml.safe_load(spec_bytes)
    return Contract(
        spec_dir=directory,
        spec=spec,
        spec_bytes=spec_bytes,
        catalogue_bytes=catalogue_bytes,
        reference_bytes=(directory / REFERENCE_FILE).read_bytes(),
        requirements=_requirements(yaml.safe_load(catalogue_bytes)),
        operations=_operations(spec),
    )
