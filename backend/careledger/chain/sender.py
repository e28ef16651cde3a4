"""One sender per key: local nonce tracking, local signing, reverts decoded before sending.

A gateway has exactly one Sender for its relayer key (a database lease elsewhere makes
sure only one process holds it), so the nonce is never contested and the relayer never
depends on the node's pending-transaction bookkeeping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from careledger import errors
from careledger.chain.reverts import RevertDecoder
from careledger.chain.rpc import RawRpc, RpcRefused

GAS_HEADROOM = 1.2

Call = ContractFunction | ContractConstructor
Receipt = TxReceipt  # what other layers name a receipt, without importing web3


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str  # 0x-prefixed
    nonce: int


class Sender:
    """Signs and sends transactions for one key."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        *,
        receipt_timeout: float = 60.0,
        poll_latency: float = 0.02,
        rpc: RawRpc | None = None,
    ) -> None:
        self.w3 = w3
        self.rpc = rpc or RawRpc(str(getattr(w3.provider, "endpoint_uri", "")), receipt_timeout)
        self.account = account
        self._decoder = decoder
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._receipt_timeout = receipt_timeout
        self._poll_latency = poll_latency

    @property
    def address(self) -> str:
        return str(self.account.address)

    def transact(self, contract: str, call: Call, *, gas: int | None = None) -> TxReceipt:
        """Send `call`, wait for its receipt and return it; reverts become domain errors."""
        tx_hash = self.send(contract, call, gas=gas)
        return self.wait(contract, call, tx_hash)

    def send(self, contract: str, call: Call, *, gas: int | None = None) -> HexBytes:
        """Sign and send `call` without waiting; returns the transaction hash."""
        signed = self.sign(contract, call, gas=gas)
        self.broadcast(contract, signed)
        return HexBytes(signed.tx_hash)

    def sign(self, contract: str, call: Call, *, gas: int | None = None) -> SignedTx:
        """Estimate (decoding a revert into a domain error), then sign with the next nonce.

        The caller may persist the signed transaction before broadcasting it, so that a
        crash in between is recovered by broadcasting the very same transaction again:
        a signed transaction can be mined at most once.
        """
        if gas is None:
            gas = int(self._estimate(contract, call) * GAS_HEADROOM)
        with self._lock:
            max_fee, tip = self._fees()
            nonce = self._next_nonce()
            params: TxParams = {
                "from": self.account.address,
                "nonce": Nonce(nonce),
                "gas": gas,
                "chainId": self._chain(),
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
            tx = call.build_transaction(params)
            signed = self.account.sign_transaction(dict(tx))  # type: ignore[arg-type]
            self._nonce = nonce + 1
            return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), nonce)

    def sign_data(self, contract: str, to: str, data: bytes, *, gas: int | None = None) -> SignedTx:
        """sign() for calldata encoded by the caller (large batches: web3's contract-function
        path encodes them slowly, and twice — to estimate and to build)."""
        to = Web3.to_checksum_address(to)
        if gas is None:
            gas = int(self._estimate_data(contract, to, data) * GAS_HEADROOM)
        with self._lock:
            max_fee, tip = self._fees()
            nonce = self._next_nonce()
            tx: dict[str, Any] = {
                "to": to,
                "data": data,
                "value": 0,
                "nonce": nonce,
                "gas": gas,
                "chainId": self._chain(),
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "type": 2,
            }
            signed = self.account.sign_transaction(tx)
            self._nonce = nonce + 1
            return SignedTx(bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex(), nonce)

    def broadcast(self, contract: str, signed: SignedTx) -> None:
        """Hand a signed transaction to the node (again, after a crash: that is harmless)."""
        try:
            self.rpc.call("eth_sendRawTransaction", ["0x" + signed.raw.hex()])
        except RpcRefused as exc:
            if "already" in str(exc).lower():  # known to the node already
                return
            self._nonce = None  # resynchronise from the node on the next signature
            raise errors.TransactionFailed(f"{contract}: the node refused the transaction: {exc}") from None

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of a mined transaction, None while it is not mined. Status, block and
        gas come as ints; the logs stay as the node sent them (formatting a thousand logs the
        web3 way costs more than the relayer's whole step): decode them with the clients."""
        raw = self.rpc.ask("eth_getTransactionReceipt", [tx_hash])
        if raw is None:
            return None
        receipt = {
            **raw,
            "status": int(raw["status"], 16),
            "blockNumber": int(raw["blockNumber"], 16),
            "gasUsed": int(raw["gasUsed"], 16),
            "transactionHash": HexBytes(raw["transactionHash"]),
        }
        return cast(TxReceipt, receipt)

    def confirmed_nonce(self) -> int:
        """How many of this key's transactions are mined."""
        return int(self.rpc.ask("eth_getTransactionCount", [self.address, "latest"]), 16)

    def resync(self) -> None:
        """Forget the local nonce; the next signature asks the node."""
        with self._lock:
            self._nonce = None

    def wait(self, contract: str, call: Call, tx_hash: HexBytes) -> TxReceipt:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self._receipt_timeout, poll_latency=self._poll_latency
            )
        except TimeExhausted:
            raise errors.TransactionFailed(
                f"{contract}: transaction {tx_hash.hex()} not mined in time"
            ) from None
        if receipt["status"] != 1:
            # Replay the call at the block before to learn why; the state may have moved.
            self._estimate(contract, call, block=receipt["blockNumber"] - 1)
            raise errors.TransactionFailed(f"{contract}: transaction {tx_hash.hex()} reverted")
        return receipt

    def _estimate(self, contract: str, call: Call, block: int | None = None) -> int:
        try:
            if block is None:
                return int(call.estimate_gas({"from": self.account.address}))
            return int(call.estimate_gas({"from": self.account.address}, block_identifier=block))
        except ContractLogicError as exc:
            raise self._decoder.decode(contract, _revert_data(exc)) from None
        except Web3RPCError as exc:
            raise errors.TransactionFailed(f"{contract}: {exc}") from None
        except (OSError, ConnectionError) as exc:
            raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None

    def _estimate_data(self, contract: str, to: str, data: bytes) -> int:
        call = {"from": self.address, "to": to, "data": "0x" + data.hex()}
        try:
            return int(self.rpc.call("eth_estimateGas", [call]), 16)
        except RpcRefused as exc:
            if "revert" in str(exc).lower():
                raise self._decoder.decode(contract, exc.revert_data) from None
            raise errors.TransactionFailed(f"{contract}: {exc}") from None

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = int(self.rpc.ask("eth_getTransactionCount", [self.address, "pending"]), 16)
        return self._nonce

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc.ask("eth_chainId", []), 16)
        return self._chain_id

    def _fees(self) -> tuple[Wei, Wei]:
        """(maxFeePerGas, maxPriorityFeePerGas): room for the base fee to double, a 1 gwei tip."""
        block = self.rpc.ask("eth_getBlockByNumber", ["latest", False])
        base = int(block.get("baseFeePerGas") or "0x0", 16)
        tip = 1_000_000_000 if base else 0
        return Wei(2 * base + tip), Wei(tip)


def _revert_data(exc: ContractLogicError) -> bytes:
    data: Any = exc.data
    if isinstance(data, dict):
        data = data.get("data", "")
    if isinstance(data, str):
        return bytes(HexBytes(data)) if data.startswith("0x") else b""
    if isinstance(data, bytes):
        return data
    return b""
