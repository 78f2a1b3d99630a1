"""Views over results: rich tables and diagrams for people, JSON Lines for scripts.

Nothing here analyzes; every number shown was computed by a tracker or the decoder.
"""
