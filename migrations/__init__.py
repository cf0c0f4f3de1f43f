"""Alembic migrations: the schema's history. `cohortbot migrate` applies them."""
