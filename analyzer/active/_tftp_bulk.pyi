"""Types of the C extension analyzer/active/_tftp_bulk.c (see active/tftp.py)."""

def receive_blocks(fd: int, file_fd: int, out: bytearray, spare: bytearray, blksize: int,
                   expected: int, acked: int, window: int, room: int, max_blocks: int, /
                   ) -> tuple[int, int, int, bytes | int | None]: ...
