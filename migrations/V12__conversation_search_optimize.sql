-- Conversation search (SPEC 9): V11 filled both indexes again with one INSERT … SELECT, so
-- they came out as many small segments, and every query term is looked up in each of them.
-- Merging each index into one b-tree made a common word or a 2-letter prefix about 40 %
-- cheaper at 1 M conversations (`search-sql`: "wh" over both indexes 41.5 -> 24.2 ms,
-- "what" 26.3 -> 15.5 ms); it took 68 s there, and no time on a small database. Inserts
-- after this keep FTS5's usual incremental merging.
INSERT INTO public_fts (public_fts) VALUES ('optimize');
INSERT INTO private_fts (private_fts) VALUES ('optimize');
