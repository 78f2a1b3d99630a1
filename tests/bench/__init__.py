"""pytest-benchmark suite of the hot paths (decode, TCP tracking, TFTP tracking)."""
