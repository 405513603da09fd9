//! Relaying an upstream SSE stream to the client, event by event, without buffering the
//! answer: `data:` lines go out as they arrive, SSE comments (OpenRouter's `: OPENROUTER
//! PROCESSING`) are dropped, usage is read from the chunks, an upstream failure in the middle
//! becomes a final `data:` event with an `error` object, and a stream that ends without
//! `[DONE]` is recorded as incomplete.

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::usage::Meter;

/// What the relay learned from one `data:` payload.
#[derive(Debug, Default, PartialEq)]
pub struct Seen {
    pub done: bool,
    pub error: bool,
    pub usage: Option<(i64, i64, i64)>,
    /// A chunk that carries only usage (`choices` empty).
    pub usage_only: bool,
    /// Characters of answer text in the chunk (content and tool-call arguments).
    pub chars: usize,
}

/// Reads a `data:` payload: `[DONE]`, an `error` object, or a chunk with `usage`.
///
/// A chunk of the usual shape is read into the small typed [`Chunk`], borrowing its text;
/// anything else (a field of an unexpected type, a duplicate key, not JSON) is read as a
/// general JSON value by [`inspect_value`]. The typed read is about a third of the cost of
/// the general one, and a stream pays it for every event. The two agree on every chunk a
/// JSON value can hold (a test holds them to it); the typed read is laxer only inside
/// fields it skips unread (`id`, `created`, …): a lone surrogate escape, a number beyond
/// `f64`, or nesting past 128 levels there does not stop it counting the chunk's text,
/// where the general read gives up on the whole chunk.
pub fn inspect(payload: &str) -> Seen {
    if payload.trim() == "[DONE]" {
        return Seen {
            done: true,
            ..Seen::default()
        };
    }
    match serde_json::from_str::<Object<Chunk>>(payload) {
        Ok(Object(chunk)) => chunk.seen(),
        Err(_) => inspect_value(payload),
    }
}

/// [`inspect`] over a general JSON value: every shape, at a higher cost.
fn inspect_value(payload: &str) -> Seen {
    let Ok(chunk) = serde_json::from_str::<Value>(payload) else {
        return Seen::default();
    };
    let choices = chunk["choices"].as_array();
    let chars = choices
        .into_iter()
        .flatten()
        .map(|c| super::usage::text_chars(&c["delta"]))
        .sum();
    let usage = super::usage::tokens(&chunk["usage"]);
    Seen {
        done: false,
        error: chunk.get("error").is_some_and(|e| !e.is_null()),
        usage,
        usage_only: usage.is_some() && choices.is_some_and(|c| c.is_empty()),
        chars,
    }
}

/// `T` read from a JSON object only. serde's derived structs also accept an array of their
/// fields in order (`"usage": []` would read as zero tokens), where a general JSON value
/// sees no object at all.
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A stream chunk of the usual shape; fields it does not name are skipped unread.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Object<Choice<'a>>>>,
    #[serde(default)]
    usage: Option<Object<Tokens>>,
    /// Read as a value, not skipped: a malformed error must not end a stream.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Object<Delta<'a>>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<Object<ToolCall<'a>>>>,
}

#[derive(serde::Deserialize)]
struct ToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<Object<Function<'a>>>,
}

#[derive(serde::Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Tokens {
    #[serde(default)]
    prompt_tokens: Option<i64>,
    #[serde(default)]
    completion_tokens: Option<i64>,
    #[serde(default)]
    total_tokens: Option<i64>,
}

impl Chunk<'_> {
    fn seen(&self) -> Seen {
        let chars = self
            .choices
            .iter()
            .flatten()
            .filter_map(|c| c.0.delta.as_ref().map(|d| &d.0))
            .map(|d| {
                let content = d.content.as_deref().map_or(0, |t| t.chars().count());
                let tools: usize = d
                    .tool_calls
                    .iter()
                    .flatten()
                    .filter_map(|t| t.0.function.as_ref()?.0.arguments.as_deref())
                    .map(|a| a.chars().count())
                    .sum();
                content + tools
            })
            .sum();
        let usage = self.usage.as_ref().map(|Object(u)| {
            super::usage::token_counts(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        });
        Seen {
            done: false,
            error: self.error.is_some(),
            usage,
            usage_only: usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty),
            chars,
        }
    }
}

/// The longest line the relay waits for before giving up on the upstream.
const MAX_LINE: usize = 1024 * 1024;

/// How long a relayed stream may go on: `idle` between two events (bytes that never make
/// up an event do not count: a provider dripping one byte a second is cut off), `total` in
/// all.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: std::time::Duration,
    pub total: std::time::Duration,
    /// Keep the usage-only chunk from the client (it did not ask for usage).
    pub strip_usage: bool,
}

struct Relay<S> {
    upstream: S,
    limits: Limits,
    started: tokio::time::Instant,
    last_event: tokio::time::Instant,
    buffer: Vec<u8>,
    meter: Meter,
    finished: bool,
    /// `[DONE]` came: the usage row is committed before the client gets it.
    commit: bool,
}

/// Appends `payload` to `out` as one `data:` event.
fn push_event(out: &mut Vec<u8>, payload: &[u8]) {
    out.reserve(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
}

fn event(payload: &[u8]) -> Bytes {
    let mut out = Vec::new();
    push_event(&mut out, payload);
    Bytes::from(out)
}

fn error_event(message: &str) -> Bytes {
    let body = json!({"error": {"code": "upstream_error", "message": message}});
    event(body.to_string().as_bytes())
}

impl<S> Relay<S> {
    /// Takes the complete lines out of the buffer and turns them into client events.
    fn drain_lines(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        // Lines are read in place and the buffer is drained once, after the last whole line.
        let mut read = 0;
        while let Some(at) = memchr::memchr(b'\n', &self.buffer[read..]) {
            let line = &self.buffer[read..read + at];
            read += at + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            // Comments (`: keep-alive`), blank separators and other fields are not passed on.
            let Some(payload) = line.strip_prefix(b"data:") else {
                continue;
            };
            let payload = payload.strip_prefix(b" ").unwrap_or(payload);
            let seen = inspect(&String::from_utf8_lossy(payload));
            if let Some(usage) = seen.usage {
                self.meter.set_tokens(usage);
            }
            self.meter.add_completion_chars(seen.chars);
            if seen.usage_only && self.limits.strip_usage {
                continue;
            }
            push_event(&mut out, payload);
            if seen.error {
                // The upstream gave up mid-answer: its error goes to the client, then the end.
                self.meter.set_status("error");
                self.finished = true;
                break;
            }
            if seen.done {
                self.meter.done();
                self.finished = true;
                self.commit = true;
                break;
            }
        }
        self.buffer.drain(..read);
        out
    }
}

/// The client's stream of SSE bytes for `upstream` (the upstream response body); an
/// upstream silent for `idle` is treated as broken.
pub fn relay<S, E>(
    upstream: S,
    meter: Meter,
    limits: Limits,
) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
{
    let now = tokio::time::Instant::now();
    let relay = Relay {
        upstream,
        limits,
        started: now,
        last_event: now,
        buffer: Vec::new(),
        meter,
        finished: false,
        commit: false,
    };
    futures_util::stream::unfold(relay, |mut relay| async move {
        loop {
            if relay.finished {
                return None;
            }
            let idle_until = relay.last_event + relay.limits.idle;
            let total_until = relay.started + relay.limits.total;
            let next =
                match tokio::time::timeout_at(idle_until.min(total_until), relay.upstream.next())
                    .await
                {
                    Ok(next) => next.map(|item| item.map_err(|_| None)),
                    Err(_elapsed) if total_until <= idle_until => Some(Err(Some(
                        "The AI provider's answer took too long and was cut off.",
                    ))),
                    Err(_elapsed) => Some(Err(Some(
                        "The AI provider stopped answering in the middle.",
                    ))),
                };
            match next {
                Some(Ok(bytes)) => {
                    relay.buffer.extend_from_slice(&bytes);
                    let out = relay.drain_lines();
                    if !out.is_empty() {
                        relay.last_event = tokio::time::Instant::now();
                    }
                    if relay.commit {
                        relay.commit = false;
                        relay.meter.commit("ok").await;
                    }
                    if relay.buffer.len() > MAX_LINE {
                        // No newline in a megabyte: not an event stream we can relay.
                        relay.finished = true;
                        relay.meter.set_status("error");
                        let mut out = out;
                        out.extend_from_slice(&error_event(
                            "The AI provider sent something that is not an event stream.",
                        ));
                        return Some((Ok(Bytes::from(out)), relay));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), relay));
                    }
                }
                Some(Err(why)) => {
                    relay.finished = true;
                    relay.meter.set_status("error");
                    let out = error_event(
                        why.unwrap_or("The AI provider stopped answering in the middle."),
                    );
                    return Some((Ok(out), relay));
                }
                None => {
                    // The upstream closed. A last line without its newline still counts.
                    relay.buffer.push(b'\n');
                    let mut out = relay.drain_lines();
                    let upstream_error = relay.finished && !relay.meter.saw_done();
                    relay.finished = true;
                    if !relay.meter.saw_done() && !upstream_error {
                        // Ended without [DONE]: a failure, told to the client and recorded.
                        relay.meter.set_status("incomplete");
                        out.extend_from_slice(&error_event(
                            "The AI provider ended the answer before it was complete.",
                        ));
                    }
                    return Some((Ok(Bytes::from(out)), relay));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert!(inspect("[DONE]").done);
        assert!(inspect(r#"{"error":{"message":"boom"}}"#).error);
        assert_eq!(
            inspect(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#).usage,
            Some((3, 4, 7))
        );
        assert_eq!(inspect(r#"{"choices":[],"usage":null}"#), Seen::default());
        let usage_only = inspect(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        );
        assert!(usage_only.usage_only);
        let text = inspect(r#"{"choices":[{"delta":{"content":"héllo"}}]}"#);
        assert_eq!((text.chars, text.usage_only), (5, false));
        assert_eq!(inspect("not json"), Seen::default());
    }

    /// The typed read gives the general read's answer, and takes the usual shapes itself.
    #[test]
    fn the_typed_read_agrees_with_the_general_one() {
        let usual = [
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"h\u00e9llo \"w\"\n"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"function":{}},{"type":"function"}]}}]}"#,
            r#"{"choices":[{"delta":{}},{"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            r#"{"choices":[],"usage":{}}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":null,"usage":{"total_tokens":null}}"#,
            r#"{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":1}}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"error":"boom"}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
            r#"{}"#,
        ];
        for payload in usual {
            assert!(
                serde_json::from_str::<Object<Chunk>>(payload).is_ok(),
                "{payload}"
            );
            assert_eq!(inspect(payload), inspect_value(payload), "{payload}");
        }
        let unusual = [
            r#"{"choices":{"delta":{"content":"x"}}}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"delta":{"content":["x"]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":{"a":1}}}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1.5,"completion_tokens":2}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":18446744073709551615}}"#,
            r#"{"choices":[],"usage":5}"#,
            r#"{"usage":{"total_tokens":1},"usage":{"total_tokens":2}}"#,
            r#"[1,2]"#,
            // Arrays where objects belong (found in review: derived structs read an array
            // as their fields in order).
            r#"{"usage":[]}"#,
            r#"{"choices":[],"usage":[]}"#,
            r#"{"usage":[1,2,3],"choices":[]}"#,
            r#"{"choices":[{"delta":["abc"]}]}"#,
            r#"{"choices":[[{"content":"abc"}]]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[[["xyz"]]]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":["xyz"]}]}}]}"#,
            r#"[null,null,1]"#,
            r#"[[],{"prompt_tokens":5}]"#,
            // An error no JSON value can hold does not end the stream.
            r#"{"error":"\ud800"}"#,
            r#"{"error":1e999}"#,
            r#"{"error":false}"#,
            r#""text""#,
            "",
        ];
        for payload in unusual {
            assert_eq!(inspect(payload), inspect_value(payload), "{payload}");
        }
        let deep = format!(r#"{{"error":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(inspect(&deep), inspect_value(&deep));
        // The one place they part, as documented: a field the typed read skips may hold what
        // no JSON value can, and the chunk's text still counts.
        let odd_id = r#"{"id":"\ud800","choices":[{"delta":{"content":"hi"}}]}"#;
        assert_eq!((inspect(odd_id).chars, inspect_value(odd_id).chars), (2, 0));
    }
}
