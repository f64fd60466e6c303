//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, built from one table of
//! operations. A test checks that every `/api/v1` route in the router is documented.

use axum::Json;
use serde_json::{json, Map, Value};

/// One documented operation.
struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Needs `Authorization: Bearer frm_…`.
    authenticated: bool,
    /// The request body's schema name, if it has one.
    body: Option<&'static str>,
    /// The success status and its schema name.
    answer: (u16, &'static str),
    /// Query parameters.
    query: &'static [Param],
}

/// A query parameter.
struct Param {
    name: &'static str,
    required: bool,
    kind: Kind,
    description: &'static str,
}

/// A query parameter's type.
enum Kind {
    Text,
    Integer,
    Boolean,
    OneOf(&'static [&'static str]),
    /// An organisation code, or empty for none (a filter a web form sends empty).
    CodeOrEmpty,
}

const fn param(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        required: false,
        kind,
        description,
    }
}

const fn required(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        required: true,
        kind,
        description,
    }
}

/// Roles as the API names them.
const ROLES: &[&str] = &[
    "requester",
    "reviewer",
    "approver",
    "organisation-admin",
    "national-curator",
    "auditor",
    "information-governance",
    "clinical-safety-officer",
];

/// Ecosystems as the API names them.
const ECOSYSTEMS: &[&str] = &["pypi", "cran", "npm", "conda", "generic"];

/// Ecosystems, or empty for every one (as the search form sends it).
const ECOSYSTEMS_OR_EMPTY: &[&str] = &["", "pypi", "cran", "npm", "conda", "generic"];

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    authenticated: bool,
    body: Option<&'static str>,
    answer: (u16, &'static str),
) -> Operation {
    Operation {
        method,
        path,
        summary,
        authenticated,
        body,
        answer,
        query: &[],
    }
}

impl Operation {
    /// The same operation with query parameters.
    const fn with_query(self, query: &'static [Param]) -> Operation {
        Operation { query, ..self }
    }
}

const OPERATIONS: &[Operation] = &[
    op("post", "/api/v1/session/token", "Trade a username and password for a personal API token (used by `formulary login`); failed attempts are rate limited", false, Some("TokenRequest"), (201, "IssuedToken")),
    op("post", "/api/v1/device/code", "Start a device sign-in (used by `formulary setup`): a device code to poll with, a short user code and the page where a signed-in person approves it; expires in ten minutes; ten per client address per ten minutes (429 after)", false, Some("DeviceCodeRequest"), (200, "Any")),
    op("post", "/api/v1/device/token", "Poll a device sign-in: 400 with `error` `authorization_pending`, `slow_down` (sooner than every 5 s), `expired_token` or `invalid_grant`; once approved, 200 with a token for package clients in the approver's name, given once", false, Some("DeviceTokenRequest"), (200, "Any")),
    op("get", "/api/v1/me", "Who the token acts as, with their roles", true, None, (200, "Whoami")),
    op("post", "/api/v1/me/password", "Change your own password (the current one is checked and throttled like a sign-in; the new one must meet the password policy); every session of the account ends", true, Some("PasswordChange"), (204, "Any")),
    op("get", "/api/v1/me/tokens", "Your personal API tokens (never their secrets), newest first", true, None, (200, "TokenList")),
    op("get", "/api/v1/me/notifications", "Your newest notifications (questions on your requests, sign-offs, decisions, work waiting for you), newest first", true, None, (200, "Any")),
    op("post", "/api/v1/me/notifications/read", "Mark every notification of yours read", true, None, (204, "Any")),
    op("post", "/api/v1/me/tokens", "Issue yourself a token for package clients (`scope: gateway`, `name`, optional `expires_days` 1–365, default 90): it reads the package gateway and nothing else; the secret is shown once", true, Some("NewToken"), (201, "Any")),
    op("delete", "/api/v1/me/tokens/{token}", "Revoke one of your own personal tokens at once (404 for any other)", true, None, (204, "Any")),
    op("get", "/api/v1/search", "Search components across every ecosystem (`q`, optional `ecosystem`, `organisation`)", false, None, (200, "SearchHits")).with_query(&[
        required("q", Kind::Text, "Words in the component's name"), param("ecosystem", Kind::OneOf(ECOSYSTEMS_OR_EMPTY), "Only this ecosystem (empty: every ecosystem)"), param("organisation", Kind::Text, "Whose view decides the statuses (an organisation code; default the server's default organisation)"),
    ]),
    op("get", "/api/v1/components/{ecosystem}/{name}", "A component: each version's decision for the organisation with reasons, evidence, precedent, mentor and requests", false, None, (200, "ComponentReport")).with_query(&[
        param("organisation", Kind::Text, "Whose view decides (an organisation code; default the server's default organisation)"),
    ]),
    op("get", "/api/v1/components/{ecosystem}/{scope}/{name}", "A scoped npm component (`/api/v1/components/npm/@types/node`), as above", false, None, (200, "ComponentReport")).with_query(&[
        param("organisation", Kind::Text, "Whose view decides (an organisation code)"),
    ]),
    op("get", "/api/v1/evidence", "What the upstream says about a component, gathered on demand (versions and dates, yanks, licence, project links, maintainers, dependencies, closure size) with the advisories Formulary holds; answers within the gateway's patience, saying whether it is fresh, the cached copy with its age, still being fetched, or unavailable", false, None, (200, "Evidence")).with_query(&[
        required("purl", Kind::Text, "The component's package URL, without a version (`pkg:pypi/requests`)"), param("organisation", Kind::Text, "Whose view the closure is counted in (an organisation code; default the server's default organisation)"),
    ]),
    op("get", "/api/v1/requests", "Your requests (`scope=mine`) or the open requests you may review or decide (`scope=queue`, each with `review`: the stages still needed, who has each, and `ready_to_decide`)", true, None, (200, "RequestList")).with_query(&[
        param("scope", Kind::OneOf(&["mine", "queue"]), "`mine` (default): your requests; `queue`: the open requests you may review or decide"),
    ]),
    op("post", "/api/v1/requests", "Request a tool; granted at once when an entry in force already covers it", true, Some("RequestForm"), (201, "Request")),
    op("get", "/api/v1/requests/{id}", "A request with its timeline", true, None, (200, "Request")),
    op("post", "/api/v1/requests/{id}/comments", "Comment on a request", true, Some("Comment"), (200, "Request")),
    op("post", "/api/v1/requests/{id}/sign-offs", "Sign off a review stage (reviewers; never the requester)", true, Some("SignOff"), (200, "Request")),
    op("post", "/api/v1/requests/{id}/decision", "Decide a request (approvers; never the requester nor the sole reviewer); approvals create an entry", true, Some("Decision"), (200, "Request")),
    op("post", "/api/v1/requests/{id}/withdraw", "Withdraw your own open request", true, Some("Withdrawal"), (200, "Request")),
    op("post", "/api/v1/requests/{id}/assignments", "Claim a review stage (`stage`) or assign it to someone eligible (`stage`, `assignee` username; approvers and admins); only the assignee then signs it off", true, Some("Assignment"), (200, "Request")),
    op("get", "/api/v1/decisions", "The public decision log, newest first (filters `q`, `ecosystem`, `organisation`, `decision`)", false, None, (200, "DecisionLog")).with_query(&[
        param("q", Kind::Text, "Words in the component's name"), param("ecosystem", Kind::Text, "Only this ecosystem"), param("organisation", Kind::CodeOrEmpty, "Only this organisation's decisions (empty: every organisation)"), param("decision", Kind::Text, "Only this status, or `rejected`"),
    ]),
    op("get", "/api/v1/metrics", "Time to decision, reuse rate, requests by state, estimated cost avoided, blocked downloads", false, None, (200, "Metrics")),
    op("get", "/api/v1/upstreams", "Each gateway's upstream servers (healthy, degraded or down since, last success, last error) and the index documents held back because they look wrong; from memory, so it answers while the database is down", false, None, (200, "Any")),
    op("post", "/api/v1/upstreams/held-back/accept", "Believe an upstream index document held back because it looked wrong (national curators): the next request for it asks the upstream again and the copy it sends replaces the cached one; audited. Applies to the replica that answers", true, Some("HeldAcceptance"), (200, "Any")),
    op("get", "/api/v1/audit", "Audit log rows after `after`, oldest first (auditors and national curators)", true, None, (200, "AuditRows")).with_query(&[
        param("after", Kind::Integer, "Rows after this sequence number (default 0: from the start)"), param("limit", Kind::Integer, "At most this many rows"),
    ]),
    op("get", "/api/v1/organisations", "Organisations", false, None, (200, "Any")),
    op("post", "/api/v1/organisations", "Add an organisation (national curators)", true, Some("NewOrganisation"), (201, "Any")),
    op("get", "/api/v1/organisations/{code}/settings", "An organisation's settings per ecosystem", false, None, (200, "Any")),
    op("put", "/api/v1/organisations/{code}/settings/{ecosystem}", "Change an organisation's settings for an ecosystem", true, Some("EcosystemSettings"), (200, "Any")),
    op("get", "/api/v1/organisations/{code}/review-policy", "An organisation's review policy (distinct reviewers, stages that need the information governance or clinical safety officer role, clinical safety for clinical data)", true, None, (200, "Any")),
    op("put", "/api/v1/organisations/{code}/review-policy", "Replace an organisation's review policy (its administrators and national curators); audited", true, Some("ReviewPolicy"), (200, "Any")),
    op("get", "/api/v1/organisations/{code}/channel-notices", "The notices the organisation's conda users read in each channel's notices.json (CEP-6), withdrawn and expired ones too, newest first (its organisation admins and national curators; NATIONAL's apply to every organisation)", true, None, (200, "ChannelNoticeList")),
    op("post", "/api/v1/organisations/{code}/channel-notices", "Write a channel notice for the organisation's views (NATIONAL: every organisation's), shown in notices.json until withdrawn or past `expires`; audited", true, Some("NewChannelNotice"), (201, "ChannelNotice")),
    op("delete", "/api/v1/organisations/{code}/channel-notices/{id}", "Withdraw a channel notice at once (it stays listed, withdrawn; 409 when it already was); audited", true, None, (200, "ChannelNotice")),
    op("get", "/api/v1/organisations/{code}/people", "The people with a role in an organisation: roles there and elsewhere, how they sign in, whether disabled, last sign-in (its organisation admins and national curators)", true, None, (200, "PeopleList")),
    op("post", "/api/v1/organisations/{code}/people", "Add a local account with its first role there; the answer holds a link (from `public_url`, shown once, 7 days) where the person chooses their password; audited", true, Some("NewPerson"), (201, "PasswordLink")),
    op("get", "/api/v1/organisations/{code}/people/{user}", "One person with a role in the organisation", true, None, (200, "Person")),
    op("post", "/api/v1/organisations/{code}/people/{user}/roles", "Grant the person a role there (`national-curator` only in NATIONAL); audited", true, Some("RoleGrant"), (200, "Person")),
    op("delete", "/api/v1/organisations/{code}/people/{user}/roles/{role}", "Revoke a role there; removing your own organisation-admin or national-curator role is refused, and a person's last role is kept unless a national curator revokes it; audited", true, None, (200, "Person")),
    op("post", "/api/v1/organisations/{code}/people/{user}/disable", "Disable the account: its sessions end and its tokens are refused (needs administration of every organisation it has a role in; never your own account); audited", true, None, (200, "Person")),
    op("post", "/api/v1/organisations/{code}/people/{user}/enable", "Enable a disabled account again; audited", true, None, (200, "Person")),
    op("post", "/api/v1/organisations/{code}/people/{user}/password-reset", "A one-time link (shown once, 7 days) where a local account's owner chooses a new password; the current one works until then; audited", true, None, (201, "PasswordLink")),
    op("get", "/api/v1/entries", "Entries (decisions) of every formulary", false, None, (200, "Any")).with_query(&[
        param("organisation", Kind::Text, "Only this organisation's entries"), param("component", Kind::Text, "Only entries about this component (a purl without version)"), param("include_removed", Kind::Boolean, "Removed entries too (default false)"),
    ]),
    op("post", "/api/v1/entries", "Add an entry (national curators; organisation admins for their overlay). Who decided is the token's person or service account; a `decided_by` field is refused", true, Some("NewEntry"), (201, "Any")),
    op("get", "/api/v1/entries/{id}", "One entry with its history", false, None, (200, "Any")),
    op("delete", "/api/v1/entries/{id}", "Remove an entry (kept in history)", true, Some("Removal"), (200, "Any")),
    op("get", "/api/v1/policy/check", "The decision on `purl` for `organisation`, with every reason", false, None, (200, "Any")).with_query(&[
        required("purl", Kind::Text, "The component version, e.g. `pkg:pypi/requests@2.19.1`"), param("organisation", Kind::Text, "Whose view decides (default NATIONAL, as `formulary policy check`)"),
    ]),
    op("get", "/api/v1/advisories", "Advisories in force", false, None, (200, "Any")).with_query(&[
        required("component", Kind::Text, "The component, e.g. `pkg:pypi/requests`"),
    ]),
    op("get", "/api/v1/advisories/feeds", "Freshness of each advisory feed the server syncs: last successful sync, records changed, errors, and whether the feed is stale", false, None, (200, "Any")),
    op("put", "/api/v1/inventory/{org}/{environment}", "Report what an environment contains (CycloneDX 1.6 or SPDX 2.3 JSON, or a list of purls), replacing its previous report", true, Some("InventoryReport"), (200, "Any")).with_query(&[
        param("kind", Kind::Text, "What the environment is: `project` (default), `machine`, `pipeline`…"),
    ]),
    op("get", "/api/v1/organisations/{code}/sbom", "The organisation's estate (downloads through its view and its reported environments) as a CycloneDX 1.6 JSON SBOM", true, None, (200, "CycloneDxSbom")),
    op("get", "/api/v1/who-has", "Who has a component version (`purl`), from the download ledger and reported environments", true, None, (200, "Any")).with_query(&[
        required("purl", Kind::Text, "The component, with or without a version, e.g. `pkg:pypi/requests@2.19.1`"),
    ]),
    op("get", "/api/v1/recalls", "Recalls with their progress: told, resolved, still exposed", true, None, (200, "Any")),
    op("get", "/api/v1/recalls/{id}", "A recall and everyone on it (`format=csv` exports the people)", true, None, (200, "RecallOrCsv")).with_query(&[
        param("format", Kind::OneOf(&["json", "csv"]), "`csv` exports the people on the recall"),
    ]),
    op("get", "/api/v1/me/recalls", "Your open recalls: what you have, why it is recalled, what to move to", true, None, (200, "Any")),
    op("post", "/api/v1/me/recalls/{id}/explain", "Say why you stay on a recalled version, and optionally until when ({\"explanation\": \"…\", \"until\": \"YYYY-MM-DD\"})", true, Some("Explanation"), (200, "Any")),
    op("get", "/api/v1/metrics/surveillance", "Patch timeline per recall, share of recalls closed within 14 days, exposure by severity and age", true, None, (200, "Any")),
    op("get", "/api/v1/openapi.json", "This document", false, None, (200, "Any")),
];

fn schemas() -> Value {
    let text = json!({ "type": "string" });
    let object = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required });
    // A body whose unknown fields the server refuses.
    let closed = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    // Text the server refuses when empty or blank.
    let said = json!({ "type": "string", "minLength": 1, "pattern": "\\S" });
    let code = organisation_code();
    let mut all = all_schemas(&text, &object, &closed, &said, &code);
    // Device sign-in's bodies (kept apart: one `json!` of every schema reaches the macro's
    // recursion limit).
    all["DeviceCodeRequest"] = object(
        json!({ "client_name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "description": "What is signing in, shown on the approval page, e.g. `formulary setup on LAPTOP-42`" } }),
        &["client_name"],
    );
    all["DeviceTokenRequest"] = object(
        json!({ "device_code": { "type": "string", "description": "The device code from /api/v1/device/code" } }),
        &["device_code"],
    );
    if let Value::Object(map) = &mut all {
        map.extend(people_schemas());
        map.extend(channel_notice_schemas());
    }
    all
}

fn all_schemas(
    text: &Value,
    object: &dyn Fn(Value, &[&str]) -> Value,
    closed: &dyn Fn(Value, &[&str]) -> Value,
    said: &Value,
    code: &Value,
) -> Value {
    json!({
        "Any": {},
        "Problem": object(json!({ "type": text, "title": text, "status": { "type": "integer" }, "detail": text }), &["title", "status", "detail"]),
        "TokenRequest": object(json!({ "username": text, "password": text, "name": text }), &["username", "password"]),
        "IssuedToken": object(json!({ "token": text, "expires_at": text, "user": { "$ref": "#/components/schemas/Whoami" } }), &["token", "user"]),
        "Whoami": object(json!({ "id": text, "name": text, "username": { "type": ["string", "null"], "description": "null for a service account" }, "memberships": { "type": "array", "items": object(json!({ "organisation": text, "role": { "enum": ROLES } }), &["organisation", "role"]) } }), &["id", "name", "memberships"]),
        "PasswordChange": object(json!({ "current_password": text, "new_password": { "type": "string", "minLength": 12, "maxLength": 256 } }), &["current_password", "new_password"]),
        "TokenList": { "type": "array", "items": object(json!({ "id": text, "name": text, "created_at": text, "expires_at": { "type": ["string", "null"] }, "revoked_at": { "type": ["string", "null"] } }), &["id", "name", "created_at"]) },
        "Evidence": object(json!({ "purl": text, "organisation": text, "state": { "enum": ["fresh", "stale", "pending", "unavailable", "not-found", "not-offered", "sign-in-required"] }, "message": text, "age_seconds": { "type": ["integer", "null"] }, "evidence": { "type": ["object", "null"] }, "closure": { "type": ["object", "null"] }, "advisories": { "type": "array" } }), &["purl", "organisation", "state", "message", "advisories"]),
        "SearchHits": { "type": "array", "items": object(json!({ "component": text, "statuses": { "type": "array", "items": text }, "open_requests": { "type": "integer" } }), &["component"]) },
        "ComponentReport": object(json!({ "component": text, "organisation": text, "versions": { "type": "array" }, "precedents": { "type": "array" }, "advisories": { "type": "array" }, "mentor": { "type": ["string", "null"] }, "requests": { "type": "array" } }), &["component", "versions"]),
        "RequestForm": object(json!({
            "organisation": code, "ecosystem": { "enum": ECOSYSTEMS }, "name": text, "version_range": text,
            "problem": { "type": "string", "maxLength": 4000 }, "data_class": { "enum": ["aggregate", "personal", "clinical"] },
            "environment": { "type": "string", "maxLength": 4000 }, "alternatives": { "type": "string", "maxLength": 4000 },
            "users": { "type": "string", "description": "a whole number, 1 or more" }, "credentials": { "type": "string", "maxLength": 4000 }
        }), &["ecosystem", "name", "problem", "data_class", "environment", "users"]),
        "Request": object(json!({
            "id": { "type": "integer" }, "component": text, "range": text, "organisation": text, "problem": text, "data_class": text,
            "state": { "enum": ["submitted", "in-review", "approved", "approved-with-constraints", "pilot", "rejected", "withdrawn"] },
            "requester": object(json!({ "id": text, "name": text }), &["id", "name"]), "created_at": text, "decided_at": { "type": ["string", "null"] },
            "decision": { "type": ["object", "null"] }, "url": text, "events": { "type": "array" },
            "review": object(json!({ "outstanding": { "type": "array", "items": object(json!({ "stage": text, "assigned_to": { "type": ["string", "null"] } }), &["stage"]) }, "ready_to_decide": { "type": "boolean" } }), &["outstanding", "ready_to_decide"])
        }), &["id", "component", "state"]),
        "RequestList": { "type": "array", "items": { "$ref": "#/components/schemas/Request" } },
        "Comment": object(json!({ "body": said }), &["body"]),
        "SignOff": object(json!({ "stage": { "enum": ["basic", "technical", "security", "information-governance", "clinical-safety"] }, "verdict": { "enum": ["passed", "concerns"] }, "note": said }), &["stage", "verdict", "note"]),
        "Decision": object(json!({ "outcome": { "enum": ["approved", "approved-with-constraints", "pilot", "rejected"] }, "reason": said, "scope": { "enum": ["organisation", "national"] }, "constraints": text, "expires": text, "mentor": text, "reused_from": text }), &["outcome", "reason"]),
        "Withdrawal": object(json!({ "note": text }), &[]),
        "DecisionLog": { "type": "array", "items": object(json!({ "decided_at": text, "component": text, "range": text, "organisation": text, "decision": text, "reason": text, "decided_by": text, "request": { "type": ["integer", "null"] }, "entry": { "type": ["string", "null"] } }), &["decided_at", "component", "decision", "reason"]) },
        "Metrics": object(json!({ "time_to_decision": { "type": "object" }, "reuse_rate": { "type": ["number", "null"] }, "requests_by_state": { "type": "object" }, "estimated_cost_avoided_pounds": { "type": "array" }, "blocked_downloads": { "type": "integer" } }), &["time_to_decision", "requests_by_state"]),
        "NewToken": object(json!({ "name": { "type": "string", "minLength": 1, "pattern": "\\S", "description": "What it is for, e.g. `pip and uv on LAPTOP-42`" }, "scope": { "enum": ["gateway"] }, "expires_days": { "type": ["integer", "null"], "minimum": 1, "maximum": 365, "description": "Days until it stops working; absent or null for 90" } }), &["name", "scope"]),
        "NewOrganisation": closed(json!({ "code": code, "name": said }), &["code", "name"]),
        "EcosystemSettings": object(json!({ "stance": { "enum": ["curated", "open"] }, "severity_threshold": { "enum": ["low", "medium", "high", "critical"] }, "allowed_licences": { "type": "array", "items": text, "description": "SPDX identifiers; empty allows every licence" }, "cooldown_days": { "type": "integer", "minimum": 0, "maximum": 366 }, "install_scripts": { "enum": ["allow", "deny"], "description": "npm: whether versions with preinstall/install/postinstall scripts are served (default allow)" } }), &["stance", "severity_threshold", "allowed_licences", "cooldown_days"]),
        "ReviewPolicy": object(json!({ "distinct_reviewers": { "type": "boolean" }, "information_governance_role": { "type": "boolean" }, "clinical_safety_role": { "type": "boolean" }, "clinical_safety_for_clinical_data": { "type": "boolean" } }), &[]),
        "NewEntry": closed(json!({ "organisation": code, "component": { "type": "string", "description": "A purl without version, e.g. `pkg:pypi/requests`" }, "range": { "type": ["string", "null"], "description": "Versions covered in the ecosystem's syntax; absent for every version" }, "status": { "enum": ["approved", "approved-with-constraints", "pilot", "under-review", "divest", "prohibited"] }, "constraints": { "type": ["string", "null"] }, "review_date": { "type": ["string", "null"], "format": "date" }, "expires": { "type": ["string", "null"], "format": "date" }, "waives": { "type": "array", "items": text, "description": "Advisory ids this entry waives (never a malicious-package report)" }, "reason": said, "mentor": { "type": ["string", "null"] } }), &["component", "status", "reason"]),
        "Removal": closed(json!({ "reason": said }), &["reason"]),
        "InventoryReport": { "description": "A CycloneDX 1.6 or SPDX 2.3 JSON SBOM, or `{\"components\": [purl, …]}`", "type": "object" },
        "Explanation": object(json!({ "explanation": { "type": "string", "minLength": 10, "maxLength": 2000 }, "until": { "type": "string", "format": "date", "description": "The day you stay until (after today, within a year); after it you count as exposed again" } }), &["explanation"]),
        "Assignment": object(json!({ "stage": { "enum": ["basic", "technical", "security", "information-governance", "clinical-safety"] }, "assignee": { "type": "string", "description": "A username; empty to claim the stage yourself" } }), &["stage", "assignee"]),
        "HeldAcceptance": closed(json!({ "ecosystem": { "enum": ["pypi", "npm", "cran"] }, "serves": { "type": "string", "description": "`default` (the default), or the organisation whose own upstreams sent it" }, "document": { "type": "string", "description": "As `/api/v1/upstreams` names it" } }), &["ecosystem", "document"]),
        "AuditRows": { "type": "array", "items": object(json!({ "seq": { "type": "integer" }, "at": text, "actor": text, "action": text, "subject": text, "details": {}, "previous_hash": text, "hash": text }), &["seq", "hash"]) },
    })
}

/// The schemas of the people API (`/api/v1/organisations/{code}/people…`).
fn people_schemas() -> Map<String, Value> {
    let text = json!({ "type": "string" });
    let object = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required });
    let closed = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    let said = json!({ "type": "string", "minLength": 1, "pattern": "\\S" });
    let schemas = json!({
        "Person": object(json!({ "id": text, "username": text, "display_name": text, "email": { "type": ["string", "null"] }, "sign_in": { "type": "string", "description": "`local` (a Formulary password) or the identity provider's issuer" }, "disabled": { "type": "boolean" }, "disabled_at": { "type": ["string", "null"] }, "created_at": text, "last_sign_in": { "type": ["string", "null"], "description": "When they last signed in on the web; null if never" }, "roles": { "type": "array", "items": { "enum": ROLES }, "description": "Their roles in this organisation" }, "memberships": { "type": "array", "items": object(json!({ "organisation": text, "role": { "enum": ROLES } }), &["organisation", "role"]) } }), &["id", "username", "display_name", "sign_in", "disabled", "created_at", "roles", "memberships"]),
        "PeopleList": { "type": "array", "items": { "$ref": "#/components/schemas/Person" } },
        "NewPerson": closed(json!({ "username": { "type": "string", "description": "2 to 64 of a-z, 0-9, `.`, `_`, `-`, `@`" }, "display_name": said, "email": { "type": ["string", "null"], "description": "Where notifications go" }, "role": { "enum": ROLES, "description": "Their first role in the organisation" } }), &["username", "display_name", "role"]),
        "RoleGrant": closed(json!({ "role": { "enum": ROLES } }), &["role"]),
        "PasswordLink": object(json!({ "person": { "$ref": "#/components/schemas/Person" }, "password_link": text, "expires_at": text }), &["password_link", "expires_at"]),
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The schemas of the channel notices API (`/api/v1/organisations/{code}/channel-notices…`).
fn channel_notice_schemas() -> Map<String, Value> {
    let text = json!({ "type": "string" });
    let object = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required });
    let closed = |properties: Value, required: &[&str]| json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    let schemas = json!({
        "ChannelNotice": object(json!({ "id": text, "organisation": text, "channel": { "type": ["string", "null"], "description": "null: every channel" }, "level": { "enum": ["info", "warning", "critical"] }, "message": text, "expires": { "type": ["string", "null"], "format": "date" }, "created_at": text, "created_by": text, "withdrawn_at": { "type": ["string", "null"] }, "withdrawn_by": { "type": ["string", "null"] }, "standing": { "enum": ["shown", "withdrawn", "expired"] } }), &["id", "organisation", "level", "message", "created_at", "created_by", "standing"]),
        "ChannelNoticeList": { "type": "array", "items": { "$ref": "#/components/schemas/ChannelNotice" } },
        "NewChannelNotice": closed(json!({ "message": { "type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S", "description": "Plain text conda prints as it is (no control characters but line breaks)" }, "level": { "enum": ["info", "warning", "critical"] }, "channel": { "type": ["string", "null"], "description": "A conda channel this server serves; absent or null for every channel" }, "expires": { "type": ["string", "null"], "format": "date", "description": "The last day (UTC) it is shown, today or later; absent or null until withdrawn" } }), &["message", "level"])
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An organisation code, as the server checks it.
fn organisation_code() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9]{2,12}$", "description": "An ODS-style code such as `RJ1`, or `NATIONAL`" })
}

fn parameters(operation: &Operation) -> Vec<Value> {
    let in_path = operation
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            // Request ids are numbers; entry and recall ids are text.
            let numeric = name == "id" && operation.path.starts_with("/api/v1/requests/");
            let schema = if numeric {
                json!({ "type": "integer", "format": "int64" })
            } else if matches!(name, "code" | "org") {
                organisation_code()
            } else if name == "ecosystem" {
                json!({ "enum": ECOSYSTEMS })
            } else if name == "role" {
                json!({ "enum": ROLES })
            } else {
                json!({ "type": "string" })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        });
    let in_query = operation.query.iter().map(|param| {
        let schema = match param.kind {
            Kind::Text if param.name == "organisation" => organisation_code(),
            Kind::Text => json!({ "type": "string" }),
            Kind::Integer => json!({ "type": "integer", "format": "int64" }),
            Kind::Boolean => json!({ "type": "boolean" }),
            Kind::OneOf(values) => json!({ "enum": values }),
            Kind::CodeOrEmpty => {
                json!({ "type": "string", "pattern": "^([A-Za-z0-9]{2,12})?$" })
            }
        };
        json!({ "name": param.name, "in": "query", "required": param.required, "description": param.description, "schema": schema })
    });
    in_path.chain(in_query).collect()
}

/// The success answer: no content for 204, else JSON of the named schema.
fn success((status, schema): (u16, &str)) -> Value {
    if status == 204 {
        json!({ "description": "Done; no content" })
    } else if schema == "CycloneDxSbom" {
        json!({ "description": "A CycloneDX 1.6 JSON SBOM", "content": { "application/vnd.cyclonedx+json; version=1.6": { "schema": { "type": "object" } } } })
    } else if schema == "RecallOrCsv" {
        json!({ "description": "The recall (JSON), or its people as CSV with `format=csv`", "content": { "application/json": { "schema": { "type": "object" } }, "text/csv": { "schema": { "type": "string" } } } })
    } else {
        json!({ "description": "Success", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
    }
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters(operation),
            "responses": {
                operation.answer.0.to_string(): success(operation.answer),
                "default": { "description": "What went wrong, why, and what to do next", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
            }
        });
        if operation.authenticated {
            entry["security"] = json!([{ "token": [] }]);
        }
        if let Some(body) = operation.body {
            entry["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
        }
        let item = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Formulary API", "version": env!("CARGO_PKG_VERSION"), "description": "The software formulary: catalogue, requests and reviews, decision log, metrics and audit. State-changing calls need `Authorization: Bearer frm_…` (from `formulary login`, or a service token from `formulary token create`)." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer", "description": "A Formulary API token (frm_…)" } }
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_api_route_in_the_router_is_documented() {
        let document = super::build();
        let router = include_str!("../router.rs");
        let mut routes = 0;
        for literal in router
            .split('"')
            .filter(|part| part.starts_with("/api/v1/"))
        {
            routes += 1;
            assert!(
                document["paths"].get(literal).is_some(),
                "{literal} is not in the OpenAPI document"
            );
        }
        assert!(routes >= 20, "found only {routes} routes");
    }
}
