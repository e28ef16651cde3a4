"""The auditor's tools: replay the chain, check the rules, verify a custodian's store, report."""
