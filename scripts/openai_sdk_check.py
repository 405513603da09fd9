"""Checks persona's AI proxy with the official, unmodified OpenAI Python SDK.

Run by scripts/openai-sdk-check.sh against a test server whose upstream is the fake
provider (bench/src/bin/fake-provider.rs). Usage:

    python openai_sdk_check.py http://127.0.0.1:PORT

Prints one line per check and a summary; exits non-zero when any check fails.
"""

import json
import sys
import time
import traceback
import urllib.error
import urllib.request

import openai

CHAT_MODEL = "openai/gpt-4o-mini"
EMBEDDING_MODEL = "openai/text-embedding-3-small"
# What the fake provider answers.
REPLY = "Hello from the fake provider"
TOOL_ARGUMENTS = {"city": "Paris", "days": 3}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
MESSAGES = [{"role": "user", "content": "Say hello, please."}]


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def register(server):
    """A fresh user through the plain REST API; returns the access token."""
    email = f"sdk-check-{int(time.time() * 1000)}@example.com"
    body = json.dumps(
        {"email": email, "password": "correct horse battery staple", "displayName": "SDK check"}
    ).encode()
    request = urllib.request.Request(
        f"{server}/api/v1/auth/register",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as err:
        raise SystemExit(f"register failed: HTTP {err.code}: {err.read()[:500]!r}") from err
    token = answer.get("accessToken")
    if not token:
        raise SystemExit(f"register answered no accessToken: {sorted(answer)}")
    return token


def check_chat(client):
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    expect(len(completion.choices) == 1, f"choices: {completion.choices!r}")
    message = completion.choices[0].message
    expect(message.content == REPLY, f"content {message.content!r}")
    expect(completion.choices[0].finish_reason == "stop", completion.choices[0].finish_reason)
    expect(
        completion.usage is not None and completion.usage.total_tokens > 0,
        f"usage {completion.usage!r}",
    )
    return f"content {message.content!r}, usage {completion.usage.total_tokens} tokens"


def check_stream(client):
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    text, chunks, finish = [], 0, None
    for chunk in stream:
        chunks += 1
        # A client that did not ask for usage must never see a usage-only chunk.
        expect(chunk.choices, f"chunk {chunks} has empty choices: {chunk.model_dump_json()}")
        expect(chunk.usage is None, f"chunk {chunks} carries usage nobody asked for")
        delta = chunk.choices[0].delta
        if delta.content:
            text.append(delta.content)
        finish = chunk.choices[0].finish_reason or finish
    expect("".join(text) == REPLY, f"streamed text {''.join(text)!r}")
    expect(finish == "stop", f"finish_reason {finish!r}")
    return f"{chunks} chunks, text {''.join(text)!r}, no usage chunk"


def check_stream_usage(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    expect(chunks, "no chunks")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expect(text == REPLY, f"streamed text {text!r}")
    last = chunks[-1]
    expect(last.usage is not None, f"last chunk has no usage: {last.model_dump_json()}")
    expect(last.usage.total_tokens > 0, f"usage {last.usage!r}")
    expect(last.choices == [], f"the usage chunk has choices: {last.choices!r}")
    expect(
        all(c.usage is None for c in chunks[:-1]), "usage in a chunk before the last one"
    )
    return f"{len(chunks)} chunks, last chunk usage {last.usage.total_tokens} tokens"


def check_tools(client):
    completion = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
        tools=TOOLS,
    )
    choice = completion.choices[0]
    expect(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason!r}")
    calls = choice.message.tool_calls or []
    expect(len(calls) == 1, f"tool_calls {calls!r}")
    call = calls[0]
    expect(call.type == "function" and call.id, f"tool call {call!r}")
    expect(call.function.name == "get_weather", f"name {call.function.name!r}")
    arguments = json.loads(call.function.arguments)
    expect(arguments == TOOL_ARGUMENTS, f"arguments {arguments!r}")
    return f"{call.function.name}({call.function.arguments})"


def check_tools_stream(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
        tools=TOOLS,
        stream=True,
    )
    calls, deltas, finish = {}, 0, None
    for chunk in stream:
        expect(chunk.choices, f"chunk with empty choices: {chunk.model_dump_json()}")
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            deltas += 1
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
    expect(finish == "tool_calls", f"finish_reason {finish!r}")
    expect(list(calls) == [0], f"tool call indexes {sorted(calls)!r}")
    call = calls[0]
    expect(call["id"], "the tool call has no id")
    expect(call["name"] == "get_weather", f"name {call['name']!r}")
    expect(deltas > 2, f"the arguments came in {deltas} deltas, expected several")
    arguments = json.loads(call["arguments"])
    expect(arguments == TOOL_ARGUMENTS, f"arguments {arguments!r}")
    return f"{deltas} tool_calls deltas reassembled to {call['name']}({call['arguments']})"


def check_embeddings(client):
    # The SDK asks for base64 by default and decodes it itself.
    answer = client.embeddings.create(model=EMBEDDING_MODEL, input=["hello world", "goodbye"])
    expect(len(answer.data) == 2, f"{len(answer.data)} embeddings for 2 inputs")
    for i, item in enumerate(answer.data):
        expect(item.index == i, f"index {item.index} at {i}")
        expect(
            isinstance(item.embedding, list)
            and item.embedding
            and all(isinstance(x, float) for x in item.embedding),
            f"embedding {i}: {str(item.embedding)[:80]}",
        )
    expect(answer.data[0].embedding != answer.data[1].embedding, "two inputs, same vector")
    expect(answer.usage.total_tokens > 0, f"usage {answer.usage!r}")
    single = client.embeddings.create(
        model=EMBEDDING_MODEL, input="hello world", encoding_format="float"
    )
    expect(len(single.data) == 1, f"{len(single.data)} embeddings for 1 input")
    expect(
        all(abs(a - b) < 1e-6 for a, b in zip(single.data[0].embedding, answer.data[0].embedding))
        and len(single.data[0].embedding) == len(answer.data[0].embedding),
        "float and base64 encodings of the same input differ",
    )
    return (
        f"{len(answer.data)} vectors of {len(answer.data[0].embedding)} floats (base64), "
        f"1 vector (float), usage {answer.usage.total_tokens} tokens"
    )


def check_models(client):
    ids = [model.id for model in client.models.list()]
    expect(CHAT_MODEL in ids, f"{CHAT_MODEL} not in {ids!r}")
    return f"models {ids!r}"


def check_model_not_allowed(client):
    try:
        client.chat.completions.create(model="evil/not-allowed", messages=MESSAGES)
    except (openai.UnprocessableEntityError, openai.BadRequestError) as err:
        expect(err.code == "model_not_allowed", f"code {err.code!r} ({err.message!r})")
        return f"{type(err).__name__} {err.status_code} code={err.code}"
    raise CheckFailed("a disallowed model was accepted")


def check_model_not_allowed_stream(client):
    try:
        for _ in client.chat.completions.create(
            model="evil/not-allowed", messages=MESSAGES, stream=True
        ):
            pass
    except (openai.UnprocessableEntityError, openai.BadRequestError) as err:
        expect(err.code == "model_not_allowed", f"code {err.code!r} ({err.message!r})")
        return f"{type(err).__name__} {err.status_code} code={err.code} before the stream"
    raise CheckFailed("a disallowed model was accepted for streaming")


def check_bad_key(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="not-a-valid-token", max_retries=0)
    try:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    except openai.AuthenticationError as err:
        return f"{type(err).__name__} {err.status_code} code={err.code}"
    raise CheckFailed("a bad key was accepted")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: openai_sdk_check.py http://HOST:PORT")
    server = sys.argv[1].rstrip("/")
    base_url = f"{server}/api/v1/ai"
    print(f"openai SDK {openai.__version__}, server {server}")
    token = register(server)
    # The SDK as an app would use it; no retries, so a failure shows at once.
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=30)
    checks = [
        ("chat completion", lambda: check_chat(client)),
        ("chat stream", lambda: check_stream(client)),
        ("chat stream, include_usage", lambda: check_stream_usage(client)),
        ("tool call", lambda: check_tools(client)),
        ("tool call, streamed", lambda: check_tools_stream(client)),
        ("embeddings", lambda: check_embeddings(client)),
        ("models list", lambda: check_models(client)),
        ("disallowed model", lambda: check_model_not_allowed(client)),
        ("disallowed model, streamed", lambda: check_model_not_allowed_stream(client)),
        ("bad key", lambda: check_bad_key(base_url)),
    ]
    failed = []
    for name, check in checks:
        try:
            detail = check()
            print(f"ok    {name}: {detail}")
        except CheckFailed as err:
            failed.append(name)
            print(f"FAIL  {name}: {err}")
        except Exception as err:  # the SDK rejected what the server sent
            failed.append(name)
            print(f"FAIL  {name}: {type(err).__name__}: {err}")
            traceback.print_exc(limit=3, file=sys.stdout)
    passed = len(checks) - len(failed)
    print(f"{passed}/{len(checks)} OpenAI SDK checks passed" + (
        f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
