"""The CareLedger client: signs requests for a member or a patient, and checks every record it
receives against the chain. The tests, the CLI and integrators all use this one client."""

from careledger.client.http import CareLedgerClient, VerifiedRecord

__all__ = ["CareLedgerClient", "VerifiedRecord"]
