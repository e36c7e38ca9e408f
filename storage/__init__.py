"""Persistence: models, repositories, migrations and the database engine."""
