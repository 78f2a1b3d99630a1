"""Frames of several captures merged in time order, as `mergecap` merges them (compiled:
it runs once per frame).

Ring buffers (`dumpcap -b`, `tcpdump -C/-G`) are the common case: files that follow one
another in time. So the merge hands on the frames of the file that comes first as long
as they come before every other file's next frame (one comparison a frame), and keeps a
heap only for the stretches where files overlap. At equal times the file given first
wins, as in mergecap. One frame a file is held, however long the files.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from analyzer.capture.frame import Frame


def merge_frames(sources: list[Iterator[Frame]], offsets: list[int]) -> Iterator[Frame]:
    """The frames of `sources` in time order; source i's interface ids are shifted by
    `offsets[i]` (its interfaces come after those of the sources before it)."""
    heap: list[tuple[float, int, Frame]] = []
    for index, source in enumerate(sources):
        frame = next(source, None)
        if frame is not None:
            heap.append((frame.ts, index, frame))
    heapq.heapify(heap)
    while heap:
        ts, index, frame = heapq.heappop(heap)
        source = sources[index]
        offset = offsets[index]
        # the next frame of any other file: this one's frames before it go on directly
        limit = heap[0][0] if heap else float("inf")
        first = heap[0][1] if heap else len(sources)
        while True:
            if offset:
                frame = Frame(frame.ts, frame.linktype, frame.interface + offset, frame.data,
                              frame.wirelen)
            yield frame
            following = next(source, None)
            if following is None:
                break
            ts = following.ts
            if ts > limit or (ts == limit and index > first):
                heapq.heappush(heap, (ts, index, following))
                break
            frame = following
