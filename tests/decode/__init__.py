"""Tests for analyzer/decode."""
