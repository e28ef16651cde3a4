"""The `careledger` command line."""
