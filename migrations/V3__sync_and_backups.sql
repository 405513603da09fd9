-- Device sync metadata (SPEC section 4) and encrypted backups (SPEC section 5).
-- Times are Unix seconds (UTC); the API renders them as RFC 3339.

-- One row per (user, device): where that device's local data stands.
CREATE TABLE sync_devices (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id    TEXT NOT NULL,                         -- 1..128 of [A-Za-z0-9._:-]
    device_name  TEXT,
    platform     TEXT,
    sync_version INTEGER NOT NULL CHECK (sync_version >= 0),
    data_hash    TEXT NOT NULL,
    is_active    INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    last_sync_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) STRICT, WITHOUT ROWID;

-- Backups, sealed with XChaCha20-Poly1305 under backup key `key_version` of secrets.toml;
-- the associated data binds the owner and the id, so a row moved elsewhere fails to open.
-- A row is inserted in one transaction with its sealed bytes: never half written.
-- The sealed bytes live in `backup_chunks`, 1 MiB per row: SQLite writes each byte once,
-- and no single value of tens of megabytes is copied around in memory.
CREATE TABLE backups (
    seq         INTEGER PRIMARY KEY,                    -- insertion order (newest = largest)
    id          TEXT NOT NULL UNIQUE,                   -- UUID
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT,
    size        INTEGER NOT NULL,                       -- plaintext bytes
    checksum    TEXT NOT NULL,                          -- SHA-256 hex of the plaintext
    metadata    TEXT,                                   -- the client's JSON, as sent
    key_version INTEGER NOT NULL,
    nonce       BLOB NOT NULL,                          -- 24 bytes
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX backups_by_user ON backups (user_id, seq);
CREATE INDEX backups_by_key ON backups (key_version);

-- The ciphertext (with its 16-byte tag at the end) of a backup, in order.
CREATE TABLE backup_chunks (
    backup_seq INTEGER NOT NULL REFERENCES backups (seq) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (backup_seq, idx)
) STRICT;
