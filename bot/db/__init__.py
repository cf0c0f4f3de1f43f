"""Storage: SQLAlchemy 2 tables, the mapping of domain entities onto them, the unit of work."""
