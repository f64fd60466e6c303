//! Persistence for Formulary. Records live in SQLite (the embedded default) or PostgreSQL, through
//! one migration set and one code path (sqlx's `Any` driver); blobs live in object storage,
//! addressed by their SHA-256.
//!
//! This is the only crate that knows SQL. Every change of state is written in the same
//! transaction as its row in the hash-chained audit log, so no change goes unrecorded.

mod accounts;
mod admissions;
mod advisories;
mod audit;
mod blob_location;
mod blob_writes;
mod blobs;
mod catalogue;
mod changes;
mod channel_notices;
mod checkpoints;
mod database;
mod device_codes;
mod digests;
mod documents;
mod entries;
mod error;
mod estate;
mod external;
mod feeds;
mod gateway;
mod integrity;
mod inventory;
mod leases;
mod local_copy;
mod notifications;
mod offline;
mod organisations;
mod recall_lifting;
mod recall_metrics;
mod recalls;
mod releases;
mod requests;
mod resets;
mod reviews;
mod sessions;
mod snapshot;
mod time;
mod tokens;
mod tool_manifest;
mod tool_signature;
mod tools;

pub use accounts::{
    canonical_username, FailureTally, NewUser, SignInFailures, User, LOCAL_PROVIDER,
};
pub use advisories::{AdvisoryImport, AdvisorySummary, ImportOutcome};
pub use audit::{AuditRecord, AuditVerification};
pub use blob_location::{BlobLocation, S3Options};
pub use blobs::{BlobRef, BlobStore, BlobStream, FormatCheck, ReadSeek};
pub use changes::{ChangeEvent, ChangeListener, CHANGES_CHANNEL};
pub use checkpoints::{AuditKey, Checkpoint, CheckpointLog, CheckpointReport, RestoreMarker};
pub use database::{redact_url, Database};
pub use device_codes::DevicePoll;
pub use digests::{Algorithm, Digests, MalformedDigest};
pub use documents::{CachedFile, UpstreamDocument, UpstreamDocumentRef};
pub use entries::{EntryFilter, Removal, StoredEntry};
pub use error::StoreError;
pub use estate::EstateItem;
pub use external::{ExternalIdentity, ExternalOutcome, ExternalSignIn, PendingLogin};
pub use feeds::{feed_of, FeedStatus, FeedSuccess};
pub use gateway::{Download, DownloadTally, LedgerLine};
pub use integrity::PolicyIntegrity;
pub use inventory::{Holder, NewReport, ReportOutcome, ENVIRONMENT_KINDS};
pub use leases::Lease;
pub use local_copy::{CopiedToken, LocalCopy, SyncSummary};
pub use notifications::{NewNotification, Notification, OutgoingEmail, MAX_EMAIL_ATTEMPTS};
pub use recall_lifting::Lift;
pub use recall_metrics::{Exposure, PatchTimeline, SurveillanceMetrics};
pub use recalls::{NewRecall, RecallChange, RecallPerson, RecallSummary};
pub use requests::{
    DecisionRecord, EventKind, Grant, RecordedDecision, RequestEvent, RequestFilter, StoredRequest,
    UserRef,
};
pub use resets::IssuedReset;
pub use sessions::{random_secret, ProviderSession, Session, StartedSession};
pub use tokens::{ApiToken, IssuedToken, TokenScope};
pub use tool_manifest::{tool_artifacts, ToolFileInput, ToolProblem, PREFIX_PLACEHOLDER};
pub use tool_signature::{signer_of, verify as verify_signature, ToolSignature};
pub use tools::ToolArtifact;
