"""Envelope encryption and record commitments: bytes in, bytes out, no I/O but key files."""
