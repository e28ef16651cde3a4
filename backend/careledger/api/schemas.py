"""Request and response bodies of the JSON endpoints (FHIR endpoints speak FHIR)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEX32 = r"^0x[0-9a-fA-F]{64}$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
# 65 bytes r‖s‖v, or longer for a contract wallet (ERC-1271); whole bytes.
SIGNATURE = r"^0x(?:[0-9a-fA-F]{2}){65,}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EnrollmentCreate(Strict):
    patient: str = Field(pattern=ADDRESS, description="The patient's pseudonymous address at this custodian.")
    local_reference: str = Field(
        alias="localReference",
        min_length=1,
        max_length=256,
        description="This custodian's patient reference.",
    )


class EnrollmentOfferPublic(BaseModel):
    status: str
    typed_data: dict[str, Any] = Field(
        alias="typedData", description="EIP-712 typed data for the patient to sign."
    )
    model_config = ConfigDict(populate_by_name=True)


class EnrollmentSignature(Strict):
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)
    signature: str = Field(pattern=SIGNATURE)


class JobPublic(BaseModel):
    job: int
    kind: str
    status: str = Field(description="pending, sent, done or failed")
    result: dict[str, Any] | None = None
    error: str | None = None


class GrantMessage(Strict):
    patient: str = Field(pattern=ADDRESS)
    grantee: str = Field(pattern=ADDRESS)
    categories: int = Field(ge=1, lt=2**16)
    purposes: int = Field(ge=1, lt=2**8)
    valid_from: int = Field(alias="validFrom", ge=0, lt=2**40)
    valid_until: int = Field(alias="validUntil", ge=0, lt=2**40)
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)


class GrantSubmit(Strict):
    message: GrantMessage
    signature: str = Field(pattern=SIGNATURE)


class RevocationMessage(Strict):
    patient: str = Field(pattern=ADDRESS)
    consent_id: str = Field(alias="consentId", pattern=HEX32)
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)


class RevocationSubmit(Strict):
    message: RevocationMessage
    signature: str = Field(pattern=SIGNATURE)


class ConsentPublic(BaseModel):
    consent_id: str = Field(alias="consentId")
    grantee: str
    index: int
    categories: list[str]
    purposes: list[str]
    valid_from: int = Field(alias="validFrom")
    valid_until: int = Field(alias="validUntil")
    status: str
    granted_tx: str = Field(alias="grantedTx")
    revoked_tx: str | None = Field(default=None, alias="revokedTx")
    model_config = ConfigDict(populate_by_name=True)


class RecordPublic(BaseModel):
    record_id: str = Field(alias="recordId")
    resource_type: str = Field(alias="resourceType")
    resource_id: str = Field(alias="resourceId")
    version: int
    category: str
    status: str = Field(description="pending, anchored or erased")
    commitment: str
    supersedes: str | None = None
    anchored_at: str | None = Field(default=None, alias="anchoredAt")
    model_config = ConfigDict(populate_by_name=True)


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str


class ErasureRequest(Strict):
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)
    signature: str = Field(pattern=SIGNATURE, description="The patient's EIP-712 Erasure signature.")


class ErasurePublic(BaseModel):
    erased: list[str] = Field(description="Record ids of the versions shredded now")
    disclosed_to: list[str] = Field(alias="disclosedTo", description="Members any version was disclosed to")
    chain: JobPublic | None = Field(description="The on-chain erasure mark; null if never anchored")
    keys_rotated: bool = Field(alias="keysRotated")
    model_config = ConfigDict(populate_by_name=True)


class DisclosurePublic(BaseModel):
    when: int
    record_id: str = Field(alias="recordId")
    custodian: str
    category: str
    requester: str
    member: str | None
    purpose: str
    break_glass: bool = Field(alias="breakGlass")
    consent_id: str | None = Field(alias="consentId")
    tx_hash: str = Field(alias="txHash")
    model_config = ConfigDict(populate_by_name=True)


class AuditRecordPublic(BaseModel):
    """One record row as an auditor is handed it: never the plaintext."""

    record_id: str = Field(alias="recordId")
    patient: str = Field(description="The patient's pseudonym")
    resource_type: str = Field(alias="resourceType")
    resource_id: str = Field(alias="resourceId")
    version: int
    category: str
    status: str = Field(description="pending, anchored or erased")
    commitment: str = Field(description="keccak256(salt ‖ plaintextSha256 ‖ sha256(ciphertext))")
    supersedes: str | None = None
    ciphertext: str | None = Field(default=None, description="Base64; absent once erased")
    salt: str | None = Field(default=None, description="Absent once erased")
    plaintext_sha256: str | None = Field(
        default=None, alias="plaintextSha256", description="Absent once erased"
    )
    created_at: str = Field(alias="createdAt")
    anchored_at: str | None = Field(default=None, alias="anchoredAt")
    erased_at: str | None = Field(default=None, alias="erasedAt")
    batch_id: int | None = Field(default=None, alias="batchId", description="The chain's batch id")
    model_config = ConfigDict(populate_by_name=True)


class AuditRecordsPage(BaseModel):
    custodian: str
    records: list[AuditRecordPublic]
    next: str | None = Field(
        default=None, description="The cursor of the next page (`after`); absent on the last page"
    )
    total: int = Field(description="Record rows in the store now")


class ConsentImportPublic(BaseModel):
    grants: list[dict[str, Any]] = Field(
        description="EIP-712 typed data of each Grant, for the patient to sign and send to "
        "POST /consents/grants"
    )


class HealthPublic(BaseModel):
    status: str = Field(description="Always ok while the process serves")


class RelayerState(BaseModel):
    enabled: bool
    holds_lease: bool = Field(alias="holdsLease", description="This process sends the gateway's transactions")
    last_error: str | None = Field(alias="lastError")
    model_config = ConfigDict(populate_by_name=True)


class ReadinessPublic(BaseModel):
    database: str = Field(description="ok, or why the database does not answer")
    chain: str = Field(description="ok, or why the chain does not answer")
    chain_head: int | None = Field(alias="chainHead", description="Latest block; null if the chain is down")
    queues: dict[str, int] = Field(description="records_pending, disclosures_pending, relay_jobs_pending")
    anchor_lag_seconds: float | None = Field(
        default=None, alias="anchorLagSeconds", description="Age of the oldest record not yet anchored"
    )
    relayer: RelayerState
    ready: bool
    model_config = ConfigDict(populate_by_name=True)
