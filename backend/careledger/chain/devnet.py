"""A local development network: anvil plus the contracts, governed by anvil's dev accounts."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account

from careledger.chain.anvil import DEV_MNEMONIC, Anvil
from careledger.chain.clients import Ledger, connect
from careledger.chain.compile import compile_contracts
from careledger.chain.deployment import Deployment, deploy
from careledger.chain.reverts import RevertDecoder
from careledger.chain.sender import Sender

Account.enable_unaudited_hdwallet_features()

DEPLOYER_INDEX = 0
COUNCIL_INDEXES = (1, 2, 3)
COUNCIL_THRESHOLD = 2


def dev_key(index: int) -> bytes:
    """Private key of anvil's dev account `index` (test ether only, published in Foundry's docs)."""
    return bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key)


@dataclass
class Devnet:
    anvil: Anvil
    deployment: Deployment
    ledger: Ledger

    def council(self) -> list[Sender]:
        return [self.ledger.sender(dev_key(i)) for i in COUNCIL_INDEXES]


def start_devnet(
    *,
    port: int | None = None,
    block_time: float | None = None,
    max_check_lag: int = 64,
    anvil_args: list[str] | None = None,
) -> Devnet:
    """Start anvil on loopback and deploy the four contracts; the caller stops `anvil`."""
    anvil = Anvil(port=port, block_time=block_time, extra_args=anvil_args).start()
    try:
        w3 = connect(anvil.url)
        artifacts = compile_contracts()
        decoder = RevertDecoder(a.abi for a in artifacts.values())
        deployer = Sender(w3, Account.from_key(dev_key(DEPLOYER_INDEX)), decoder)
        council = [Account.from_key(dev_key(i)).address for i in COUNCIL_INDEXES]
        deployment = deploy(
            w3,
            deployer,
            council=council,
            threshold=COUNCIL_THRESHOLD,
            max_check_lag=max_check_lag,
            artifacts=artifacts,
        )
        return Devnet(anvil, deployment, Ledger(w3, deployment))
    except BaseException:
        anvil.stop()
        raise
