"""A sample PropFlow backend: SQLAlchemy models and the Alembic migrations that build its schema."""
