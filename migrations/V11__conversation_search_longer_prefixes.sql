-- Conversation search (SPEC 9): the last word of a query is a prefix. FTS5 answers a prefix
-- it has no index for by merging the doclists of every term that starts with it, in full,
-- before the first row (and again for the snippets): for a common word typed whole
-- ("what", "tidak", "dengan") that merge costs 20–30 ms per index at 1 M conversations,
-- twice over for a search of one's own conversations (two indexes). Indexed prefixes are one
-- doclist read lazily, as a 2- or 3-letter prefix already is: index 4- to 6-letter prefixes
-- too. FTS5 cannot change `prefix` in place, so both indexes are built again (the triggers
-- of V9 name them and go on working).

DROP TABLE public_fts;
DROP TABLE private_fts;

CREATE VIRTUAL TABLE public_fts USING fts5 (
    title, body, scope,
    content = 'public_text',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4 5 6'
);
CREATE VIRTUAL TABLE private_fts USING fts5 (
    title, body, scope,
    content = 'private_text',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4 5 6'
);
INSERT INTO public_fts (public_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO public_fts (public_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');
INSERT INTO private_fts (private_fts, rank) VALUES ('secure-delete', 1);
INSERT INTO private_fts (private_fts, rank) VALUES ('rank', 'bm25(10.0, 1.0, 0.0)');
INSERT INTO public_fts (rowid, title, body, scope) SELECT seq, title, body, scope FROM public_text;
INSERT INTO private_fts (rowid, title, body, scope)
SELECT seq, title, body, scope FROM private_text;
