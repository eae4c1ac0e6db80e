#!/usr/bin/env python3
"""A counting HTTP/1.1 proxy for the wire-bytes benchmark (standard library).

    proxy.py PORT UPSTREAM_HOST:PORT STATS_FILE [--identity]

Listens on 127.0.0.1:PORT, forwards every request to the upstream and every
answer back unchanged, and counts the bytes of the answers (headers and
bodies, what a client receives). With --identity it removes the client's
Accept-Encoding first, so the server answers uncompressed: the same client
and requests, without compression. After each connection closes it writes
"BYTES REQUESTS ACCEPT-ENCODING" (totals so far, and the first
Accept-Encoding the client sent, `-` for none) to STATS_FILE. Requests must have no body
(cargo's index and download requests are GETs).
"""

import asyncio
import sys

PORT, UPSTREAM, STATS = int(sys.argv[1]), sys.argv[2], sys.argv[3]
IDENTITY = "--identity" in sys.argv[4:]
HOST, UPORT = UPSTREAM.rsplit(":", 1)
totals = {"bytes": 0, "requests": 0, "accept": None}


async def pump_answers(reader, writer):
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        totals["bytes"] += len(chunk)
        writer.write(chunk)
        await writer.drain()
    writer.close()


async def client(c_reader, c_writer):
    u_reader, u_writer = await asyncio.open_connection(HOST, int(UPORT))
    answers = asyncio.ensure_future(pump_answers(u_reader, c_writer))
    try:
        while True:
            head = await c_reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            for l in lines:
                if totals["accept"] is None and l.lower().startswith(b"accept-encoding:"):
                    totals["accept"] = l.split(b":", 1)[1].strip().decode().replace(" ", "")
            if IDENTITY:
                lines = [l for l in lines if not l.lower().startswith(b"accept-encoding:")]
            totals["requests"] += 1
            u_writer.write(b"\r\n".join(lines))
            await u_writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    u_writer.close()
    await asyncio.gather(answers, return_exceptions=True)
    with open(STATS, "w") as f:
        f.write(f"{totals['bytes']} {totals['requests']} {totals['accept'] or '-'}\n")


async def main():
    server = await asyncio.start_server(client, "127.0.0.1", PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
