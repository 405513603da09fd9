"""Load from the Python clients people use, for persona-bench (bench/src/clients.rs).

    python clients.py --client aiohttp|httpx|openai --url URL [--token T] --conns N
                      --seconds S --stream|--json

Sends OpenAI chat-completion requests in a closed loop from N concurrent tasks for S
seconds and prints one JSON object: requests, errors, seconds, and the latencies' p50/p99 in
ms. For a stream the latency ends at the first SSE `data:` line, read the way each client
reads it (aiohttp's line reader, httpx's `aiter_lines`, the OpenAI SDK's first chunk): what a
user waits for. For JSON it ends with the whole body.
"""

import argparse
import asyncio
import json
import time

BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
}


def quantile(sorted_ms, q):
    if not sorted_ms:
        return None
    return sorted_ms[round((len(sorted_ms) - 1) * q)]


async def aiohttp_loop(url, headers, body, stream, deadline, out):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as r:
                    first = None
                    if stream:
                        async for line in r.content:
                            if first is None and line.startswith(b"data:"):
                                first = time.perf_counter() - start
                    else:
                        await r.read()
                        first = time.perf_counter() - start
                    ok = r.status == 200 and first is not None
            except aiohttp.ClientError:
                ok = False
            out.append(first if ok else None)


async def httpx_loop(client, url, headers, body, stream, deadline, out):
    import httpx

    while time.perf_counter() < deadline:
        start = time.perf_counter()
        first = None
        try:
            if stream:
                async with client.stream("POST", url, json=body, headers=headers) as r:
                    async for line in r.aiter_lines():
                        if first is None and line.startswith("data:"):
                            first = time.perf_counter() - start
                    ok = r.status_code == 200 and first is not None
            else:
                r = await client.post(url, json=body, headers=headers)
                first = time.perf_counter() - start
                ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        out.append(first if ok else None)


async def openai_loop(client, body, stream, deadline, out):
    import openai

    while time.perf_counter() < deadline:
        start = time.perf_counter()
        first = None
        try:
            if stream:
                chunks = await client.chat.completions.create(**body)
                async for _ in chunks:
                    if first is None:
                        first = time.perf_counter() - start
            else:
                await client.chat.completions.create(**body)
                first = time.perf_counter() - start
            ok = first is not None
        except openai.OpenAIError:
            ok = False
        out.append(first if ok else None)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", required=True, choices=["aiohttp", "httpx", "openai"])
    p.add_argument("--url", required=True, help="the API base, e.g. http://127.0.0.1:1/v1")
    p.add_argument("--token", default="none")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stream", action="store_true")
    mode.add_argument("--json", action="store_true")
    a = p.parse_args()

    body = dict(BODY, stream=a.stream)
    url = a.url.rstrip("/") + "/chat/completions"
    headers = {"authorization": f"Bearer {a.token}"}
    out = []
    # A short warm-up (connections, imports), not counted.
    warm = []
    start = time.perf_counter()
    deadline = start + a.seconds
    if a.client == "aiohttp":
        await aiohttp_loop(url, headers, body, a.stream, time.perf_counter() + 0.2, warm)
        start = time.perf_counter()
        deadline = start + a.seconds
        await asyncio.gather(
            *(aiohttp_loop(url, headers, body, a.stream, deadline, out) for _ in range(a.conns))
        )
    elif a.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=a.conns, max_keepalive_connections=a.conns)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            await httpx_loop(client, url, headers, body, a.stream, time.perf_counter() + 0.2, warm)
            start = time.perf_counter()
            deadline = start + a.seconds
            await asyncio.gather(
                *(httpx_loop(client, url, headers, body, a.stream, deadline, out) for _ in range(a.conns))
            )
    else:
        import httpx
        import openai

        http = openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=a.conns, max_keepalive_connections=a.conns)
        )
        client = openai.AsyncOpenAI(base_url=a.url, api_key=a.token, http_client=http, max_retries=0)
        await openai_loop(client, body, a.stream, time.perf_counter() + 0.2, warm)
        start = time.perf_counter()
        deadline = start + a.seconds
        await asyncio.gather(*(openai_loop(client, body, a.stream, deadline, out) for _ in range(a.conns)))
        await client.close()
    seconds = time.perf_counter() - start
    good = sorted(x * 1000 for x in out if x is not None)
    print(
        json.dumps(
            {
                "requests": len(good),
                "errors": len(out) - len(good),
                "seconds": seconds,
                "p50": quantile(good, 0.5),
                "p99": quantile(good, 0.99),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
