"""Thin socket drivers for the active modes; protocol logic stays in the sans-IO machines.

A driver owns the sockets, the clock and the files of one active command. It feeds the
machine (e.g. `analyzer.tftp.client.TftpClient`) the datagrams and timer expiries and
carries out the actions the machine returns; it decides nothing about the protocol.
"""
