-- Review policies per organisation (distinct reviewers, stages that need a named role, clinical
-- safety for clinical data), and review stages claimed by or assigned to one person.

CREATE TABLE review_policies (
    organisation TEXT PRIMARY KEY REFERENCES organisations (code),
    distinct_reviewers BIGINT NOT NULL DEFAULT 0,
    information_governance_role BIGINT NOT NULL DEFAULT 0,
    clinical_safety_role BIGINT NOT NULL DEFAULT 0,
    clinical_safety_for_clinical_data BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

CREATE TABLE review_assignments (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    stage TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    assigned_by TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (request_id, stage)
);
