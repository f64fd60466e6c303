//! Keyed checkpoints of the audit chain's head, kept outside the database.
//!
//! The audit chain links each row to the one before by a hash, so an edit breaks every later
//! link — unless whoever edits recomputes them. A checkpoint records the chain's head (its last
//! `seq` and hash) with an HMAC-SHA256 under a key that is *not* in the database. Someone with
//! write access to the database alone can therefore neither rewrite nor truncate the chain
//! behind a checkpoint unnoticed, nor forge a checkpoint. Checkpoints are appended, one JSON
//! line each, to a file the server and the CLI write whenever the head has moved (and are also
//! logged, so a log shipped elsewhere keeps a copy).
//!
//! Restoring the database from a backup looks exactly like truncation (and, once new rows are
//! written, like rewriting): the checkpoints are ahead of the restored chain. Only the holder of
//! the key can say "this was a restore": [`CheckpointLog::acknowledge_restore`] appends a signed
//! [`RestoreMarker`] that names the checkpoints it sets aside, and every later check reports it.

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

/// A signed statement, appended by an operator who restored the database from a backup, that the
/// checkpoints taken before it of rows after `kept_through` no longer describe the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMarker {
    /// The chain's head when the restore was acknowledged.
    pub seq: i64,
    /// That head row's hash.
    pub head: String,
    /// Earlier checkpoints of rows up to this one still held and must go on holding (0: none).
    pub kept_through: i64,
    /// The newest row an earlier checkpoint named: rows after `kept_through` up to this one were
    /// lost or replaced by the restore.
    pub superseded_through: i64,
    /// Why (the operator's words: which backup, which incident).
    pub reason: String,
    /// When the restore was acknowledged.
    pub at: DateTime<Utc>,
    /// HMAC-SHA256 over every field above, hex.
    pub mac: String,
}

/// One line of the checkpoint file. A marker is tried first: a checkpoint has no `reason`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Line {
    Restore(RestoreMarker),
    Checkpoint(Checkpoint),
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

    fn restore_mac(&self, marker: &RestoreMarker) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(
            format!(
                "formulary-audit-restore\n{}\n{}\n{}\n{}\n{}\n{}",
                marker.seq,
                marker.head,
                marker.kept_through,
                marker.superseded_through,
                marker.reason,
                marker.at.to_rfc3339()
            )
            .as_bytes(),
        );
        hex::encode(mac.finalize().into_bytes())
    }

    /// True when the restore marker was made with this key and not changed since.
    fn is_genuine_restore(&self, marker: &RestoreMarker) -> bool {
        subtle_compare::equal(self.restore_mac(marker).as_bytes(), marker.mac.as_bytes())
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
    /// Every acknowledged restore, in words (not a problem: the key holder signed it).
    pub restores: Vec<String>,
}

/// The checkpoint file read in order: checkpoints still in force, and the restores.
struct InForce {
    checkpoints: Vec<Checkpoint>,
    restores: Vec<RestoreMarker>,
    problems: Vec<String>,
    lines: usize,
}

impl CheckpointLog {
    /// The log at `path`, signed with `key`.
    pub fn new(path: PathBuf, key: AuditKey) -> CheckpointLog {
        CheckpointLog { path, key }
    }

    /// Every line of the file, in order, and the lines that are neither checkpoints nor markers.
    fn read(&self) -> Result<(Vec<Line>, Vec<String>), StoreError> {
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
            match serde_json::from_str::<Line>(line) {
                Ok(line) => checkpoints.push(line),
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
        if existing.last().is_some_and(
            |last| matches!(last, Line::Checkpoint(last) if last.seq == seq && last.head == head),
        ) {
            return Ok(None);
        }
        let checkpoint = self.key.checkpoint(seq, head);
        self.append(&checkpoint)?;
        tracing::info!(target: "formulary::audit", seq, head, mac = %checkpoint.mac, at = %checkpoint.at, "audit checkpoint");
        Ok(Some(checkpoint))
    }

    /// Appends one JSON line and syncs it.
    fn append(&self, line: &impl Serialize) -> Result<(), StoreError> {
        let line = serde_json::to_string(line)
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
            .map_err(|error| io_error(&self.path, "cannot append to", error))
    }

    /// Reads the file in order, setting aside the checkpoints each genuine restore marker names.
    fn in_force(&self) -> Result<InForce, StoreError> {
        let (lines, mut problems) = self.read()?;
        let mut in_force = InForce {
            checkpoints: Vec::new(),
            restores: Vec::new(),
            problems: Vec::new(),
            lines: lines.len(),
        };
        for line in lines {
            match line {
                Line::Checkpoint(checkpoint) => {
                    if self.key.is_genuine(&checkpoint) {
                        in_force.checkpoints.push(checkpoint);
                    } else {
                        problems.push(format!(
                            "the checkpoint of row {} taken {} was not made with this server's key (forged or edited)",
                            checkpoint.seq, checkpoint.at
                        ));
                    }
                }
                Line::Restore(marker) => {
                    if !self.key.is_genuine_restore(&marker) {
                        problems.push(format!(
                            "the restore acknowledged {} was not signed with this server's key (forged or edited)",
                            marker.at
                        ));
                        continue;
                    }
                    in_force
                        .checkpoints
                        .retain(|checkpoint| checkpoint.seq <= marker.kept_through);
                    // The marker binds the head it was made at, like a checkpoint.
                    in_force.checkpoints.push(Checkpoint {
                        seq: marker.seq,
                        head: marker.head.clone(),
                        at: marker.at,
                        mac: marker.mac.clone(),
                    });
                    in_force.restores.push(marker);
                }
            }
        }
        in_force.problems = problems;
        Ok(in_force)
    }

    /// Acknowledges that the database was restored from a backup: when checkpoints in force no
    /// longer match the chain (`hashes`, by position, must hold every checkpointed row and the
    /// head), appends a signed [`RestoreMarker`] setting aside those of rows after the last one
    /// that still matches. Returns `None` (and writes nothing) when every checkpoint matches.
    pub fn acknowledge_restore(
        &self,
        hashes: &BTreeMap<i64, String>,
        head_seq: i64,
        head: &str,
        reason: &str,
    ) -> Result<Option<RestoreMarker>, StoreError> {
        let in_force = self.in_force()?;
        let matches =
            |checkpoint: &Checkpoint| hashes.get(&checkpoint.seq) == Some(&checkpoint.head);
        let Some(first_failing) = in_force
            .checkpoints
            .iter()
            .filter(|checkpoint| !matches(checkpoint))
            .map(|checkpoint| checkpoint.seq)
            .min()
        else {
            return Ok(None);
        };
        let kept_through = in_force
            .checkpoints
            .iter()
            .map(|checkpoint| checkpoint.seq)
            .filter(|seq| *seq < first_failing)
            .max()
            .unwrap_or(0);
        let superseded_through = in_force
            .checkpoints
            .iter()
            .map(|checkpoint| checkpoint.seq)
            .max()
            .unwrap_or(0);
        let mut marker = RestoreMarker {
            seq: head_seq,
            head: head.to_owned(),
            kept_through,
            superseded_through,
            reason: reason.to_owned(),
            at: crate::time::now(),
            mac: String::new(),
        };
        marker.mac = self.key.restore_mac(&marker);
        self.append(&marker)?;
        tracing::warn!(target: "formulary::audit", seq = head_seq, kept_through, superseded_through, reason, "audit restore acknowledged");
        Ok(Some(marker))
    }

    /// Checks every checkpoint's MAC and that the chain still has each checkpointed row with
    /// the same hash. `hashes` maps `seq` to the row hash as the chain now has it.
    pub fn check(&self, hashes: &BTreeMap<i64, String>) -> Result<CheckpointReport, StoreError> {
        let in_force = self.in_force()?;
        let mut problems = in_force.problems;
        let mut latest_seq = None;
        for checkpoint in &in_force.checkpoints {
            latest_seq = latest_seq.max(Some(checkpoint.seq));
            match hashes.get(&checkpoint.seq) {
                None => problems.push(format!(
                    "row {} was checkpointed on {} but is no longer in the audit log (the log was truncated, or restored from a backup: if so, run `formulary audit acknowledge-restore`)",
                    checkpoint.seq, checkpoint.at
                )),
                Some(hash) if *hash != checkpoint.head => problems.push(format!(
                    "row {} no longer has the hash checkpointed on {} (the log was rewritten up to it)",
                    checkpoint.seq, checkpoint.at
                )),
                Some(_) => {}
            }
        }
        let restores = in_force
            .restores
            .iter()
            .map(|marker| {
                format!(
                    "restored from a backup (acknowledged {}: {}): the checkpoints of rows {}–{} taken before the restore were set aside; the chain up to row {} still matches its checkpoints",
                    marker.at,
                    marker.reason,
                    marker.kept_through + 1,
                    marker.superseded_through,
                    marker.kept_through
                )
            })
            .collect();
        Ok(CheckpointReport {
            checkpoints: in_force.lines,
            latest_seq,
            problems,
            restores,
        })
    }

    /// The newest checkpoint made with this key and still in force (after any acknowledged
    /// restore), if any (forged or unreadable lines are ignored here; `check` reports them).
    pub fn newest_genuine(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .in_force()?
            .checkpoints
            .into_iter()
            .max_by_key(|checkpoint| checkpoint.seq))
    }

    /// The row positions the checkpoints name, for the chain walk to collect.
    pub fn checkpointed_rows(&self) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .read()?
            .0
            .iter()
            .map(|line| match line {
                Line::Checkpoint(checkpoint) => checkpoint.seq,
                Line::Restore(marker) => marker.seq,
            })
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

    #[test]
    fn a_signed_restore_sets_aside_the_checkpoints_the_backup_lacks_and_nothing_else() {
        let folder = tempfile::tempdir().expect("temp dir");
        let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
        let log = CheckpointLog::new(folder.path().join("checkpoints.jsonl"), key);
        for (seq, head) in [(1, "a"), (2, "b"), (3, "c")] {
            log.record(seq, head).expect("record");
        }
        let chain = |rows: &[(i64, &str)]| -> BTreeMap<i64, String> {
            rows.iter()
                .map(|(seq, hash)| (*seq, (*hash).to_owned()))
                .collect()
        };
        assert!(
            log.acknowledge_restore(
                &chain(&[(1, "a"), (2, "b"), (3, "c")]),
                3,
                "c",
                "no restore"
            )
            .expect("acknowledge")
            .is_none(),
            "nothing to acknowledge while every checkpoint matches"
        );

        // Restored to a backup taken after row 1: rows 2 and 3 are gone.
        let restored = chain(&[(1, "a")]);
        assert!(log.check(&restored).expect("check").problems[0].contains("acknowledge-restore"));
        let marker = log
            .acknowledge_restore(&restored, 1, "a", "backup of 1 December, incident 42")
            .expect("acknowledge")
            .expect("a marker");
        assert_eq!((marker.kept_through, marker.superseded_through), (1, 3));
        let report = log.check(&restored).expect("check");
        assert!(report.problems.is_empty(), "{report:?}");
        assert!(report.restores[0].contains("incident 42"), "{report:?}");

        // The chain goes on, reusing positions 2 and 3 with new rows.
        let continued = chain(&[(1, "a"), (2, "x"), (3, "y")]);
        log.record(3, "y").expect("record");
        assert!(log.check(&continued).expect("check").problems.is_empty());

        // What the marker kept is still guarded, and so is what came after it.
        let rewritten = chain(&[(1, "z"), (2, "x"), (3, "y")]);
        assert!(!log.check(&rewritten).expect("check").problems.is_empty());
        let rewritten_later = chain(&[(1, "a"), (2, "x"), (3, "w")]);
        assert!(!log
            .check(&rewritten_later)
            .expect("check")
            .problems
            .is_empty());

        // A marker edited (or made) without the key is refused and sets nothing aside.
        let mut forged = marker.clone();
        forged.head = "w".to_owned();
        forged.seq = 3;
        forged.kept_through = 0;
        let path = folder.path().join("checkpoints.jsonl");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str(&serde_json::to_string(&forged).expect("json"));
        text.push('\n');
        std::fs::write(&path, text).expect("write");
        let report = log.check(&rewritten_later).expect("check");
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.contains("not signed")),
            "{report:?}"
        );
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.contains("row 3")),
            "{report:?}"
        );
    }
}
