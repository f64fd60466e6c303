-- Recalls follow their prohibitions: when the prohibition behind a recall is lifted (removed,
-- narrowed, expired, or excepted for an organisation), the people it no longer covers leave the
-- recall with the resolution `lifted` (why, in `explanation`), and the recall keeps when and why
-- it was last lifted. A person who stays on a recalled version may say until when; after that
-- day they count as exposed again.
ALTER TABLE recalls ADD COLUMN lifted_at TEXT;
ALTER TABLE recalls ADD COLUMN lift_reason TEXT;
ALTER TABLE recall_people ADD COLUMN explained_until TEXT;
