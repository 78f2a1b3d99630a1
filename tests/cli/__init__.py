"""Tests for analyzer/cli."""
