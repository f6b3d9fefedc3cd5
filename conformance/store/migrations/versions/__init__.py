"""One module per schema revision; Alembic reads them in order of their down_revision."""
