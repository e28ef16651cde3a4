"""Use cases: ingest, consent, access, erasure, accounting."""
