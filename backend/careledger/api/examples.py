"""Examples in the OpenAPI document: realistic bodies, and the official HL7 FHIR R4 examples.

The FHIR ones are copies of tests/fixtures/fhir (see its README): entries of
transaction-bundle.json and the first provision of consent-permit.json. A unit test
(tests/backend/unit/api/test_openapi.py) checks they still equal the fixtures.
"""

from __future__ import annotations

from typing import Any

from careledger.api.problems import outcome, problem
from careledger.services import fhir, fhir_consent

# Illustrative parties: the patient is docs/signing.md's test key, the members anvil's dev accounts.
PATIENT = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
CLINIC = "0xBcd4042DE499D14e55001CcbB24a551F3b954096"
INSURER = "0xFABB0ac9d68B0B445fB7357272Ff202C5651694a"
RECORD_ID = "0x3e3676684e58707964bd5b41eaa5b0c8be2a60a834c6128c1c746f67bd312de8"
CONSENT_ID = "0x9c1b6f0e8f6d2a4b7c3e5d1f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b"
COMMITMENT = "0x469a175c709e00a00a8cc9bc83f713f342f92f8d100470ccadb82934f95706c5"
TX_HASH = "0x5e2a0d6c2b8f4f1e9a7c3b1d0e8f6a4c2e0b9d7f5a3c1e8b6d4f2a0c8e6b4d2f"
# A 65-byte EIP-712 signature (r ‖ s ‖ v), hex.
SIGNATURE = (
    "0xc32fa3ed9d5946bcf6d2c4da1802daa2747249ba604add32f01929a7a002feb4"
    "5126c458f55a4ecfcb247728d2e6ec3074badb1499058c2e4edcc9031b0afe2f1c"
)
NONCE = 77256440799337013952461917708578675821
DEADLINE = 1767229200
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _typed(
    primary: str, fields: list[tuple[str, str]], domain: str, contract: str, message: dict[str, Any]
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, primary: [{"name": n, "type": t} for n, t in fields]},
        "primaryType": primary,
        "domain": {"name": domain, "version": "1", "chainId": 31337, "verifyingContract": contract},
        "message": message,
    }


ENROLLMENT_CREATE = {"patient": PATIENT, "localReference": "Patient/example"}
ENROLLMENT_OFFER = {
    "status": "pending",
    "typedData": _typed(
        "Enrollment",
        [
            ("patient", "address"),
            ("custodian", "address"),
            ("referenceCommitment", "bytes32"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ],
        "CareLedger RecordRegistry",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        {
            "patient": PATIENT,
            "custodian": CLINIC,
            "referenceCommitment": COMMITMENT,
            "nonce": NONCE,
            "deadline": DEADLINE,
        },
    ),
}
ENROLLMENT_SIGNATURE = {"nonce": NONCE, "deadline": DEADLINE, "signature": SIGNATURE}

GRANT_SUBMIT = {
    "message": {
        "patient": PATIENT,
        "grantee": INSURER,
        "categories": 1 << 10,  # CLAIMS
        "purposes": 1 << 2,  # HPAYMT
        "validFrom": 1767225600,
        "validUntil": 1798761600,
        "nonce": 1,
        "deadline": DEADLINE,
    },
    "signature": SIGNATURE,
}
REVOCATION_SUBMIT = {
    "message": {"patient": PATIENT, "consentId": CONSENT_ID, "nonce": 2, "deadline": DEADLINE},
    "signature": SIGNATURE,
}
ERASURE_REQUEST = {"nonce": 3, "deadline": DEADLINE, "signature": SIGNATURE}

JOB_DONE = {
    "job": 42,
    "kind": "grant",
    "status": "done",
    "result": {"txHash": TX_HASH, "blockNumber": 1843, "consentId": CONSENT_ID, "index": 0},
    "error": None,
}
JOB_PENDING = {"job": 43, "kind": "revoke", "status": "sent", "result": None, "error": None}
JOB_FAILED = {
    "job": 44,
    "kind": "grant",
    "status": "failed",
    "result": None,
    "error": f"ConsentRegistry refused: ConsentRegistryExpiredSignature(deadline={DEADLINE})",
}

RECORDS = [
    {
        "recordId": RECORD_ID,
        "resourceType": "Observation",
        "resourceId": "f001",
        "version": 1,
        "category": "OBSERVATIONS",
        "status": "anchored",
        "commitment": COMMITMENT,
        "supersedes": None,
        "anchoredAt": "2026-01-01T00:00:05+00:00",
    }
]
CONSENTS = [
    {
        "consentId": CONSENT_ID,
        "grantee": INSURER,
        "index": 0,
        "categories": ["CLAIMS"],
        "purposes": ["HPAYMT"],
        "validFrom": 1767225600,
        "validUntil": 1798761600,
        "status": "active",
        "grantedTx": TX_HASH,
        "revokedTx": None,
    }
]
DISCLOSURES = [
    {
        "when": 1767226000,
        "recordId": RECORD_ID,
        "custodian": CLINIC,
        "category": "OBSERVATIONS",
        "requester": "0x71bE63f3384f5fb98995898A86B02Fb2426c5788",
        "member": "0x71bE63f3384f5fb98995898A86B02Fb2426c5788",
        "purpose": "ETREAT",
        "breakGlass": True,
        "consentId": None,
        "txHash": TX_HASH,
    }
]
ERASURE = {
    "erased": [RECORD_ID],
    "disclosedTo": [INSURER],
    "chain": {**JOB_DONE, "kind": "erase", "result": {"txHash": TX_HASH, "blockNumber": 1901}},
    "keysRotated": True,
}
AUDIT_PAGE = {
    "custodian": CLINIC,
    "records": [
        {
            "recordId": RECORD_ID,
            "patient": PATIENT,
            "resourceType": "Observation",
            "resourceId": "f001",
            "version": 1,
            "category": "OBSERVATIONS",
            "status": "anchored",
            "commitment": COMMITMENT,
            "ciphertext": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ",
            "salt": "0x0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "plaintextSha256": "0x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "createdAt": "2026-01-01T00:00:01+00:00",
            "anchoredAt": "2026-01-01T00:00:05+00:00",
            "batchId": 7,
        }
    ],
    "next": "Y2wtY3Vyc29yAAAAAAAAAAE",
    "total": 1,
}
READY = {
    "database": "ok",
    "chain": "ok",
    "chainHead": 1843,
    "queues": {"records_pending": 0, "disclosures_pending": 0, "relay_jobs_pending": 0},
    "relayer": {"enabled": True, "holdsLease": True, "lastError": None},
    "ready": True,
}
NOT_READY = {
    **READY,
    "chain": "chain unreachable: connection refused",
    "chainHead": None,
    "ready": False,
}
METRICS = (
    "# HELP careledger_chain_head Latest block seen\n"
    "# TYPE careledger_chain_head gauge\n"
    "careledger_chain_head 1843.0\n"
)


# Observation f001 (glucose) and Claim 100150, as entries of the fixture transaction Bundle.
FHIR_TRANSACTION_BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "id": "careledger-one-patient",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "https://clinic-a.example.org/fhir/Observation/f001",
            "resource": {
                "resourceType": "Observation",
                "id": "f001",
                "identifier": [
                    {
                        "use": "official",
                        "system": "http://www.bmc.nl/zorgportal/identifiers/observations",
                        "value": "6323",
                    }
                ],
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": "15074-8",
                            "display": "Glucose [Moles/volume] in Blood",
                        }
                    ]
                },
                "subject": {"reference": "Patient/example"},
                "effectivePeriod": {"start": "2013-04-02T09:30:10+01:00"},
                "issued": "2013-04-03T15:30:10+01:00",
                "performer": [{"reference": "Practitioner/f005", "display": "A. Langeveld"}],
                "valueQuantity": {
                    "value": 6.3,
                    "unit": "mmol/l",
                    "system": "http://unitsofmeasure.org",
                    "code": "mmol/L",
                },
                "interpretation": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                "code": "H",
                                "display": "High",
                            }
                        ]
                    }
                ],
                "referenceRange": [
                    {
                        "low": {
                            "value": 3.1,
                            "unit": "mmol/l",
                            "system": "http://unitsofmeasure.org",
                            "code": "mmol/L",
                        },
                        "high": {
                            "value": 6.2,
                            "unit": "mmol/l",
                            "system": "http://unitsofmeasure.org",
                            "code": "mmol/L",
                        },
                    }
                ],
            },
            "request": {"method": "PUT", "url": "Observation/f001"},
        },
        {
            "fullUrl": "https://clinic-a.example.org/fhir/Claim/100150",
            "resource": {
                "resourceType": "Claim",
                "id": "100150",
                "identifier": [{"system": "http://happyvalley.com/claim", "value": "12345"}],
                "status": "active",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "oral"}]
                },
                "use": "claim",
                "patient": {"reference": "Patient/example"},
                "created": "2014-08-16",
                "insurer": {"reference": "Organization/2"},
                "provider": {"reference": "Organization/1"},
                "priority": {"coding": [{"code": "normal"}]},
                "payee": {"type": {"coding": [{"code": "provider"}]}},
                "careTeam": [{"sequence": 1, "provider": {"reference": "Practitioner/example"}}],
                "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"code": "123456"}]}}],
                "insurance": [
                    {
                        "sequence": 1,
                        "focal": True,
                        "identifier": {"system": "http://happyvalley.com/claim", "value": "12345"},
                        "coverage": {"reference": "Coverage/9876B1"},
                    }
                ],
                "item": [
                    {
                        "sequence": 1,
                        "careTeamSequence": [1],
                        "productOrService": {"coding": [{"code": "1200"}]},
                        "servicedDate": "2014-08-16",
                        "unitPrice": {"value": 135.57, "currency": "USD"},
                        "net": {"value": 135.57, "currency": "USD"},
                    }
                ],
            },
            "request": {"method": "PUT", "url": "Claim/100150"},
        },
    ],
}

# Observation f001 alone (its subject rewritten to Patient/example, as in the Bundle).
FHIR_OBSERVATION: dict[str, Any] = FHIR_TRANSACTION_BUNDLE["entry"][0]["resource"]

# consent-permit.json with its first provision: a clinic, by member address, for TREAT and ETREAT.
FHIR_CONSENT: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "careledger-permit",
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Peter Chalmers lets a clinic read '
        "his labs, conditions and diagnostic reports for treatment, and his insurer read "
        "his claims and coverage for payment, during 2026.</p></div>",
    },
    "status": "active",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
        ]
    },
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "patient": {"reference": "Patient/example"},
    "dateTime": "2025-12-15T09:30:00+01:00",
    "performer": [{"reference": "Patient/example"}],
    "policyRule": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
    },
    "provision": {
        "period": {"start": "2026-01-01", "end": "2026-12-31"},
        "provision": [
            {
                "type": "permit",
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "PRCP",
                                }
                            ]
                        },
                        "reference": {
                            "type": "Organization",
                            "identifier": {
                                "system": "urn:careledger:member",
                                "value": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
                            },
                            "display": "Clinic A",
                        },
                    }
                ],
                "action": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                "code": "access",
                            }
                        ]
                    }
                ],
                "purpose": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"},
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"},
                ],
                "class": [
                    {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"},
                    {"system": "http://hl7.org/fhir/resource-types", "code": "Condition"},
                    {"system": "http://hl7.org/fhir/resource-types", "code": "DiagnosticReport"},
                ],
            }
        ],
    },
}


# What POST /fhir answers for the Bundle above, and for one new resource.
TRANSACTION_RESPONSE = fhir.transaction_response(
    [
        fhir.EntryResult("Observation", "f001", 1, True, False, RECORD_ID, "pending"),
        fhir.EntryResult("Claim", "100150", 1, True, False, CONSENT_ID, "pending"),
    ]
)
STORED_ONE = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": f"Observation/f001 version 1 created; record {RECORD_ID} is pending",
        }
    ],
}
CONSENT_SEARCHSET = fhir_consent.grants_to_fhir_consent(
    f"Patient/{PATIENT}",
    [
        fhir_consent.GrantView(
            consent_id=CONSENT_ID,
            grantee=INSURER,
            categories=1 << 10,
            purposes=1 << 2,
            valid_from=1767225600,
            valid_until=1798761600,
            revoked=False,
            granted_at=1767225660,
        )
    ],
)
CONSENT_IMPORT = {
    "grants": [
        _typed(
            "Grant",
            [
                ("patient", "address"),
                ("grantee", "address"),
                ("categories", "uint16"),
                ("purposes", "uint8"),
                ("validFrom", "uint40"),
                ("validUntil", "uint40"),
                ("nonce", "uint256"),
                ("deadline", "uint256"),
            ],
            "CareLedger ConsentRegistry",
            "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
            {
                "patient": PATIENT,
                "grantee": CLINIC,
                "categories": (1 << 2) | (1 << 3) | (1 << 8),
                "purposes": 0b11,
                "validFrom": 1767222000,
                "validUntil": 1798758000,
                "nonce": NONCE,
                "deadline": DEADLINE,
            },
        )
    ]
}

# One example refusal per status, in the shapes problems.py gives them.
PROBLEMS: dict[int, dict[str, Any]] = {
    400: problem(400, "bad-request", "the body is not a JSON document in UTF-8"),
    401: problem(401, "unauthenticated", "signature does not verify for keyid over this request"),
    403: problem(403, "forbidden", f"{PATIENT} does not sign for an active member"),
    404: problem(404, "not-found", "no such record at this custodian"),
    409: problem(409, "conflict", "this record is not anchored yet; retry in a moment"),
    410: problem(410, "gone", "this record was erased at its patient's request"),
    413: problem(413, "too-large", "the body exceeds 5242880 bytes"),
    422: problem(422, "invalid-request", "the grant's deadline has passed"),
    429: problem(429, "rate-limited", f"break-glass limit reached: 5 in the last hour for {CLINIC}"),
    503: problem(503, "chain-unavailable", "chain unreachable: connection refused"),
}
OUTCOMES: dict[int, dict[str, Any]] = {
    400: {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "required",
                "diagnostics": "Field required",
                "expression": ["Observation.status"],
            }
        ],
    },
    401: outcome(401, "request is not signed: Signature, Signature-Input and Content-Digest are needed"),
    403: outcome(403, "only this custodian's staff send records to this gateway"),
    404: outcome(404, "no such patient: a pseudonym is an Ethereum address"),
    409: outcome(409, "Patient/example is not enrolled at this custodian: enroll the patient first"),
    413: outcome(413, "the body exceeds 5242880 bytes", "too-long"),
    415: outcome(415, "send application/fhir+json, not text/plain", "not-supported"),
    422: {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "business-rule",
                "diagnostics": "names Patient/someone-else; this Bundle is about Patient/example",
                "expression": ["Bundle.entry[3].resource.subject"],
            }
        ],
    },
    503: outcome(503, "chain unreachable: connection refused"),
}
