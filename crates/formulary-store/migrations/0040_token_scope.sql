-- What a token may be used for: `api` (the JSON API with its role's rights, and reading the
-- package gateway) or `gateway` (reading the package gateway only, the token `formulary setup`
-- writes into pip, uv, R, conda and npm configuration files).

ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'api';
