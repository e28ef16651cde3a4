"""Alembic environment: the URL comes from the caller (careledger.store.migrate)."""

from __future__ import annotations

from alembic import context

from careledger.store.db import make_engine
from careledger.store.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "careledger.store.migrate sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=engine.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
