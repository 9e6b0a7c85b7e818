from alembic import context
from sqlalchemy import create_engine

from bramley.models import Base  # noqa: F401  (imports every domain's tables)

config = context.config
target_metadata = Base.metadata


def _include_name(name, type_, parent_names) -> bool:
    # Made by raw SQL in 0003 and absent from the models: autogenerate must not propose dropping them.
    return not (name or "").startswith("devices_search") and not (name or "").endswith("_trgm")


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_name=_include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
