//! Keyed checkpoints of the audit chain's head, kept outside the database.
//!
//! The audit chain links each row to the one before by a hash, so an edit breaks every later
//! link — unless whoever edits recomputes them. A checkpoint records the chain's head (its last
//! `seq` and hash) with an HMAC-SHA256 under a key that is *not* in the database. Someone with
//! write access to the database alone can therefore neither rewrite nor truncate the chain
//! behind a checkpoint unnoticed, nor forge a checkpoint. Checkpoints are appended, one JSON
//! line each, to a file the server and the CLI write whenever the head has moved (and are also
//! logged, so a log shipped elsewhere keeps a copy).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::StoreError;

/// The secret that signs checkpoints: 32 random bytes, hex, in a file of its own (0600).
#[derive(Clone)]
pub struct AuditKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

/// One checkpoint of the audit chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The head row's position.
    pub seq: i64,
    /// The head row's hash.
    pub head: String,
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
    /// HMAC-SHA256 over the three fields above, hex.
    pub mac: String,
}

fn io_error(path: &Path, what: &str, error: std::io::Error) -> StoreError {
    StoreError::corrupt(
        "audit checkpoint",
        format!("{what} {}: {error}", path.display()),
    )
}

impl AuditKey {
    /// Reads the key at `path`, creating it (readable by its owner only) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<AuditKey, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let secret = hex::decode(text.trim()).map_err(|error| {
                    StoreError::corrupt(
                        "audit key",
                        format!("{} is not a hex key: {error}", path.display()),
                    )
                })?;
                if secret.len() < 32 {
                    return Err(StoreError::corrupt(
                        "audit key",
                        format!("{} holds fewer than 32 bytes", path.display()),
                    ));
                }
                Ok(AuditKey { secret })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| io_error(parent, "cannot create", error))?;
                }
                let secret = hex::decode(crate::sessions::random_secret())
                    .map_err(|error| StoreError::corrupt("audit key", error.to_string()))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(path)
                    .map_err(|error| io_error(path, "cannot create", error))?;
                file.write_all(hex::encode(&secret).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|error| io_error(path, "cannot write", error))?;
                tracing::info!(path = %path.display(), "created the audit checkpoint key; keep it out of database backups' reach");
                Ok(AuditKey { secret })
            }
            Err(error) => Err(io_error(path, "cannot read", error)),
        }
    }

    fn mac(&self, seq: i64, head: &str, at: &DateTime<Utc>) -> String {
        // `new_from_slice` accepts any key length for HMAC.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(
            format!(
                "formulary-audit-checkpoint\n{seq}\n{head}\n{}",
                at.to_rfc3339()
            )
            .as_bytes(),
        );
        hex::encode(mac.finalize().into_bytes())
    }

    /// A checkpoint of `seq` and `head`, taken now.
    pub fn checkpoint(&self, seq: i64, head: &str) -> Checkpoint {
        let at = crate::time::now();
        Checkpoint {
            seq,
            head: head.to_owned(),
            mac: self.mac(seq, head, &at),
            at,
        }
    }

    /// An HMAC-SHA256 (hex) of `bytes` for `purpose` (a fixed word naming what is sealed, so
    /// that a seal made for one kind of file never passes for another), under this key.
    pub fn seal(&self, purpose: &str, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// True when `seal` is this key's seal of `bytes` for `purpose`.
    pub fn is_sealed(&self, purpose: &str, bytes: &[u8], seal: &str) -> bool {
        subtle_compare::equal(self.seal(purpose, bytes).as_bytes(), seal.as_bytes())
    }

    /// True when the checkpoint was made with this key and not changed since.
    pub fn is_genuine(&self, checkpoint: &Checkpoint) -> bool {
        use subtle_compare::equal;
        equal(
            self.mac(checkpoint.seq, &checkpoint.head, &checkpoint.at)
                .as_bytes(),
            checkpoint.mac.as_bytes(),
        )
    }
}

mod subtle_compare {
    /// Compares two byte strings in time that depends only on their length.
    pub(super) fn equal(left: &[u8], right: &[u8]) -> bool {
        left.len() == right.len()
            && left
                .iter()
                .zip(right)
                .fold(0u8, |difference, (a, b)| difference | (a ^ b))
                == 0
    }
}

/// The append-only file of checkpoints, and the key that signs them.
#[derive(Debug, Clone)]
pub struct CheckpointLog {
    path: PathBuf,
    key: AuditKey,
}

/// What the checkpoints say about the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    /// How many checkpoints were read.
    pub checkpoints: usize,
    /// The newest genuine checkpoint's position, if any.
    pub latest_seq: Option<i64>,
    /// Every problem found.
    pub problems: Vec<String>,
}

impl CheckpointLog {
    /// The log at `path`, signed with `key`.
    pub fn new(path: PathBuf, key: AuditKey) -> CheckpointLog {
        CheckpointLog { path, key }
    }

    /// Every checkpoint in the file, in order, and the lines that are not checkpoints.
    fn read(&self) -> Result<(Vec<Checkpoint>, Vec<String>), StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(io_error(&self.path, "cannot read", error)),
        };
        let mut checkpoints = Vec::new();
        let mut problems = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Checkpoint>(line) {
                Ok(checkpoint) => checkpoints.push(checkpoint),
                Err(error) => problems.push(format!(
                    "line {} of {} is not a checkpoint: {error}",
                    number + 1,
                    self.path.display()
                )),
            }
        }
        Ok((checkpoints, problems))
    }

    /// Appends a checkpoint of `seq`/`head` unless the newest one already records them.
    /// Returns the checkpoint written, if any.
    pub fn record(&self, seq: i64, head: &str) -> Result<Option<Checkpoint>, StoreError> {
        if seq == 0 {
            return Ok(None);
        }
        let (existing, _) = self.read()?;
        if existing
            .last()
            .is_some_and(|last| last.seq == seq && last.head == head)
        {
            return Ok(None);
        }
        let checkpoint = self.key.checkpoint(seq, head);
        let line = serde_json::to_string(&checkpoint)
            .map_err(|error| StoreError::corrupt("audit checkpoint", error))?;
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&self.path)
            .map_err(|error| io_error(&self.path, "cannot open", error))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|error| io_error(&self.path, "cannot append to", error))?;
        tracing::info!(target: "formulary::audit", seq, head, mac = %checkpoint.mac, at = %checkpoint.at, "audit checkpoint");
        Ok(Some(checkpoint))
    }

    /// Checks every checkpoint's MAC and that the chain still has each checkpointed row with
    /// the same hash. `hashes` maps `seq` to the row hash as the chain now has it.
    pub fn check(&self, hashes: &BTreeMap<i64, String>) -> Result<CheckpointReport, StoreError> {
        let (checkpoints, mut problems) = self.read()?;
        let mut latest_seq = None;
        for checkpoint in &checkpoints {
            if !self.key.is_genuine(checkpoint) {
                problems.push(format!(
                    "the checkpoint of row {} taken {} was not made with this server's key (forged or edited)",
                    checkpoint.seq, checkpoint.at
                ));
                continue;
            }
            latest_seq = latest_seq.max(Some(checkpoint.seq));
            match hashes.get(&checkpoint.seq) {
                None => problems.push(format!(
                    "row {} was checkpointed on {} but is no longer in the audit log (the log was truncated)",
                    checkpoint.seq, checkpoint.at
                )),
                Some(hash) if *hash != checkpoint.head => problems.push(format!(
                    "row {} no longer has the hash checkpointed on {} (the log was rewritten up to it)",
                    checkpoint.seq, checkpoint.at
                )),
                Some(_) => {}
            }
        }
        Ok(CheckpointReport {
            checkpoints: checkpoints.len(),
            latest_seq,
            problems,
        })
    }

    /// The newest checkpoint made with this key, if any (forged or unreadable lines are
    /// ignored here; `check` reports them).
    pub fn newest_genuine(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .read()?
            .0
            .into_iter()
            .filter(|checkpoint| self.key.is_genuine(checkpoint))
            .max_by_key(|checkpoint| checkpoint.seq))
    }

    /// The row positions the checkpoints name, for the chain walk to collect.
    pub fn checkpointed_rows(&self) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .read()?
            .0
            .iter()
            .map(|checkpoint| checkpoint.seq)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_detects_forgery_truncation_and_rewriting() {
        let folder = tempfile::tempdir().expect("temp dir");
        let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
        let log = CheckpointLog::new(folder.path().join("checkpoints.jsonl"), key.clone());
        assert!(log.record(3, "abc").expect("record").is_some());
        assert!(
            log.record(3, "abc").expect("record").is_none(),
            "no duplicate"
        );

        let intact: BTreeMap<i64, String> = [(3, "abc".to_owned())].into();
        assert!(log.check(&intact).expect("check").problems.is_empty());
        let rewritten: BTreeMap<i64, String> = [(3, "def".to_owned())].into();
        assert_eq!(log.check(&rewritten).expect("check").problems.len(), 1);
        let truncated = BTreeMap::new();
        assert!(log.check(&truncated).expect("check").problems[0].contains("truncated"));

        // A checkpoint made with another key is refused.
        let other = AuditKey::load_or_create(&folder.path().join("other.key")).expect("key");
        let forged = serde_json::to_string(&other.checkpoint(3, "def")).expect("json");
        let path = folder.path().join("checkpoints.jsonl");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str(&forged);
        text.push('\n');
        std::fs::write(&path, text).expect("write");
        let report = log.check(&rewritten).expect("check");
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.contains("forged")),
            "{report:?}"
        );

        // The key is reloaded, not replaced.
        let again = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
        assert!(again.is_genuine(&key.checkpoint(9, "x")));
    }
}
