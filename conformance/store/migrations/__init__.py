"""Alembic migrations of the system database (run through ``conformance.store.db.upgrade``)."""
