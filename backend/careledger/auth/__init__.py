"""Request authentication: RFC 9421 HTTP message signatures with EIP-191 keys, and nonces."""
