-- Conversation search at a million (SPEC 9): one FTS5 index per visibility instead of a
-- visibility token in one index. FTS5's bm25 walks the whole doclist of every phrase of a
-- query to weigh it, so `scope : zvpublic` cost a walk over every public conversation on
-- each public search (≈ 20 ms at 1 M), even for a rare word. Public search now reads
-- `public_fts` with no scope phrase at all; a user's private conversations are found in
-- `private_fts` by their owner token (about a hundred postings). Both carry the owner and
-- category tokens (`zo<uuid hex>`, `zc<hex(slug)>`), and both index 2- and 3-letter prefixes
-- so a short last word is one doclist, not a merge of thousands of terms.

DROP TRIGGER conversations_ai;
DROP TRIGGER conversations_bd;
DROP TRIGGER conversations_bu;
DROP TRIGGER conversations_au;
DROP TABLE conversations_fts;
DROP VIEW conversation_text;

-- What the indexes read: the title, the text of every message, and the scope tokens.
CREATE VIEW conversation_text AS
SELECT seq,
       visibility,
       title,
       (SELECT group_concat(json_extract(m.value, '$.content'), char(10))
          FROM json_each(c.messages) AS m) AS body,
       'zo' || replace(owner_id, '-', '') || ' zc' || lower(hex(category)) AS scope
FROM conversations AS c;
CREATE VIEW public_text AS
SELECT seq, title, body, scope FROM conversation_text WHERE visibility = 'public';
CREATE VIEW private_text AS
SELECT seq, title, body, scope FROM conversation_text WHERE visibility = 'private';

CREATE VIRTUAL TABLE public_fts USING fts5 (
    title, body, scope,
    content = 'public_text',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
CREATE VIRTUAL TABLE private_fts USING fts5 (
    title, body, scope,
    content = 'private_text',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
-- Deleted words are really gone from the index, and the title weighs ten times a message.
INSERT INTO public_fts (public_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO public_fts (public_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');
INSERT INTO private_fts (private_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO private_fts (private_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');
-- The conversations saved before this version ('rebuild' cannot read a view).
INSERT INTO public_fts (rowid, title, body, scope) SELECT seq, title, body, scope FROM public_text;
INSERT INTO private_fts (rowid, title, body, scope)
SELECT seq, title, body, scope FROM private_text;

-- Each trigger writes both indexes through their views: the view of the other visibility
-- holds no row, so exactly one index changes. Updates that touch no indexed or counted
-- column (featuring) leave the indexes alone.
CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN
    INSERT INTO public_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM public_text WHERE seq = new.seq;
    INSERT INTO private_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM private_text WHERE seq = new.seq;
    INSERT INTO conversation_counts (category, public, messages)
    SELECT k, 1, new.message_count FROM (SELECT '' AS k UNION ALL SELECT new.category)
    WHERE new.visibility = 'public'
    ON CONFLICT (category) DO UPDATE SET public = public + 1,
                                         messages = messages + excluded.messages;
END;

CREATE TRIGGER conversations_bd BEFORE DELETE ON conversations BEGIN
    INSERT INTO public_fts (public_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM public_text WHERE seq = old.seq;
    INSERT INTO private_fts (private_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM private_text WHERE seq = old.seq;
    UPDATE conversation_counts SET public = public - 1, messages = messages - old.message_count
    WHERE old.visibility = 'public' AND category IN ('', old.category);
END;

CREATE TRIGGER conversations_bu
BEFORE UPDATE OF owner_id, title, messages, category, visibility, message_count ON conversations
BEGIN
    INSERT INTO public_fts (public_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM public_text WHERE seq = old.seq;
    INSERT INTO private_fts (private_fts, rowid, title, body, scope)
    SELECT 'delete', seq, title, body, scope FROM private_text WHERE seq = old.seq;
    UPDATE conversation_counts SET public = public - 1, messages = messages - old.message_count
    WHERE old.visibility = 'public' AND category IN ('', old.category);
END;

CREATE TRIGGER conversations_au
AFTER UPDATE OF owner_id, title, messages, category, visibility, message_count ON conversations
BEGIN
    INSERT INTO public_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM public_text WHERE seq = new.seq;
    INSERT INTO private_fts (rowid, title, body, scope)
    SELECT seq, title, body, scope FROM private_text WHERE seq = new.seq;
    INSERT INTO conversation_counts (category, public, messages)
    SELECT k, 1, new.message_count FROM (SELECT '' AS k UNION ALL SELECT new.category)
    WHERE new.visibility = 'public'
    ON CONFLICT (category) DO UPDATE SET public = public + 1,
                                         messages = messages + excluded.messages;
END;
