"""Persistence: SQLAlchemy 2 models and repositories (SQLite embedded, PostgreSQL in production)."""
