"""End-to-end tests against real TFTP servers on loopback."""
