"""End-to-end tests of the UDP and TCP active modes (`udp *`, `tcp connect/serve`) against
real sockets, independent peers (socat, nc, curl, http.server, plain Python sockets) and
network namespaces; the wire is checked with tcpdump and tshark."""
