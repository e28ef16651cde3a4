"""Test support shared by the backend tests."""

from __future__ import annotations

from dataclasses import dataclass

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
