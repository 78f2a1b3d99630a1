"""What every driver needs from the socket API: resolving a host, naming an endpoint, and
turning the errors a user can cause into one-line `InputError`s (exit 2)."""

from __future__ import annotations

import errno
import socket

from analyzer.errors import InputError

Address = tuple[str, int] | tuple[str, int, int, int]


def parse_host_port(text: str, default_port: int, what: str = "peer") -> tuple[str, int]:
    """HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 address -> (host, port)."""
    host, found = text.strip(), None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InputError(f"bad {what} address {text!r}: missing ']'")
        rest = host[end + 1:]
        host = host[1:end]
        if rest:
            if not rest.startswith(":"):
                raise InputError(f"bad {what} address {text!r}")
            found = rest[1:]
    elif host.count(":") == 1:
        host, found = host.split(":")
    if not host:
        raise InputError(f"bad {what} address {text!r}: no host")
    if found is None:
        return host, default_port
    if not found.isdigit():
        raise InputError(f"bad port in {text!r}")
    return host, parse_port(found)


def parse_port(text: str | int, allow_zero: bool = False) -> int:
    try:
        port = int(text)
    except ValueError:
        raise InputError(f"{text!r} is not a port number") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise InputError(f"bad port {port}: ports are 1 to 65535")
    return port


def resolve(host: str, port: int, kind: int) -> tuple[int, tuple[str, int]]:
    """(address family, socket address) of `host`, IPv4 preferred when it has both;
    InputError for a host that does not resolve."""
    try:
        # (an ASCII name as bytes: a str is encoded by the `idna` codec, whose import
        # costs every transfer ~2 ms, and which leaves ASCII names as they are)
        infos = socket.getaddrinfo(host.encode() if host.isascii() else host, port,
                                   socket.AF_UNSPEC, kind)
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except UnicodeError:
        raise InputError(f"cannot resolve {host!r}: not a valid host name") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _kind, _proto, _name, address = infos[0]
    return family, (str(address[0]), int(address[1]))


def local_endpoint(sock: socket.socket) -> tuple[str, int]:
    address = sock.getsockname()
    return (str(address[0]), int(address[1]))


def bind_error(exc: OSError, transport: str, address: Address, what: str) -> InputError:
    """The one line for a failed bind: port in use, a privileged port, no such address."""
    where = f"{transport} {socket_address_text(address)}"
    if exc.errno == errno.EADDRINUSE:
        return InputError(f"cannot {what} {where}: the port is in use")
    if exc.errno == errno.EACCES:
        return InputError(f"cannot {what} {where}: ports below 1024 need root "
                          "(or CAP_NET_BIND_SERVICE)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return InputError(f"cannot {what} {where}: no interface has that address")
    return InputError(f"cannot {what} {where}: {exc.strerror or exc}")


def socket_address_text(address: Address | tuple[str, int]) -> str:
    """"ip:port", IPv6 as "[addr]:port" (SPEC's endpoint form)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def source_address_for(remote: str) -> str | None:
    """The local address the kernel would send to `remote` from (a UDP connect sends
    nothing; it only asks the routing table)."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        probe.connect((remote, 9))
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address in ("0.0.0.0", "::") else address
