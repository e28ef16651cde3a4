"""Generate the Besu profile's network: QBFT genesis, four validator keys and the operators' accounts.

Run it once before `docker compose --profile besu up` (with the project's Python):

    .venv/bin/python deploy/besu/generate.py            # writes deploy/besu/generated/

It writes, under the output folder (git-ignored: it holds private keys):

    network/genesis.json             QBFT genesis, extraData naming the four validators
    network/static-nodes.json        the validators' enode URLs on the compose network
    network/permissions_config.toml  the initial account allowlist (deployer and council)
    network/network.json             what was generated, addresses only (no key)
    compose.env                      the custodians' member addresses and database passwords,
                                     for `docker compose --env-file`
    node-N/key, node-N/key.pub       validator N's node key (Besu's format) and public key
    accounts/*.key                   deployer, council seats 1-3, custodians A and B

QBFT's extraData is RLP([32-byte vanity, [validator addresses], [] (no vote), round 0,
[] (no seals)]), as Besu's QbftExtraDataCodec encodes a genesis block. The network has
free gas (zeroBaseFee, min gas price 0), forks through Cancun at genesis (the contracts
are compiled for Prague, which adds no opcode over Cancun), and a 30M block gas limit.
Keys are never overwritten: a second run refuses unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import rlp
from eth_keys import keys
from eth_utils.address import to_checksum_address

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
VALIDATORS = 4
SUBNET_PREFIX = "172.28.0."  # the compose file's besu network (172.28.0.0/24)
FIRST_HOST = 11  # besu-1 is 172.28.0.11, besu-2 .12, ...
P2P_PORT = 30303
CHAIN_ID = 20261
ACCOUNTS = ("deployer", "council-1", "council-2", "council-3", "custodian-a", "custodian-b")
# The gateways' relayer keys are made inside their containers by `careledger gateway init-keys`.


@dataclass(frozen=True)
class NodeKey:
    private: bytes

    @property
    def public(self) -> bytes:
        return bytes(keys.PrivateKey(self.private).public_key.to_bytes())

    @property
    def address(self) -> str:
        return str(keys.PrivateKey(self.private).public_key.to_checksum_address())

    def enode(self, host: str, port: int = P2P_PORT) -> str:
        return f"enode://{self.public.hex()}@{host}:{port}"


def qbft_extra_data(validators: list[str]) -> str:
    """Besu's QBFT genesis extraData for these validator addresses."""
    vanity = b"\x00" * 32
    encoded = rlp.encode([vanity, [bytes.fromhex(v[2:]) for v in validators], [], 0, []])
    return "0x" + encoded.hex()


def decode_extra_data(extra_data: str) -> list[str]:
    """The validator addresses a QBFT extraData names (checks the rest of its shape)."""
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(extra_data.removeprefix("0x")))
    if len(vanity) != 32 or vote != [] or round_ != b"" or seals != []:
        raise ValueError("not a genesis QBFT extraData (vanity, validators, no vote, round 0, no seals)")
    return [to_checksum_address(v) for v in validators]


def genesis(validators: list[str], chain_id: int = CHAIN_ID) -> dict[str, object]:
    return {
        "config": {
            "chainId": chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "shanghaiTime": 0,
            "cancunTime": 0,
            "zeroBaseFee": True,
            "qbft": {"blockperiodseconds": 1, "epochlength": 30000, "requesttimeoutseconds": 4},
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": hex(30_000_000),
        "difficulty": "0x1",
        "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
        "coinbase": "0x" + "00" * 20,
        "alloc": {},
        "extraData": qbft_extra_data(validators),
    }


def _write_secret(path: Path, text: str) -> None:
    # Readable inside the containers (Besu and CareLedger run as their own users and compose
    # mounts secret files as they are); the output folder itself is 0700 on the host.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def generate(out: Path, *, force: bool = False, chain_id: int = CHAIN_ID) -> dict[str, object]:
    """Write the network files under `out`; returns the summary (addresses only)."""
    if (out / "network" / "network.json").exists() and not force:
        raise FileExistsError(f"{out} already holds a network; pass --force to replace its keys")
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    nodes = [NodeKey(os.urandom(32)) for _ in range(VALIDATORS)]
    hosts = [f"{SUBNET_PREFIX}{FIRST_HOST + i}" for i in range(VALIDATORS)]
    accounts = {name: keys.PrivateKey(os.urandom(32)) for name in ACCOUNTS}
    validators = sorted((n.address for n in nodes), key=str.lower)  # a stable order, whatever the keys
    addresses = {name: str(key.public_key.to_checksum_address()) for name, key in accounts.items()}
    for i, node in enumerate(nodes, start=1):
        _write_secret(out / f"node-{i}" / "key", "0x" + node.private.hex())
        (out / f"node-{i}" / "key.pub").write_text("0x" + node.public.hex())
    for name, key in accounts.items():
        _write_secret(out / "accounts" / f"{name}.key", key.to_hex() + "\n")
    network = out / "network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "genesis.json").write_text(json.dumps(genesis(validators, chain_id), indent=2) + "\n")
    enodes = [n.enode(h) for n, h in zip(nodes, hosts, strict=True)]
    (network / "static-nodes.json").write_text(json.dumps(enodes, indent=2) + "\n")
    # Before MemberRegistry exists, only the deployer and the council may send; the sync
    # service takes over the list once the contracts are deployed.
    initial = [addresses[n] for n in ACCOUNTS if not n.startswith("custodian")]
    allowlist = ", ".join(f'"{a.lower()}"' for a in initial)
    (network / "permissions_config.toml").write_text(f"accounts-allowlist=[{allowlist}]\n")
    summary: dict[str, object] = {
        "chainId": chain_id,
        "validators": [{"node": f"besu-{i}", "address": n.address, "enode": e}
                       for i, (n, e) in enumerate(zip(nodes, enodes, strict=True), start=1)],
        "accounts": addresses,
    }  # fmt: skip
    (network / "network.json").write_text(json.dumps(summary, indent=2) + "\n")
    _write_secret(
        out / "compose.env",
        f"CLINIC_A_MEMBER={addresses['custodian-a']}\n"
        f"CLINIC_B_MEMBER={addresses['custodian-b']}\n"
        f"CLINIC_A_DB_PASSWORD={secrets.token_hex(24)}\n"
        f"CLINIC_B_DB_PASSWORD={secrets.token_hex(24)}\n",
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--chain-id", type=int, default=CHAIN_ID)
    parser.add_argument("--force", action="store_true", help="replace an existing network's keys")
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, force=args.force, chain_id=args.chain_id)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: chain {summary['chainId']}, validators:")
    for v in summary["validators"]:  # type: ignore[attr-defined]
        print(f"  {v['node']}  {v['address']}")
    print("accounts (keys in accounts/, never commit them):")
    for name, address in summary["accounts"].items():  # type: ignore[attr-defined]
        print(f"  {name:12} {address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
