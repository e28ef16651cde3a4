from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from fhir.resources.R4B import get_fhir_model_class

from careledger.codes import Category, Purpose, mask
from careledger.services.fhir import FhirInvalid, Issue, patient_reference, validate
from careledger.services.fhir_consent import (
    GrantTerms,
    GrantView,
    consent_to_grant_terms,
    grant_to_fhir_consent,
    grants_to_fhir_consent,
)
from tests.backend.unit.services.fhir_files import load

CLINIC = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
INSURER = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
FIRST = "Consent.provision.provision[0]"


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _resolve(reference: dict[str, Any]) -> str:
    assert reference["reference"] == "Organization/insurer-1"
    return INSURER.lower()


def _no_resolver(reference: dict[str, Any]) -> str:
    raise AssertionError(f"resolve_actor should not be called for {reference}")


def _consent() -> dict[str, Any]:
    return load("consent-permit.json")


def _refusal(consent: dict[str, Any]) -> FhirInvalid:
    with pytest.raises(FhirInvalid) as caught:
        consent_to_grant_terms(consent, resolve_actor=_resolve)
    return caught.value


def test_consent_to_grant_terms_reads_the_fixture() -> None:
    assert consent_to_grant_terms(_consent(), resolve_actor=_resolve) == [
        GrantTerms(
            grantee=CLINIC,
            categories=mask([Category.OBSERVATIONS, Category.CONDITIONS, Category.DIAGNOSTICS]),
            purposes=mask([Purpose.TREAT, Purpose.ETREAT]),
            valid_from=_unix("2026-01-01T00:00:00+00:00"),
            valid_until=_unix("2027-01-01T00:00:00+00:00"),  # the root period's end date is inclusive
        ),
        GrantTerms(
            grantee=INSURER,  # resolved, then checksummed
            categories=mask([Category.CLAIMS]),
            purposes=mask([Purpose.HPAYMT]),
            valid_from=_unix("2026-03-01T00:00:00+00:00"),
            valid_until=_unix("2026-07-01T00:00:00+00:00"),  # 23:59:59 inclusive
        ),
    ]


def test_consent_to_grant_terms_calls_the_resolver_only_without_member_identifier() -> None:
    consent = _consent()
    del consent["provision"]["provision"][1]
    [grant] = consent_to_grant_terms(consent, resolve_actor=_no_resolver)
    assert grant.grantee == CLINIC


def test_consent_to_grant_terms_passes_resolver_refusals_on_with_the_actor_path() -> None:
    def unknown(reference: dict[str, Any]) -> str:
        raise FhirInvalid([Issue("not-found", "no member is known as Organization/insurer-1")])

    with pytest.raises(FhirInvalid) as caught:
        consent_to_grant_terms(_consent(), resolve_actor=unknown)
    assert (caught.value.code, caught.value.issues[0].expression) == (
        "not-found",
        "Consent.provision.provision[1].actor[0].reference",
    )


GRANTS = [
    GrantView(
        "0x" + "12" * 32,
        CLINIC.lower(),
        mask(Category),
        mask([Purpose.TREAT]),
        0,
        1_798_761_600,
        False,
        1_767_225_600,
    ),
    GrantView(
        "0x" + "3A" * 32,
        INSURER,
        mask([Category.CLAIMS, Category.DEMOGRAPHICS]),
        mask([Purpose.HPAYMT, Purpose.HOPERAT]),
        1_767_225_601,
        1_767_312_000,
        False,
        1_767_225_000,
    ),
    GrantView(
        "0x" + "00" * 31 + "01", CLINIC, mask([Category.PROCEDURES]), mask([Purpose.PATRQT]), 5, 6, False, 4
    ),
]


def test_grants_to_fhir_consent_validates_with_r4b() -> None:
    bundle = grants_to_fhir_consent("Patient/example", GRANTS)
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert (bundle["type"], bundle["total"]) == ("searchset", len(GRANTS))
    for entry in bundle["entry"]:
        validate(entry["resource"])
        assert patient_reference(entry["resource"]) == "Patient/example"


@pytest.mark.parametrize("grant", GRANTS, ids=lambda g: g.consent_id[:6])
def test_grant_export_round_trips_through_import(grant: GrantView) -> None:
    consent = grant_to_fhir_consent("Patient/example", grant)
    assert consent_to_grant_terms(consent, resolve_actor=_no_resolver) == [
        GrantTerms(
            to_checksum_address(grant.grantee),
            grant.categories,
            grant.purposes,
            grant.valid_from,
            grant.valid_until,
        )
    ]


def test_grant_export_names_the_consent_and_spells_out_categories() -> None:
    consent = grant_to_fhir_consent("Patient/example", GRANTS[1])
    assert consent["id"] == "3a" * 32
    assert consent["identifier"] == [{"system": "urn:careledger:consent", "value": "0x" + "3a" * 32}]
    provision = consent["provision"]["provision"][0]
    assert [c["code"] for c in provision["class"]] == [
        "Patient",
        "RelatedPerson",
        "Claim",
        "ClaimResponse",
        "ExplanationOfBenefit",
        "Coverage",
    ]
    assert provision["period"] == {"start": "2026-01-01T00:00:01Z", "end": "2026-01-01T23:59:59Z"}


def test_revoked_grant_exports_inactive_and_is_refused_on_import() -> None:
    revoked = GrantView(**{**GRANTS[0].__dict__, "revoked": True})
    consent = grant_to_fhir_consent("Patient/example", revoked)
    assert consent["status"] == "inactive"
    assert "Revoked." in consent["text"]["div"]
    with pytest.raises(FhirInvalid) as caught:
        consent_to_grant_terms(consent, resolve_actor=_no_resolver)
    assert (caught.value.code, caught.value.issues[0].expression) == ("value", "Consent.status")


@pytest.mark.parametrize(
    ("field", "value"),
    [("categories", 0), ("categories", 1 << 11), ("purposes", 1 << Purpose.BTG), ("consent_id", "0x12")],
)
def test_grant_export_rejects_what_the_chain_never_holds(field: str, value: Any) -> None:
    with pytest.raises(ValueError):
        grant_to_fhir_consent("Patient/example", GrantView(**{**GRANTS[0].__dict__, field: value}))


def test_consent_to_grant_terms_refuses_break_glass() -> None:
    consent = _consent()
    consent["provision"]["provision"][0]["purpose"][1]["code"] = "BTG"
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == ("not-supported", f"{FIRST}.purpose[1]")
    assert "break-glass" in str(error)


@pytest.mark.parametrize(
    "purpose",
    [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "PAYMT"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "treat"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "TREAT"},
    ],
)
def test_consent_to_grant_terms_refuses_unknown_purposes(purpose: dict[str, str]) -> None:
    consent = _consent()
    consent["provision"]["provision"][0]["purpose"] = [purpose]
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == ("code-invalid", f"{FIRST}.purpose[0]")


def test_consent_to_grant_terms_refuses_deny_provisions() -> None:
    nested = _consent()
    nested["provision"]["provision"][0]["type"] = "deny"
    error = _refusal(nested)
    assert (error.code, error.issues[0].expression) == ("not-supported", f"{FIRST}.type")
    assert "permit-only" in str(error)
    root = _consent()
    root["provision"]["type"] = "deny"
    error = _refusal(root)
    assert (error.code, error.issues[0].expression) == ("not-supported", "Consent.provision.type")


def test_consent_to_grant_terms_refuses_nested_provision_without_type() -> None:
    consent = _consent()
    del consent["provision"]["provision"][0]["type"]
    assert (_refusal(consent).code, _refusal(consent).issues[0].expression) == ("required", f"{FIRST}.type")


@pytest.mark.parametrize(
    ("name", "code", "expression"),
    [
        (
            "Consent-consent-example-Emergency.json",
            "not-supported",
            "Consent.policyRule",
        ),  # opt-out with a deny
        ("Consent-consent-example-smartonfhir.json", "required", f"{FIRST}.purpose"),  # no purpose, no actor
        ("Consent-consent-example-signature.json", "not-supported", "Consent.provision.actor"),
    ],
)
def test_consent_to_grant_terms_refuses_official_examples(name: str, code: str, expression: str) -> None:
    error = _refusal(load(name))
    assert (error.code, error.issues[0].expression) == (code, expression)


def test_consent_to_grant_terms_collects_issues_from_every_provision() -> None:
    consent = _consent()
    consent["provision"]["provision"][0]["purpose"][0]["code"] = "BTG"
    consent["provision"]["provision"][1]["type"] = "deny"
    assert [i.expression for i in _refusal(consent).issues] == [
        f"{FIRST}.purpose[0]",
        "Consent.provision.provision[1].type",
    ]


def test_consent_to_grant_terms_refuses_open_ended_grant() -> None:
    consent = _consent()
    del consent["provision"]["period"]
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == ("required", FIRST)
    assert "period with an end" in str(error)


def test_consent_to_grant_terms_refuses_empty_window() -> None:
    consent = _consent()
    consent["provision"]["provision"][1]["period"] = {"start": "2027-01-01"}  # after the root's end
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == ("value", "Consent.provision.provision[1].period")


@pytest.mark.parametrize(
    ("period", "valid_from", "valid_until"),
    [
        ({"start": "2026", "end": "2026-06"}, "2026-01-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00"),
        ({"end": "2026-12"}, None, "2027-01-01T00:00:00+00:00"),
        (
            {"start": "2026-03-01T09:00:00+02:00", "end": "2026-03-01T17:00:00-05:00"},
            "2026-03-01T07:00:00+00:00",
            "2026-03-01T22:00:01+00:00",
        ),
        (
            {"start": "2026-03-01T09:00:00.250Z", "end": "2026-03-01T10:00:00.500Z"},
            "2026-03-01T09:00:01+00:00",  # sub-second bounds round inwards
            "2026-03-01T10:00:00+00:00",
        ),
    ],
)
def test_consent_to_grant_terms_reads_periods_inclusively_and_never_wider(
    period: dict[str, str], valid_from: str | None, valid_until: str
) -> None:
    consent = _consent()
    del consent["provision"]["period"]
    consent["provision"]["provision"] = consent["provision"]["provision"][:1]
    consent["provision"]["provision"][0]["period"] = period
    [grant] = consent_to_grant_terms(consent, resolve_actor=_no_resolver)
    assert grant.valid_from == (_unix(valid_from) if valid_from else 0)
    assert grant.valid_until == _unix(valid_until)


CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"


@pytest.mark.parametrize(
    ("change", "code", "expression"),
    [
        (
            {"securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]},
            "not-supported",
            f"{FIRST}.securityLabel",
        ),
        ({"provision": [{"type": "permit"}]}, "not-supported", f"{FIRST}.provision"),
        (
            {"action": [{"coding": [{"system": CONSENT_ACTION, "code": "correct"}]}]},
            "not-supported",
            f"{FIRST}.action[0]",
        ),
        (
            {"class": [{"system": RESOURCE_TYPES, "code": "Organization"}]},
            "not-supported",
            f"{FIRST}.class[0]",
        ),
        (
            {"class": [{"system": "urn:ietf:bcp:13", "code": "text/plain"}]},
            "not-supported",
            f"{FIRST}.class[0]",
        ),
        ({"class": None}, "required", f"{FIRST}.class"),
        ({"actor": None}, "required", f"{FIRST}.actor"),
    ],
)
def test_consent_to_grant_terms_refuses_what_a_grant_cannot_express(
    change: dict[str, Any], code: str, expression: str
) -> None:
    consent = _consent()
    provision = consent["provision"]["provision"][0]
    provision.update({k: v for k, v in change.items() if v is not None})
    for key in [k for k, v in change.items() if v is None]:
        del provision[key]
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == (code, expression)


def test_consent_to_grant_terms_refuses_actor_that_is_not_a_recipient() -> None:
    consent = _consent()
    consent["provision"]["provision"][0]["actor"][0]["role"]["coding"][0]["code"] = "AUT"
    error = _refusal(consent)
    assert (error.code, error.issues[0].expression) == ("not-supported", f"{FIRST}.actor[0].role")


def test_consent_to_grant_terms_refuses_actor_that_is_not_an_organization() -> None:
    consent = _consent()
    consent["provision"]["provision"][1]["actor"][0]["reference"] = {"reference": "Practitioner/f204"}
    error = _refusal(consent)
    assert error.code == "not-supported"
    assert "member organizations" in str(error)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (CLINIC.upper().replace("0X", "0x"), None),  # one case throughout: no checksum to check
        (CLINIC.replace("E3605D", "e3605D"), "checksum"),  # one letter with the wrong case
        ("0x2c75", "20-byte address"),
        ("clinic-a", "20-byte address"),
    ],
)
def test_consent_to_grant_terms_checks_member_addresses(value: str, says: str | None) -> None:
    consent = _consent()
    consent["provision"]["provision"][0]["actor"][0]["reference"]["identifier"]["value"] = value
    if says is None:
        assert consent_to_grant_terms(consent, resolve_actor=_resolve)[0].grantee == CLINIC
        return
    error = _refusal(consent)
    assert error.code == "value" and says in str(error)


def test_consent_to_grant_terms_refuses_draft_and_other_scopes() -> None:
    draft = _consent() | {"status": "draft"}
    assert (_refusal(draft).code, _refusal(draft).issues[0].expression) == ("value", "Consent.status")
    research = _consent()
    research["scope"]["coding"][0]["code"] = "research"
    assert (_refusal(research).code, _refusal(research).issues[0].expression) == (
        "not-supported",
        "Consent.scope",
    )


def test_consent_to_grant_terms_refuses_consent_without_patient() -> None:
    consent = _consent()
    del consent["patient"]
    assert (_refusal(consent).code, _refusal(consent).issues[0].expression) == ("required", "Consent.patient")


def test_consent_to_grant_terms_refuses_other_resources() -> None:
    error = _refusal(load("Observation-f001.json"))
    assert (error.code, error.issues[0].expression) == ("invalid", "resourceType")


def test_consent_to_grant_terms_refuses_consent_without_scope() -> None:
    consent = _consent()
    del consent["scope"]
    assert (_refusal(consent).code, _refusal(consent).issues[0].expression) == ("required", "Consent.scope")


def test_consent_to_grant_terms_refuses_modifier_extensions() -> None:
    extension = [{"url": "http://example.org/fhir/StructureDefinition/unless", "valueBoolean": True}]
    consent = _consent() | {"modifierExtension": extension}
    assert _refusal(consent).code == "not-supported"
