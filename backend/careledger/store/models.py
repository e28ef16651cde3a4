"""Tables of one custodian's gateway.

No plaintext PHI is stored: a record's FHIR JSON is sealed under its own data key, and so
are its salt and plaintext digest (which would otherwise let anyone holding an old copy
of the database confirm a guessed record against the commitment on chain). Erasure
deletes a record's key material and then rotates the key-encryption key, so that copies
left in free pages, WAL frames or dead tuples stay sealed under a key that no longer exists.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class PatientRow(Base):
    """A patient pseudonym enrolled (or enrolling) at this custodian."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)
    # The custodian's own reference (e.g. its MRN) stays here, never on chain.
    local_reference: Mapped[str] = mapped_column(String(256))
    reference_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    reference_commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | enrolled
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RecordRow(Base):
    """One version of one FHIR resource of one patient."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("patient_id", "resource_type", "resource_id", "version"),
        # 0003 (was ix_records_status): the records waiting for a batch, oldest first: their
        # count and oldest time from the index alone, the batch's rows without passing over
        # the others (each row holds a ciphertext, so a page per record)
        Index("ix_records_waiting", "status", "batch_id", "id", "created_at"),
        Index("ix_records_resource", "patient_id", "resource_type", "resource_id"),
        Index("ix_records_batch", "batch_id"),  # 0002: the relayer settles a batch by it
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    category: Mapped[int] = mapped_column(Integer)
    # Key material and sealed content; all NULL once the record is erased.
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_id: Mapped[str | None] = mapped_column(String(64))
    sealed_meta: Mapped[bytes | None] = mapped_column(LargeBinary)  # salt ‖ sha256(plaintext), sealed
    ciphertext_sha256: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    supersedes: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | anchored | erased
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"))
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    anchored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    erasure_tx: Mapped[str | None] = mapped_column(String(66))


class ChainTxRow(Base):
    """A transaction this gateway signed, stored before it is broadcast.

    After a crash the same signed bytes are broadcast again, never a new transaction for
    the same work, so every batch, relay and log entry reaches the chain at most once.
    """

    __tablename__ = "chain_txs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # anchor | log | job
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # signed | mined | reverted | dropped
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AnchorBatchRow(Base):
    """A batch of records as anchored on chain (leaf order = records.leaf_index)."""

    __tablename__ = "anchor_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_batch_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    status: Mapped[str] = mapped_column(String(16))  # sending | anchored
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    tx_id: Mapped[int | None] = mapped_column(ForeignKey("chain_txs.id"))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    record_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChainJobRow(Base):
    """A patient-signed message to relay (enrollment, grant, revocation, erasure).

    API workers queue jobs; the one process holding the sender lease sends them, in order.
    """

    __tablename__ = "chain_jobs"
    __table_args__ = (Index("ix_chain_jobs_status", "status"), Index("ix_chain_jobs_tx", "tx_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # enroll | grant | revoke | erase
    payload: Mapped[str] = mapped_column(Text)  # JSON: the signed message and its signature
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | done | failed
    tx_id: Mapped[int | None] = mapped_column(ForeignKey("chain_txs.id"))
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DisclosureRow(Base):
    """A disclosure, logged on chain in batches; break-glass reasons stay here only."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_status", "status"), Index("ix_disclosures_tx", "tx_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    requester: Mapped[str] = mapped_column(String(42))
    member: Mapped[str] = mapped_column(String(42))
    purpose: Mapped[int] = mapped_column(Integer)
    break_glass: Mapped[bool] = mapped_column(Boolean)
    checked_block: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[bytes] = mapped_column(LargeBinary(32))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    # What the reader signed, kept so an auditor can rebuild the request, not only its hash.
    signature_base: Mapped[str] = mapped_column(Text)
    acting_user: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | sending | logged
    tx_id: Mapped[int | None] = mapped_column(ForeignKey("chain_txs.id"))
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class NonceRow(Base):
    """A request nonce, kept until its signature expires."""

    __tablename__ = "nonces"

    keyid: Mapped[str] = mapped_column(String(42), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class LeaseRow(Base):
    """Who may send this gateway's transactions (one process at a time)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)


class RetentionHoldRow(Base):
    """A legal hold (GDPR 17(3)) that refuses erasure of a patient's records, with its basis."""

    __tablename__ = "retention_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    resource_type: Mapped[str | None] = mapped_column(String(64))
    basis: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GatewayStateRow(Base):
    """Small facts every process of a gateway must agree on (e.g. which KEK is current)."""

    __tablename__ = "gateway_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
