"""Tests for analyzer/capture."""
