"""Shared fixtures: every test talks to the real PostgreSQL and Redis that `make test` provides."""
