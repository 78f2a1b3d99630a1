"""The test session's guard against scapy resolving MAC addresses on real interfaces."""

import pytest


def test_a_frame_without_destination_mac_fails_instead_of_resolving_it() -> None:
    from scapy.error import ScapyNoDstMacException
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    # Without the guard in conftest.py, building this frame sends an ARP request for
    # 10.9.9.9 out of the host's default interface.
    with pytest.raises(ScapyNoDstMacException):
        bytes(Ether() / IP(dst="10.9.9.9") / UDP())
