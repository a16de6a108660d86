#!/usr/bin/python3
"""SMTP latency probe: SESSIONS concurrent asyncio sessions send COUNT messages
of SIZE bytes in all and time each end of DATA ("\\r\\n.\\r\\n") to its 250.

usage: smtp_latency.py HOST PORT SESSIONS COUNT SIZE FROM TO
Prints one line: "sent=N failed=N elapsed=S p50_ms=X p99_ms=Y".
"""

import asyncio
import sys
import time


async def reply(reader):
    """Reads one (possibly multi-line) reply; returns its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def session(host, port, todo, body, sender, rcpt, lat, failed):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if await reply(reader) != 220:
            raise ConnectionError("no banner")
        writer.write(b"EHLO latency.bench\r\n")
        if await reply(reader) != 250:
            raise ConnectionError("EHLO refused")
        while todo[0] > 0:
            todo[0] -= 1
            writer.write(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (sender, rcpt))
            codes = [await reply(reader) for _ in range(3)]
            if codes != [250, 250, 354]:
                failed[0] += 1
                writer.write(b"RSET\r\n")
                await reply(reader)
                continue
            writer.write(body)
            t0 = time.monotonic()
            writer.write(b".\r\n")
            code = await reply(reader)
            if code == 250:
                lat.append(time.monotonic() - t0)
            else:
                failed[0] += 1
        writer.write(b"QUIT\r\n")
        await reply(reader)
    finally:
        writer.close()


def make_body(size):
    head = b"From: <bench@bench.test>\r\nTo: <sink@bench.test>\r\nSubject: latency\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    out = bytearray(head)
    while len(out) < size:
        out += line
    return bytes(out)


async def main():
    host, port, sessions, count, size, sender, rcpt = sys.argv[1:8]
    body = make_body(int(size))
    todo = [int(count)]
    lat, failed = [], [0]
    t0 = time.monotonic()
    await asyncio.gather(*[session(host, int(port), todo, body, sender.encode(),
                                   rcpt.encode(), lat, failed)
                           for _ in range(int(sessions))])
    elapsed = time.monotonic() - t0
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000 if lat else 0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0
    print("sent=%d failed=%d elapsed=%.2f p50_ms=%.2f p99_ms=%.2f"
          % (len(lat), failed[0], elapsed, p50, p99))


asyncio.run(main())
