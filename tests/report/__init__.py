"""Tests for analyzer/report."""
