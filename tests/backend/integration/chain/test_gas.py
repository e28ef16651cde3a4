"""Gas is deterministic, so the targets of the gas report are checked here (no timing involved)."""

import pytest

from bench import gas
from careledger.chain.devnet import start_devnet

pytestmark = pytest.mark.integration


def test_gas_targets_hold_and_report_renders() -> None:
    devnet = start_devnet()
    try:
        measured = gas.measure(devnet)
    finally:
        devnet.anvil.stop()
    results = measured["results"]
    assert set(results) == {
        "admit_member",
        "grant_consent",
        "revoke_consent",
        "anchor_per_record_batch1",
        "anchor_per_record_batch100",
        "log_access_per_entry_batch100",
    }
    assert all(isinstance(v, int) and v > 0 for v in results.values())
    for key, target in gas.TARGETS.items():
        assert results[key] <= target, f"{key} = {results[key]} gas, target {target}"
    page = gas.write_docs(results, measured["extremes"], {"measured_at": "t", "anvil": "a", "solc": "s",
                                                          "optimizer_runs": 1})  # fmt: skip
    for key in results:
        assert f"`{key}`" in page
