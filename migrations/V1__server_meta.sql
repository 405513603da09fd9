-- Facts about this server's database as a whole, one row per key.
--
-- `server_epoch` is a random id made when the database is created and made anew by
-- `persona admin db restore`: devices compare it with the one they saw last and upload
-- again when the server was rolled back (SPEC section 4).
CREATE TABLE server_meta (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

INSERT INTO server_meta (key, value) VALUES ('server_epoch', lower(hex(randomblob(16))));
