-- Per-user install recipes of desktop tools: for a file of kind `installer`, the arguments that
-- install it for the person only, into their profile (`{prefix}` stands for the folder
-- `formulary tools install` chooses), e.g. Miniforge's `["-b", "-p", "{prefix}"]` or Inno Setup's
-- `["/CURRENTUSER", "/VERYSILENT", "/DIR={prefix}"]`. A JSON array of strings; empty means the
-- installer has no per-user recipe and is not installed by `formulary tools install`.
ALTER TABLE tool_artifacts ADD COLUMN install_args TEXT NOT NULL DEFAULT '[]';
