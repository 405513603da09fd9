-- Crisis support (SPEC section 8): emergency contacts, crisis events and the outbox of their
-- notifications. Times are Unix seconds (UTC). No message text is stored, except an SOS
-- message kept in its outbox row while crisis.webhook_include_message is on, and cleared
-- once that notification is delivered or given up.

CREATE TABLE crisis_contacts (
    id               TEXT PRIMARY KEY NOT NULL,          -- UUID
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    relationship     TEXT,
    phone            TEXT,                               -- E.164
    email            TEXT,
    notify_on_crisis INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK (phone IS NOT NULL OR email IS NOT NULL)
) STRICT;
CREATE INDEX crisis_contacts_by_user ON crisis_contacts (user_id, created_at);

-- One row per detection at or above crisis.resource_level, per SOS, per automatic
-- notification: who, how serious, where from, when. Never the text.
CREATE TABLE crisis_events (
    id         TEXT PRIMARY KEY NOT NULL,                -- UUID
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    level      TEXT NOT NULL CHECK (level IN ('none', 'low', 'medium', 'high')),
    source     TEXT NOT NULL CHECK (source IN ('chat', 'analyze', 'check', 'alert', 'auto')),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX crisis_events_by_user ON crisis_events (user_id, created_at);
CREATE INDEX crisis_events_by_time ON crisis_events (created_at);

-- The outbox: written in the same transaction as its event, delivered by a background
-- worker with retries (pending → sent | failed), so a notification survives a restart or a
-- kill -9. `cooldown` and `skipped` rows record what was deliberately not sent.
CREATE TABLE crisis_notifications (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES crisis_events (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    contact_id      TEXT,                                -- email: the contact (kept if deleted)
    recipient       TEXT,                                -- email: the address when queued
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'sent', 'failed', 'cooldown', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    next_attempt_at INTEGER,
    last_error      TEXT,                                -- e.g. "the receiver answered 503"
    message         TEXT                                 -- see the note at the top
) STRICT;
CREATE INDEX crisis_notifications_by_event ON crisis_notifications (event_id);
CREATE INDEX crisis_notifications_due ON crisis_notifications (next_attempt_at)
    WHERE status = 'pending';
