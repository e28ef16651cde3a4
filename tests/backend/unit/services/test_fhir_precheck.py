"""The compiled pre-check (services/fhir_precheck.py) against the R4B models it stands in for.

Soundness: whatever the pre-check accepts, the resource's model accepts and the FHIR JSON
shape rules hold — checked on the HL7 examples and on mutations of them (members dropped,
added, duplicated across a choice, set to other values; nulls and empty objects put in).
Usefulness: the valid examples of the types it compiles pass it, so ingest rarely needs the
models at all. What it refuses goes to the models, whose answer is the one reported.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from careledger.services import fhir
from careledger.services.fhir_precheck import Precheck
from tests.backend.unit.services.fhir_files import example_names, load

PRECHECK = fhir._precheck()
COMPILED = sorted(n for n in example_names() if load(n)["resourceType"] in PRECHECK.resource_types)
# Examples the pre-check leaves to the models, and why: each holds a resource of a type it does
# not compile (an OperationOutcome in a response, Parameters in a transaction).
LEFT_TO_THE_MODELS = {"Bundle-bundle-response.json", "Bundle-bundle-transaction.json"}


def model_accepts(resource: Any) -> bool:
    try:
        fhir.get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, KeyError, TypeError, AttributeError, ValueError):
        return False
    return True


def test_compiles_every_record_type_and_the_transaction_bundle() -> None:
    assert set(fhir.CATEGORIES) | {"Bundle"} <= PRECHECK.resource_types


@pytest.mark.parametrize("name", COMPILED)
def test_valid_examples_pass_without_the_models(name: str) -> None:
    resource = load(name)
    assert model_accepts(resource)
    assert PRECHECK.accepts(resource) is (name not in LEFT_TO_THE_MODELS)


def test_known_faults_are_refused() -> None:
    obs = load("Observation-f001.json")
    faults: list[dict[str, Any]] = [
        {k: v for k, v in obs.items() if k != "code"},  # a required element missing
        {k: v for k, v in obs.items() if k != "status"},  # a required primitive missing
        obs | {"valueString": "6.3"},  # two values of one choice element
        obs | {"status": "final "},  # a code with trailing space
        obs | {"issued": "2013-02-30T10:00:00Z"},  # no such day
        obs | {"unknownElement": True},
        obs | {"identifier": [None]},  # null in a list of complex elements
        obs | {"identifier": []},
        obs | {"code": {}},
        obs | {"resourceType": "Condition"},
        obs | {"contained": [{"resourceType": "Parameters", "id": "p"}]},
        obs | {"valueQuantity": obs["valueQuantity"] | {"value": [6]}},
    ]
    for fault in faults:
        assert not PRECHECK.accepts(fault), fault


def test_a_model_with_rules_it_does_not_know_is_left_to_the_model() -> None:
    # Consent is not compiled here; a Precheck that names it would compile it, but an unknown
    # resource type at the top is refused, never guessed at.
    assert not PRECHECK.accepts(load("Consent-consent-example-signature.json"))
    assert Precheck(["Observation"]).accepts(load("Observation-f001.json"))
    assert not Precheck(["Observation"]).accepts(load("Condition-example.json"))


# --- mutations ---------------------------------------------------------------------------

ELEMENT_NAMES = sorted(
    {
        field.alias or name
        for model_name in PRECHECK.resource_types
        for model in [fhir.get_fhir_model_class(model_name)]
        for name, field in model.model_fields.items()
    }
    | {"value", "valueString", "valueQuantity", "_status", "reference", "system", "code", "div", "extension"}
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            " ",
            "final",
            "x y",
            "2013-04-02",
            "2013-02-29",
            "2012-02-29",
            "2013-04-02T09:30:10+01:00",
            "2013-04-02T09:30:10",
            "2013-04",
            "2013",
            "2013-13",
            "2013-02-30",
            "2013-04-02T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2015-06-30T23:59:60.5+14:00",
            "2013-04-02T09:30:10.123456789Z",
            "2013-04-02T09:30:10+14:30",
            "2013-04-02T09:30Z",
            "0001-01-01T00:00:00Z",
            "6.3",
            "1e5",
            "09:30:10",
            "http://loinc.org",
            "urn:uuid:x",
            "Patient/f001",
            "1.2.3",
            "abc\u0000",
            "-1",
            "0",
            "AAAA",
            "A===",
            '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            "<div>x</div>",
            "a" * 70,
        ]
    ),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(ELEMENT_NAMES), inner, max_size=3)
    ),
    max_leaves=6,
)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if isinstance(value, dict | list) else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        found += _containers(item, (*path, key))
    return found


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutants(draw: st.DrawFn) -> dict[str, Any]:
    resource = copy.deepcopy(load(draw(st.sampled_from(COMPILED))))
    for _ in range(draw(st.integers(1, 3))):
        target = _at(resource, draw(st.sampled_from(_containers(resource))))
        action = draw(st.sampled_from(["drop", "set", "add", "null", "empty"]))
        if isinstance(target, list):
            if action == "drop" and len(target) > 1:
                target.pop(draw(st.integers(0, len(target) - 1)))
            elif action == "null":
                target.append(None)
            elif target:
                target[draw(st.integers(0, len(target) - 1))] = draw(VALUES)
        elif target:
            key = draw(st.sampled_from(sorted(target)))
            if action == "drop":
                del target[key]
            elif action == "add":
                target[draw(st.sampled_from(ELEMENT_NAMES))] = draw(VALUES)
            elif action == "null":
                target[key] = None
            elif action == "empty":
                target[key] = draw(st.sampled_from([{}, [], ""]))
            else:
                target[key] = draw(VALUES)
    return resource


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_what_the_precheck_accepts_the_model_accepts(resource: dict[str, Any]) -> None:
    if PRECHECK.accepts(resource):
        assert model_accepts(resource)
        assert fhir._shape_ok(resource)


def test_decimals_and_integers_as_parsed_pass() -> None:
    obs = load("Observation-f001.json")
    assert isinstance(obs["valueQuantity"]["value"], Decimal)
    assert PRECHECK.accepts(obs | {"valueQuantity": obs["valueQuantity"] | {"value": 6}})


DATES_AND_DECIMALS = [
    # (field of Observation, value, whether the pre-check itself must accept it)
    ("issued", "2013-04-03T15:30:10+01:00", True),
    ("issued", "2013-04-03T15:30:10.123Z", True),
    ("issued", "2016-12-31T23:59:60Z", False),  # a leap second: the model keeps the string
    ("issued", "2013-04-03", False),  # an instant has a time
    ("issued", "2013-04-03T15:30:10", False),  # and a zone
    ("issued", "2013-02-30T15:30:10Z", False),
    ("issued", 1364999410, False),
    ("effectiveDateTime", "2013-04-02T09:30:10+01:00", True),
    ("effectiveDateTime", "2013-04-02", True),
    ("effectiveDateTime", "2013-04", True),  # partial dates: the model keeps the string
    ("effectiveDateTime", "2013", True),
    ("effectiveDateTime", "0000", False),
    ("effectiveDateTime", "2013-13", False),
    ("effectiveDateTime", "2013-00", False),
    ("effectiveDateTime", "2013-02-29", False),
    ("effectiveDateTime", "2013-04-02T09:30:10", False),
    ("effectiveDateTime", "2013-04-02T24:00:00Z", False),
    ("effectiveDateTime", " 2013-04-02", False),
    ("effectiveDateTime", "2013-04-02\n", False),
    ("valueQuantity", {"value": Decimal("6.3")}, True),
    ("valueQuantity", {"value": Decimal("1E+5")}, True),
    ("valueQuantity", {"value": Decimal("-0.000")}, True),
    ("valueQuantity", {"value": 6}, True),
    ("valueQuantity", {"value": 2**63 - 1}, True),
    ("valueQuantity", {"value": 10**30}, False),
    ("valueQuantity", {"value": "6.3"}, False),
    ("valueQuantity", {"value": True}, False),
    ("valueQuantity", {"value": Decimal("NaN")}, False),
    ("valueQuantity", {"value": Decimal("Infinity")}, False),
    ("valueQuantity", {"value": 6.3}, False),
]


@pytest.mark.parametrize(("field", "value", "fast"), DATES_AND_DECIMALS)
def test_dates_and_decimals_are_checked_in_rust_and_soundly(field: str, value: Any, fast: bool) -> None:
    """fhir_core checks these types in Python; the pre-check's Rust schemas accept what it
    accepts in the common forms and never what it refuses."""
    obs = load("Observation-f001.json")
    obs.pop("effectivePeriod")
    resource = obs | {field: value}
    assert PRECHECK.accepts(resource) is fast
    if fast:
        assert model_accepts(resource)


def _all_references(value: Any) -> list[str]:
    """Every string `reference` member of every object, as the reference rewriting sees them."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                found.append(item["reference"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_what_the_precheck_accepts_it_reports_every_reference_of(resource: dict[str, Any]) -> None:
    # split_transaction skips rewriting bundle-local references when none of these needs it
    collected: list[str] = []
    if PRECHECK.accepts(resource, collected):
        assert sorted(_all_references(resource)) == sorted(collected)


def test_references_are_collected_from_every_resource_of_a_bundle() -> None:
    resources = [
        load("Observation-f001.json"),
        load("Condition-example.json"),
        load("Encounter-example.json"),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }
    collected: list[str] = []
    assert PRECHECK.accepts(bundle, collected)
    assert len(collected) >= 3 and sorted(collected) == sorted(_all_references(bundle))
