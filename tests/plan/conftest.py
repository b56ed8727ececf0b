"""The CLI fixtures of the apply tests: plans are made by the same commands on the same projects."""

from tests.apply.conftest import clean_env, engine, project

__all__ = ["clean_env", "engine", "project"]
