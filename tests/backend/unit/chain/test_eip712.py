from eth_abi import encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak

from careledger.chain.eip712 import CONSENT_DOMAIN, Domain, Enrollment, Erasure, Grant, Revocation

DOMAIN = Domain(CONSENT_DOMAIN, 31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_type_strings_match_contract_libraries() -> None:
    assert Grant.type_string() == (
        "Grant(address patient,address grantee,uint16 categories,uint8 purposes,uint40 validFrom,"
        "uint40 validUntil,uint256 nonce,uint256 deadline)"
    )
    assert (
        Revocation.type_string()
        == "Revocation(address patient,bytes32 consentId,uint256 nonce,uint256 deadline)"
    )
    assert Enrollment.type_string() == (
        "Enrollment(address patient,address custodian,bytes32 referenceCommitment,"
        "uint256 nonce,uint256 deadline)"
    )
    assert Erasure.type_string() == "Erasure(address patient,bytes32 recordId,uint256 nonce,uint256 deadline)"


def test_grant_digest_equals_hand_built_encoding() -> None:
    grant = Grant("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "0x" + "ab" * 20, 1024, 4, 10, 20, 7, 99)
    domain_hash = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak(text=CONSENT_DOMAIN),
                keccak(text="1"),
                31337,
                DOMAIN.verifying_contract,
            ],
        )
    )
    struct_hash = keccak(
        encode(
            ["bytes32", "address", "address", "uint16", "uint8", "uint40", "uint40", "uint256", "uint256"],
            [Grant.type_hash(), grant.patient, grant.grantee, 1024, 4, 10, 20, 7, 99],
        )
    )
    assert grant.digest(DOMAIN) == keccak(b"\x19\x01" + domain_hash + struct_hash)
    assert grant.digest(DOMAIN) == _hash_eip191_message(
        encode_typed_data(full_message=grant.typed_data(DOMAIN))
    )


def test_signature_recovers_to_signer() -> None:
    grant = Grant(Account.from_key(KEY).address, "0x" + "ab" * 20, 1, 1, 0, 1, 0, 1)
    signature = grant.sign(KEY, DOMAIN)
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert Account._recover_hash(grant.digest(DOMAIN), signature=signature) == Account.from_key(KEY).address
