"""The analyzer test suite (a package so that `from tests.conftest import ...` works)."""
