-- Usage that streams cannot bypass (SPEC section 7): when a provider reports no usage, the
-- tokens are estimated from the text; this column says how many of a row's tokens were.
ALTER TABLE ai_usage ADD COLUMN estimated_tokens INTEGER NOT NULL DEFAULT 0;
