"""The role commands' other paths: JSON output, governance beyond admission, and every refusal
as one line on stderr with a non-zero exit code (the README walkthrough runs the happy path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner

from careledger.chain.devnet import dev_key
from careledger.cli.main import app
from careledger.codes import MemberStatus
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
PASSPHRASE = "correct horse battery"


@pytest.fixture
def cli(cluster: Cluster, tmp_path: Path) -> Any:
    deployment = tmp_path / "deployment.json"
    cluster.devnet.deployment.save(deployment)
    env = {
        "CARELEDGER_RPC_URL": cluster.devnet.anvil.url,
        "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
        "CARELEDGER_KEYSTORE": str(tmp_path / "patient.json"),
        "CARELEDGER_PASSPHRASE": PASSPHRASE,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, f"{args}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    return run


def key_file(tmp_path: Path, index: int) -> str:
    path = tmp_path / f"dev{index}.key"
    path.write_text(dev_key(index).hex())
    return str(path)


def one_line_error(result: Any, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_council_admits_suspends_and_reinstates_by_vote(cli: Any, cluster: Cluster, tmp_path: Path) -> None:
    newcomer = Account.create().address
    seat1, seat2 = key_file(tmp_path, 1), key_file(tmp_path, 2)

    def status() -> str | None:
        members = json.loads(cli("council", "members", "--json").stdout)["members"]
        return next((m["status"] for m in members if m["address"] == newcomer), None)

    admit = ["admit", newcomer, "--role", "insurer", "--name", "Temp Insurer", "--json"]
    proposed = json.loads(cli("council", "propose", *admit, "--key-file", seat1).stdout)
    assert (proposed["approvals"], proposed["executed"]) == (1, False)
    assert status() is None  # one vote of two: nothing yet
    voted = json.loads(
        cli("council", "vote", str(proposed["proposal"]), "--key-file", seat2, "--json").stdout
    )
    assert voted["executed"] is True
    assert status() == "active"
    for action, after in (("suspend", "suspended"), ("reinstate", "active")):
        # by name: the CLI finds the member in MemberRegistry
        p = json.loads(
            cli("council", "propose", action, "Temp Insurer", "--key-file", seat1, "--json").stdout
        )
        cli("council", "vote", str(p["proposal"]), "--key-file", seat2)
        assert status() == after
    assert cluster.ledger.members.get_member(newcomer).status is MemberStatus.ACTIVE


def test_keygen_creates_a_keystore_once(cli: Any, tmp_path: Path) -> None:
    created = cli("patient", "keygen")
    assert "keystore created" in created.stdout
    assert (tmp_path / "patient.json").exists()
    one_line_error(cli("patient", "keygen", code=1), "never overwritten")


def test_every_refusal_is_one_line_and_non_zero(cli: Any, cluster: Cluster, tmp_path: Path) -> None:
    outsider = key_file(tmp_path, 19)
    insurer = key_file(tmp_path, 12)
    bogus = "0x" + "ab" * 32
    admit = ["council", "propose", "admit", Account.create().address, "--role", "clinic", "--name", "X"]
    one_line_error(cli(*admit, "--key-file", outsider, code=1), "NotCouncil")
    one_line_error(cli("council", "vote", "999999", "--key-file", key_file(tmp_path, 1), code=1))
    one_line_error(cli("council", "members", "--rpc-url", "http://127.0.0.1:9", code=1), "127.0.0.1:9")
    one_line_error(
        cli("records", "get", "0x1234", "--purpose", "TREAT", "--key-file", insurer, code=1),
        "is not a record id",
    )
    one_line_error(
        cli("records", "get", bogus, "--purpose", "FUN", "--key-file", insurer, code=1),
        "unknown purpose 'FUN'",
    )
    one_line_error(
        cli("records", "get", bogus, "--purpose", "BTG", "--key-file", insurer, code=1),
        "--break-glass REASON",
    )
    one_line_error(
        cli("records", "get", bogus, "--purpose", "TREAT", "--key-file", insurer, code=1),
        "not anchored on chain",
    )
    one_line_error(
        cli(
            "records", "get", bogus, "--purpose", "TREAT", "--key-file", str(tmp_path / "missing.key"), code=1
        ),
        "cannot read key file",
    )
    notjson = tmp_path / "note.txt"
    notjson.write_text("not FHIR")
    one_line_error(cli("records", "upload", str(notjson), "--key-file", insurer, code=1), "is not JSON")
    one_line_error(
        cli("records", "upload", str(notjson) + ".missing", "--key-file", insurer, code=1), "cannot read"
    )

    # a patient without a keystore, then with a wrong passphrase
    one_line_error(cli("patient", "pseudonym", "nobody", code=1), "no keystore")
    cli("patient", "keygen")
    one_line_error(
        cli("patient", "pseudonym", "No Such Clinic", code=1), "no member is named 'No Such Clinic'"
    )
    grant = [
        "patient",
        "consent",
        "grant",
        "--custodian",
        cluster.clinic.address,
        "--grantee",
        cluster.insurer.address,
    ]
    one_line_error(cli(*grant, "--category", "claims", "--purpose", "BTG", code=1), "never granted")
    one_line_error(
        cli(*grant, "--category", "gossip", "--purpose", "HPAYMT", code=1), "unknown category 'gossip'"
    )
    one_line_error(cli("patient", "consent", "revoke", bogus, code=1), "not one of your consents")
    one_line_error(cli("patient", "erase", bogus, code=1), "not anchored on chain")
    one_line_error(cli("patient", "enroll", str(notjson), code=1), "not an enrollment offer")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase")
    one_line_error(cli("patient", "history", "--passphrase-file", str(wrong), code=1), "wrong passphrase")
