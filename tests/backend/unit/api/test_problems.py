"""Retry-After on the refusals that pass by themselves (503, 429), and on no other."""

from __future__ import annotations

import pytest

from careledger import errors
from careledger.api.problems import retry_headers, status_of


@pytest.mark.parametrize(
    ("error", "seconds"),
    [
        (errors.ChainUnavailable("chain unreachable"), "5"),
        (errors.StoreUnavailable("database unavailable"), "5"),
        (errors.RateLimited("break-glass limit reached"), "3600"),
        (errors.RateLimited("break-glass limit reached", retry_after_s=12.2), "13"),
        (errors.RateLimited("break-glass limit reached", retry_after_s=0.01), "1"),
    ],
)
def test_retry_after_on_refusals_that_pass(error: Exception, seconds: str) -> None:
    status, _ = status_of(error)
    assert retry_headers(error, status) == {"Retry-After": seconds}


@pytest.mark.parametrize(
    "error", [errors.Forbidden("no consent"), errors.NotFound("no such record"), ValueError("bug")]
)
def test_no_retry_after_on_other_refusals(error: Exception) -> None:
    status, _ = status_of(error)
    assert status not in (429, 503)
    assert retry_headers(error, status) is None
