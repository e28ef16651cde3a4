"""HTTP: FastAPI routes, request/response schemas, and the one error → status table."""
