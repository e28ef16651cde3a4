"""CareLedger: consent-governed sharing of patient records on a permissioned EVM chain."""

__version__ = "0.1.0"
