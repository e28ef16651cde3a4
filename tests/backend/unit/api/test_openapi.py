"""The OpenAPI document names the statuses each route can return."""

from careledger.api.app import create_app
from careledger.config import Settings

UNSIGNED = {"/health", "/ready", "/metrics"}


def test_every_signed_route_documents_its_refusals() -> None:
    spec = create_app(Settings()).openapi()
    routes = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    signed = [(p, m, op) for p, m, op in routes if p not in UNSIGNED]
    assert len(signed) >= 12
    for path, method, op in signed:
        documented = set(op["responses"])
        missing = {"401", "403", "503"} - documented
        assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"


def test_record_routes_document_their_specific_statuses() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert {"400", "409", "413", "415"} <= set(paths["/fhir"]["post"]["responses"])
    assert {"404", "410"} <= set(paths["/records/{record_id}"]["get"]["responses"])
    assert {"404", "409", "410"} <= set(paths["/records/{record_id}/erasure"]["post"]["responses"])
