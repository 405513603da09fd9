-- Script versions are strings, as in the original app's schema ("1.0.0", "2", "2025.07"):
-- the table is rebuilt with a TEXT version; existing integer versions become their decimal
-- strings. Newest-version rules live in the code (semantic-version precedence).

CREATE TABLE ai_scripts_v8 (
    name        TEXT NOT NULL,                          -- [a-z0-9_-]{1,100}
    version     TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 20),
    description TEXT NOT NULL DEFAULT '',
    content     TEXT NOT NULL,                          -- JSON object
    is_active   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

INSERT INTO ai_scripts_v8 (name, version, description, content, is_active, created_at, updated_at)
SELECT name, CAST(version AS TEXT), description, content, is_active, created_at, updated_at
FROM ai_scripts ORDER BY created_at, rowid;

DROP TABLE ai_scripts;
ALTER TABLE ai_scripts_v8 RENAME TO ai_scripts;
CREATE UNIQUE INDEX ai_scripts_one_active ON ai_scripts (name) WHERE is_active = 1;
