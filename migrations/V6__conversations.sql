-- Conversations ("AI Chat Chronicles", SPEC section 9): saved AI conversations, private or
-- public, with full-text search. Times are Unix seconds (UTC). Conversation text is stored
-- in plain text (search needs it), unlike backups.

CREATE TABLE conversations (
    seq           INTEGER PRIMARY KEY,                 -- the FTS5 rowid
    id            TEXT NOT NULL UNIQUE,                -- UUID
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    messages      TEXT NOT NULL,                       -- JSON [{role, content}]
    excerpt       TEXT NOT NULL,
    category      TEXT NOT NULL,                       -- a slug of categories.toml
    tags          TEXT NOT NULL DEFAULT '[]',          -- JSON array of slugs
    visibility    TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
    is_featured   INTEGER NOT NULL DEFAULT 0 CHECK (is_featured = 0 OR visibility = 'public'),
    message_count INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
-- Every list order and filter: newest first by (updated_at, seq).
CREATE INDEX conversations_mine ON conversations (owner_id, updated_at, seq);
CREATE INDEX conversations_mine_category ON conversations (owner_id, category, updated_at, seq);
CREATE INDEX conversations_public ON conversations (visibility, updated_at, seq);
CREATE INDEX conversations_public_category ON conversations (visibility, category, updated_at, seq);
CREATE INDEX conversations_featured ON conversations (updated_at, seq)
    WHERE is_featured = 1;

-- Tags, one row each, carrying what their lists filter and sort on.
CREATE TABLE conversation_tags (
    tag        TEXT NOT NULL,
    seq        INTEGER NOT NULL REFERENCES conversations (seq) ON DELETE CASCADE,
    owner_id   TEXT NOT NULL,
    visibility TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tag, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX conversation_tags_public ON conversation_tags (tag, visibility, updated_at, seq);
CREATE INDEX conversation_tags_mine ON conversation_tags (tag, owner_id, updated_at, seq);
CREATE INDEX conversation_tags_by_seq ON conversation_tags (seq);

-- Public totals, kept by the triggers below so /stats and /categories count nothing.
CREATE TABLE conversation_counts (
    category TEXT PRIMARY KEY NOT NULL,                -- '' holds the totals of all categories
    public   INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0                -- public messages
) STRICT;

-- What the search index reads: the title, the text of every message, and scope tokens
-- (visibility, owner, category) so that filters stay inside FTS5.
CREATE VIEW conversation_text AS
SELECT seq,
       title,
       (SELECT group_concat(json_extract(m.value, '$.content'), char(10))
          FROM json_each(c.messages) AS m) AS body,
       'zv' || visibility || ' zo' || replace(owner_id, '-', '') || ' zc' || lower(hex(category))
           AS scope
FROM conversations AS c;

CREATE VIRTUAL TABLE conversations_fts USING fts5 (
    title, body, scope,
    content = 'conversation_text',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
-- Deleted words are really gone from the index, and the title weighs ten times a message.
INSERT INTO conversations_fts (conversations_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO conversations_fts (conversations_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');

CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM conversation_text WHERE seq = new.seq;
    INSERT INTO conversation_counts (category, public, messages)
    SELECT k, 1, new.message_count FROM (SELECT '' AS k UNION ALL SELECT new.category)
    WHERE new.visibility = 'public'
    ON CONFLICT (category) DO UPDATE SET public = public + 1,
                                         messages = messages + excluded.messages;
END;

CREATE TRIGGER conversations_bd BEFORE DELETE ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM conversation_text WHERE seq = old.seq;
    UPDATE conversation_counts SET public = public - 1, messages = messages - old.message_count
    WHERE old.visibility = 'public' AND category IN ('', old.category);
END;

CREATE TRIGGER conversations_bu BEFORE UPDATE ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM conversation_text WHERE seq = old.seq;
    UPDATE conversation_counts SET public = public - 1, messages = messages - old.message_count
    WHERE old.visibility = 'public' AND category IN ('', old.category);
END;

CREATE TRIGGER conversations_au AFTER UPDATE ON conversations BEGIN
    INSERT INTO conversations_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM conversation_text WHERE seq = new.seq;
    INSERT INTO conversation_counts (category, public, messages)
    SELECT k, 1, new.message_count FROM (SELECT '' AS k UNION ALL SELECT new.category)
    WHERE new.visibility = 'public'
    ON CONFLICT (category) DO UPDATE SET public = public + 1,
                                         messages = messages + excluded.messages;
END;
