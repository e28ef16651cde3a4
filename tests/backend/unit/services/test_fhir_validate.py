from __future__ import annotations

from typing import Any

import pytest

from careledger.codes import Category
from careledger.services.fhir import (
    CATEGORIES,
    PATIENT_ELEMENTS,
    FhirInvalid,
    PatientMismatch,
    category_of,
    check_record,
    patient_reference,
    require_patient,
    validate,
)
from tests.backend.unit.services.fhir_files import example_names, load

# Every curated example, with the category it maps to and the patient it is about.
RECORDS: dict[str, tuple[Category, str]] = {
    "Patient-example.json": (Category.DEMOGRAPHICS, "Patient/example"),
    "RelatedPerson-peter.json": (Category.DEMOGRAPHICS, "Patient/animal"),
    "Encounter-example.json": (Category.ENCOUNTERS, "Patient/example"),
    "EpisodeOfCare-example.json": (Category.ENCOUNTERS, "Patient/example"),
    "Condition-example.json": (Category.CONDITIONS, "Patient/example"),
    "Observation-example.json": (Category.OBSERVATIONS, "Patient/example"),
    "Observation-f001.json": (Category.OBSERVATIONS, "Patient/f001"),
    "Observation-f005.json": (Category.OBSERVATIONS, "Patient/f001"),
    "MedicationRequest-medrx002.json": (Category.MEDICATIONS, "Patient/pat1"),
    "MedicationStatement-example001.json": (Category.MEDICATIONS, "Patient/pat1"),
    "MedicationAdministration-medadmin0308.json": (Category.MEDICATIONS, "Patient/pat1"),
    "MedicationDispense-meddisp008.json": (Category.MEDICATIONS, "Patient/pat1"),
    "AllergyIntolerance-example.json": (Category.ALLERGIES, "Patient/example"),
    "Immunization-example.json": (Category.IMMUNIZATIONS, "Patient/example"),
    "Procedure-example.json": (Category.PROCEDURES, "Patient/example"),
    "DiagnosticReport-ultrasound.json": (Category.DIAGNOSTICS, "Patient/example"),
    "DiagnosticReport-f201.json": (Category.DIAGNOSTICS, "Patient/f201"),
    "ImagingStudy-example.json": (Category.DIAGNOSTICS, "Patient/dicom"),
    "DocumentReference-example.json": (Category.DOCUMENTS, "Patient/xcda"),
    "Composition-example.json": (Category.DOCUMENTS, "Patient/xcda"),
    "Claim-100150.json": (Category.CLAIMS, "Patient/1"),
    "ClaimResponse-R3500.json": (Category.CLAIMS, "Patient/1"),
    "ExplanationOfBenefit-EB3500.json": (Category.CLAIMS, "Patient/pat1"),
    "Coverage-9876B1.json": (Category.CLAIMS, "Patient/4"),
}
NOT_RECORDS = [
    "Organization-1.json",
    "Practitioner-example.json",
    "Medication-med0306.json",
    "Consent-consent-example-smartonfhir.json",
    "Consent-consent-example-signature.json",
    "Consent-consent-example-Emergency.json",
]


def _refusal(resource: dict[str, Any]) -> FhirInvalid:
    with pytest.raises(FhirInvalid) as caught:
        validate(resource)
    return caught.value


def _observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"}, **elements}


def test_curated_examples_are_all_classified_by_these_tests() -> None:
    bundles = {"Bundle-bundle-transaction.json", "Bundle-bundle-response.json"}
    assert set(example_names()) == set(RECORDS) | set(NOT_RECORDS) | bundles


@pytest.mark.parametrize("name", sorted(RECORDS) + NOT_RECORDS)
def test_validate_accepts_curated_example(name: str) -> None:
    validate(load(name))


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_category_of_maps_curated_example(name: str) -> None:
    assert category_of(load(name)["resourceType"]) is RECORDS[name][0]


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_check_record_accepts_curated_example_for_its_patient(name: str) -> None:
    category, patient = RECORDS[name]
    assert check_record(load(name), patient=patient) is category


@pytest.mark.parametrize(
    "resource_type", ["Organization", "Practitioner", "Consent", "Medication", "Binary", "Bundle"]
)
def test_category_of_refuses_types_that_are_not_records(resource_type: str) -> None:
    with pytest.raises(FhirInvalid) as caught:
        category_of(resource_type)
    assert caught.value.code == "not-supported"
    assert str(caught.value).startswith(f"{resource_type} is not accepted: ")


def test_category_of_says_where_consents_go() -> None:
    with pytest.raises(FhirInvalid, match="consent endpoint"):
        category_of("Consent")


def test_categories_table_covers_every_category_and_is_read_only() -> None:
    assert set(CATEGORIES.values()) == set(Category)
    with pytest.raises(TypeError):
        CATEGORIES["Organization"] = Category.DEMOGRAPHICS  # type: ignore[index]


def test_patient_elements_cover_every_record_type() -> None:
    assert set(CATEGORIES) - {"Patient"} <= set(PATIENT_ELEMENTS)


@pytest.mark.parametrize("resource_type", ["Foo", "HumanName", "Resource", "DomainResource", "patient"])
def test_validate_refuses_what_is_not_a_resource_type(resource_type: str) -> None:
    error = _refusal({"resourceType": resource_type})
    assert error.code == "not-supported"
    assert error.issues[0].expression == "resourceType"


def test_validate_refuses_missing_resource_type() -> None:
    assert _refusal({"id": "x"}).code == "required"


def test_validate_refuses_observation_without_status() -> None:
    resource = _observation()
    del resource["status"]
    error = _refusal(resource)
    assert error.code == "required"
    assert error.issues[0].expression == "Observation.status"


def test_validate_refuses_element_of_the_wrong_type() -> None:
    error = _refusal(_observation(category={"text": "laboratory"}))
    assert (error.code, error.issues[0].expression) == ("structure", "Observation.category")


def test_validate_refuses_malformed_primitive_with_its_path() -> None:
    error = _refusal(_observation(valueQuantity={"value": "1,5"}, effectiveDateTime="2026-13-01"))
    assert {(i.code, i.expression) for i in error.issues} == {
        ("value", "Observation.valueQuantity.value"),
        ("value", "Observation.effectiveDateTime"),
    }


def test_validate_refuses_unknown_element() -> None:
    error = _refusal(_observation(colour="red"))
    assert (error.code, error.issues[0].expression) == ("structure", "Observation.colour")


@pytest.mark.parametrize(
    ("elements", "expression"),
    [
        ({"subject": None}, "Observation.subject"),
        ({"subject": {}}, "Observation.subject"),
        ({"note": []}, "Observation.note"),
        ({"gender__ext": {"id": "x"}}, "Observation"),
    ],
)
def test_validate_refuses_what_fhir_json_forbids(elements: dict[str, Any], expression: str) -> None:
    error = _refusal(_observation(**elements))
    assert (error.code, error.issues[0].expression) == ("structure", expression)


def test_validate_accepts_null_aligning_primitive_extensions() -> None:
    extension = [{"url": "http://example.org/fhir/StructureDefinition/source", "valueString": "EHR"}]
    resource = {
        "resourceType": "Patient",
        "name": [{"given": ["Ann", "B."], "_given": [None, {"extension": extension}]}],
    }
    validate(resource)


def test_validate_refuses_id_longer_than_64() -> None:
    error = _refusal(_observation(id="a" * 65))
    assert (error.code, error.issues[0].expression) == ("value", "Observation.id")


def test_validate_refuses_unknown_contained_resource_type() -> None:
    error = _refusal(_observation(contained=[{"resourceType": "Foo", "id": "x"}]))
    assert error.code == "structure"


@pytest.mark.parametrize(("resource_type", "element"), sorted(PATIENT_ELEMENTS.items()))
def test_patient_reference_reads_the_patient_element_of_each_type(resource_type: str, element: str) -> None:
    resource = {"resourceType": resource_type, element: {"reference": "Patient/p-1", "display": "Ann"}}
    assert patient_reference(resource) == "Patient/p-1"


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_patient_reference_of_curated_example(name: str) -> None:
    assert patient_reference(load(name)) == RECORDS[name][1]


def test_patient_reference_drops_the_version() -> None:
    assert patient_reference(_observation(subject={"reference": "Patient/p-1/_history/3"})) == "Patient/p-1"


def test_patient_reference_is_none_when_no_patient_is_named() -> None:
    assert patient_reference(_observation()) is None
    assert patient_reference({"resourceType": "Patient"}) is None


@pytest.mark.parametrize(
    ("subject", "says"),
    [
        ({"reference": "Group/103"}, "refers to a Group"),
        ({"reference": "Patient/1", "type": "Group"}, "refers to a Group"),
        ({"identifier": {"system": "urn:oid:1.2.3", "value": "9"}}, "by identifier"),
        ({"reference": "https://other.example.org/fhir/Patient/1"}, "not a relative reference"),
        ({"reference": "#p1"}, "not a relative reference"),
        ({"reference": "urn:uuid:0b0b2bf4-32f5-4f80-9e2f-8b1e4c2e5c11"}, "not a relative reference"),
    ],
)
def test_patient_reference_refuses_what_cannot_be_matched(subject: dict[str, Any], says: str) -> None:
    with pytest.raises(FhirInvalid, match=says) as caught:
        patient_reference(_observation(subject=subject))
    assert caught.value.code == "not-supported"
    assert caught.value.issues[0].expression == "Observation.subject"


def test_patient_reference_refuses_unsupported_type() -> None:
    with pytest.raises(FhirInvalid) as caught:
        patient_reference(load("Organization-1.json"))
    assert caught.value.code == "not-supported"


def test_require_patient_refuses_mismatched_patient_reference() -> None:
    with pytest.raises(PatientMismatch) as caught:
        require_patient(load("Observation-f001.json"), "Patient/example")
    assert str(caught.value) == (
        "Observation.subject: is about Patient/f001, but this request is for Patient/example"
    )


def test_require_patient_refuses_another_patient_resource() -> None:
    with pytest.raises(PatientMismatch, match="is about Patient/example"):
        require_patient(load("Patient-example.json"), "Patient/pat1")


def test_require_patient_refuses_resource_naming_no_patient() -> None:
    with pytest.raises(FhirInvalid) as caught:
        require_patient(_observation(), "Patient/example")
    assert not isinstance(caught.value, PatientMismatch)
    assert (caught.value.code, caught.value.issues[0].expression) == ("required", "Observation.subject")


def test_require_patient_rejects_a_malformed_expected_patient() -> None:
    with pytest.raises(ValueError, match="not a Patient/<id>"):
        require_patient(load("Observation-f001.json"), "f001")


def test_check_record_refuses_type_that_is_not_a_record() -> None:
    with pytest.raises(FhirInvalid) as caught:
        check_record(load("Organization-1.json"), patient="Patient/example")
    assert caught.value.code == "not-supported"
