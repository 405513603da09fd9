-- Accounts, sessions and the tokens that belong to them (SPEC section 3).
-- Times are Unix seconds (UTC); the API renders them as RFC 3339.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,           -- UUID
    email          TEXT NOT NULL UNIQUE,                -- trimmed and lower-cased
    password_hash  TEXT NOT NULL,                       -- argon2id PHC string
    display_name   TEXT,
    role           TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified INTEGER NOT NULL DEFAULT 0,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_sync_at   INTEGER,                             -- kept by the sync feature
    device_count   INTEGER NOT NULL DEFAULT 0           -- kept by the sync feature
) STRICT;

-- One row per login (per device). Ending a session ends its access tokens at once: the auth
-- check looks the session up (through a short cache) on every request.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,             -- UUID, the `sid` claim
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name  TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,                      -- login or last refresh
    expires_at   INTEGER NOT NULL,                      -- refresh_ttl after the last refresh
    revoked_at   INTEGER,
    revoke_reason TEXT                                  -- logout, revoked, password, reuse, disabled
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- Every refresh token ever issued for a live session, stored only as its SHA-256. A token is
-- used once (`replaced_at` set); presenting a used one again is reuse and ends the session.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    replaced_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Single-use tokens mailed or printed for password resets and email verification.
CREATE TABLE user_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset_password', 'verify_email')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX user_tokens_by_user ON user_tokens (user_id, purpose);
