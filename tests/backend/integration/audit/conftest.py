"""The `net` fixture: a fresh anvil with a small, rule-abiding history."""

from tests.backend.integration.audit.test_replay import net

__all__ = ["net"]
