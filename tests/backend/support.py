"""Test support shared by the backend tests."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from careledger.chain.clients import Ledger
from careledger.chain.devnet import Devnet, dev_key
from careledger.chain.sender import Sender
from careledger.codes import Role


@dataclass
class Cluster:
    """A deployed network with one member of each role, admitted through the council."""

    devnet: Devnet
    ledger: Ledger
    council: list[Sender]
    clinic: Sender  # admin key of clinic A
    clinic_relayer: Sender
    clinic_b: Sender
    insurer: Sender
    insurer_signer: LocalAccount
    researcher: Sender
    auditor: Sender

    def new_member(self, index: int, role: Role, endpoint: str = "") -> Sender:
        member = self.ledger.sender(dev_key(index))
        pid = self.ledger.members.propose_admit(self.council[0], member.address, role, f"m{index}", endpoint)
        assert self.ledger.members.vote(self.council[1], pid)
        return member


def build_cluster(devnet: Devnet) -> Cluster:
    """Admit one member of each role through the council (dev keys 10-14; clinic A's relayer 15)."""
    ledger = devnet.ledger
    council = devnet.council()
    admitted: dict[str, Sender] = {}
    for index, (key, role, endpoint) in enumerate(
        [
            ("clinic", Role.CLINIC, "http://127.0.0.1:9001"),
            ("clinic_b", Role.CLINIC, "http://127.0.0.1:9002"),
            ("insurer", Role.INSURER, ""),
            ("researcher", Role.RESEARCH, ""),
            ("auditor", Role.AUDITOR, ""),
        ],
        start=10,
    ):
        member = ledger.sender(dev_key(index))
        pid = ledger.members.propose_admit(council[0], member.address, role, key, endpoint)
        assert ledger.members.vote(council[1], pid)
        admitted[key] = member
    relayer = ledger.sender(dev_key(15))
    ledger.members.set_relayer(admitted["clinic"], relayer.address)
    signer = Account.create()
    ledger.members.add_signer(admitted["insurer"], signer.address)
    return Cluster(
        devnet=devnet,
        ledger=ledger,
        council=council,
        clinic=admitted["clinic"],
        clinic_relayer=relayer,
        clinic_b=admitted["clinic_b"],
        insurer=admitted["insurer"],
        insurer_signer=signer,
        researcher=admitted["researcher"],
        auditor=admitted["auditor"],
    )
