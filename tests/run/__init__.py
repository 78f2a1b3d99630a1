"""Tests for analyzer/run (the application layer)."""
