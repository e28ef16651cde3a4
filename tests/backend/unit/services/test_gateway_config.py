import pytest

from careledger.errors import ConfigurationError
from careledger.services.gateway import _check_endpoint_scheme


@pytest.mark.parametrize(
    "endpoint",
    ["https://clinic-a.example.org", "http://127.0.0.1:8001", "http://localhost:9000", "http://[::1]:80"],
)
def test_endpoint_https_or_loopback_is_accepted(endpoint: str) -> None:
    _check_endpoint_scheme(endpoint)


@pytest.mark.parametrize(
    "endpoint", ["http://clinic-a.example.org", "http://10.0.0.5:8000", "ftp://127.0.0.1"]
)
def test_endpoint_plain_http_off_loopback_is_refused(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="must be https"):
        _check_endpoint_scheme(endpoint)
