"""UDP datagrams as seen on the wire, for the active modes' watch view (sans-IO)."""
