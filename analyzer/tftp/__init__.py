"""TFTP (RFC 1350 with options per RFC 2347/2348/2349 and windowsize per RFC 7440).

`codec` encodes and decodes packets, `tracker` turns captured packets into transfers,
files and findings (sans-IO), `netascii` decodes the netascii wire form, and `extract`
is the IO side that writes the rebuilt files.
"""
