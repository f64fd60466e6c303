-- A review stage is signed off once per request, even when two reviewers submit at the same
-- moment (the check in the transaction alone cannot see an uncommitted concurrent insert).
CREATE UNIQUE INDEX request_events_one_sign_off_per_stage ON request_events (request_id, stage) WHERE kind = 'sign-off';
