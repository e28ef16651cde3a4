"""A patient's new pseudonym at a custodian (`careledger patient rotate`): records keep going
to the enrolled pseudonym while the new enrollment is unfinished, then to the new one; the
old pseudonym's records stay its own."""

from __future__ import annotations

import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from tests.backend.gateways import GatewayProcess, enroll, observation, records_of, wait_anchored
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_records_follow_the_enrolled_pseudonym_across_a_rotation(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    old, new = Account.create(), Account.create()
    staff = CareLedgerClient(dev_key(10), cluster.ledger)
    enroll(cluster, gateway_a.url, old, "Patient/rotating")
    staff.post_fhir(gateway_a.url, observation("Patient/rotating") | {"id": "before"})

    # Staff start the new pseudonym's enrollment; the patient has not signed it yet.
    offer = staff.start_enrollment(gateway_a.url, new.address, "Patient/rotating")
    answer = staff.post_fhir(gateway_a.url, observation("Patient/rotating") | {"id": "during"})
    assert "created" in answer["issue"][0]["diagnostics"]  # not 409: the enrolled pseudonym takes it

    CareLedgerClient(new.key, cluster.ledger).complete_enrollment(gateway_a.url, offer["typedData"])
    staff.post_fhir(gateway_a.url, observation("Patient/rotating") | {"id": "after"})

    kept_old = wait_anchored(cluster, gateway_a.url, old, 2)
    kept_new = wait_anchored(cluster, gateway_a.url, new, 1)
    assert sorted(r["resourceId"] for r in kept_old) == ["before", "during"]
    assert [r["resourceId"] for r in kept_new] == ["after"]
    assert records_of(cluster, gateway_a.url, old) == kept_old  # the old pseudonym still reads its own
