"""Names of the link types (LINKTYPE_* values from tcpdump.org) we meet in captures."""

ETHERNET = 1
NULL = 0
RAW_ALT_12 = 12  # LINKTYPE_RAW on some BSDs (DLT_RAW = 12 / 14)
RAW_ALT_14 = 14
LOOP = 108
RAW = 101
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
NFLOG = 239
LINUX_SLL2 = 276

NAMES: dict[int, str] = {
    0: "null",
    1: "ethernet",
    6: "ieee802.5",
    9: "ppp",
    12: "raw",
    14: "raw",
    101: "raw",
    105: "ieee802.11",
    108: "loop",
    113: "linux-sll",
    127: "ieee802.11-radiotap",
    147: "user0",
    192: "ppi",
    220: "usb-linux-mmapped",
    228: "ipv4",
    229: "ipv6",
    239: "nflog",
    249: "netlink",
    276: "linux-sll2",
}


def linktype_name(linktype: int) -> str:
    return NAMES.get(linktype, f"linktype-{linktype}")
