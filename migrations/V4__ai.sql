-- AI scripts (SPEC section 6) and AI usage records (SPEC section 7).
-- Times are Unix seconds (UTC).

-- Versioned prompt templates; at most one active version per name.
CREATE TABLE ai_scripts (
    name        TEXT NOT NULL,                          -- [a-z0-9_-]{1,100}
    version     INTEGER NOT NULL CHECK (version >= 1),
    description TEXT NOT NULL DEFAULT '',
    content     TEXT NOT NULL,                          -- JSON object
    is_active   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;
CREATE UNIQUE INDEX ai_scripts_one_active ON ai_scripts (name) WHERE is_active = 1;

-- One row per proxied call: who, which model, how many tokens, how long, how it ended.
-- Never the prompt or the reply.
CREATE TABLE ai_usage (
    id                INTEGER PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint          TEXT NOT NULL,                    -- chat, content, analyze
    model             TEXT NOT NULL,
    status            TEXT NOT NULL,                    -- ok, error, incomplete, cancelled
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    latency_ms        INTEGER NOT NULL,
    day               TEXT NOT NULL,                    -- UTC date, YYYY-MM-DD
    created_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX ai_usage_by_user_day ON ai_usage (user_id, day);
CREATE INDEX ai_usage_by_time ON ai_usage (created_at);
