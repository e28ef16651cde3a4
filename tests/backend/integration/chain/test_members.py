import pytest

from careledger import errors
from careledger.codes import MemberStatus, Role
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_admission_needs_threshold_of_council(cluster: Cluster) -> None:
    members = cluster.ledger.members
    candidate = cluster.ledger.sender(bytes.fromhex("11" * 32))
    pid = members.propose_admit(cluster.council[0], candidate.address, Role.RESEARCH, "Institute", "")
    assert members.get_member(candidate.address).status is MemberStatus.NONE
    assert members.approvals(pid) == 1
    assert members.vote(cluster.council[2], pid) is True
    member = members.get_member(candidate.address)
    assert (member.role, member.status, member.name) == (Role.RESEARCH, MemberStatus.ACTIVE, "Institute")
    assert candidate.address in [m.address for m in members.members()]


def test_propose_by_non_council_is_refused(cluster: Cluster) -> None:
    with pytest.raises(errors.NotCouncil, match="MemberRegistryNotCouncil"):
        cluster.ledger.members.propose_suspend(cluster.insurer, cluster.clinic_b.address)


def test_double_vote_is_refused(cluster: Cluster) -> None:
    members = cluster.ledger.members
    pid = members.propose_add_seat(cluster.council[0], cluster.auditor.address)
    with pytest.raises(errors.ProposalRejected, match="MemberRegistryAlreadyVoted"):
        members.vote(cluster.council[0], pid)


def test_suspension_and_reinstatement_change_active_sender(cluster: Cluster) -> None:
    members = cluster.ledger.members
    member = cluster.new_member(16, Role.CLINIC, "http://127.0.0.1:9016")
    assert members.active_sender(member.address) == (member.address, Role.CLINIC)
    pid = members.propose_suspend(cluster.council[0], member.address)
    members.vote(cluster.council[1], pid)
    assert members.active_sender(member.address) == (None, Role.NONE)
    assert members.get_member(member.address).status is MemberStatus.SUSPENDED
    assert member.address not in members.allowlist()
    pid = members.propose_reinstate(cluster.council[1], member.address)
    members.vote(cluster.council[2], pid)
    assert members.active_sender(member.address) == (member.address, Role.CLINIC)
    assert member.address in members.allowlist()


def test_operational_keys_resolve_to_their_member(cluster: Cluster) -> None:
    members = cluster.ledger.members
    assert members.active_sender(cluster.clinic_relayer.address) == (cluster.clinic.address, Role.CLINIC)
    assert members.active_signer(cluster.clinic_relayer.address) == (None, Role.NONE)
    assert members.active_signer(cluster.insurer_signer.address) == (cluster.insurer.address, Role.INSURER)
    assert members.active_sender(cluster.insurer_signer.address) == (None, Role.NONE)
    assert cluster.clinic_relayer.address in members.allowlist()


def test_key_bound_to_another_member_is_refused(cluster: Cluster) -> None:
    with pytest.raises(errors.InvalidInput, match="MemberRegistryKeyInUse"):
        cluster.ledger.members.add_signer(cluster.clinic_b, cluster.insurer_signer.address)
