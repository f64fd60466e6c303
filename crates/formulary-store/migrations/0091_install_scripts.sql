-- Install-script awareness (npm): whether a view serves versions that run code when installed
-- (`allow` or `deny`, per organisation and ecosystem; overlays only tighten), and, per release,
-- whether the version has a `preinstall`, `install` or `postinstall` script (evidence shown on
-- the component page). Existing rows allow install scripts and are taken as having none until
-- the packument is read again.
ALTER TABLE ecosystem_settings ADD COLUMN install_scripts TEXT NOT NULL DEFAULT 'allow';
ALTER TABLE releases ADD COLUMN install_scripts BIGINT NOT NULL DEFAULT 0;
