//! Vendor signatures on desktop tools' files: a detached signature published beside the file
//! (OpenPGP `.asc`/`.sig`, as git, Python and many source releases publish; or minisign
//! `.minisig`), checked with the vendor's public key pinned in the tool's manifest. The
//! verifiers are field-made: rPGP (`pgp`) and `minisign-verify`. The gateway checks the file's
//! bytes before they enter the cache; a curator's key is parsed when the manifest is added, and
//! the signer it names (fingerprint and user id) is shown as evidence where files are listed.

use std::io::{BufReader, Read};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use serde::{Deserialize, Serialize};

/// A tool file's vendor signature: where it is published, its kind, and the pinned key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSignature {
    /// Where the vendor publishes the detached signature (http or https).
    pub url: String,
    /// `openpgp` (a detached OpenPGP signature, armored or binary) or `minisign`.
    pub kind: String,
    /// The vendor's public key, pinned: an armored OpenPGP public key block, or a minisign
    /// public key (its `.pub` file, or the base64 line alone).
    pub public_key: String,
    /// Who the key names, as evidence: `OpenPGP C0FF…EE (Ruff Releases <…>)`,
    /// `minisign key 1A2B…`.
    pub signer: String,
}

/// The signer a pinned key names (for `ToolSignature::signer`), or why the key cannot be used.
pub fn signer_of(kind: &str, public_key: &str) -> Result<String, String> {
    match kind {
        "openpgp" => {
            let key = openpgp_key(public_key)?;
            let user = key
                .details
                .users
                .first()
                .map(|user| String::from_utf8_lossy(user.id.id()).into_owned());
            let fingerprint = format!("{:X}", key.primary_key.fingerprint());
            Ok(match user {
                Some(user) => format!("OpenPGP {fingerprint} ({user})"),
                None => format!("OpenPGP {fingerprint}"),
            })
        }
        "minisign" => {
            let key = minisign_key(public_key)?;
            Ok(format!("minisign key {}", minisign_key_id(&key.1)?))
        }
        other => Err(format!(
            "'{}' is not a signature kind the gateway verifies: write openpgp or minisign",
            other.escape_debug()
        )),
    }
}

/// Checks `data` (the whole file) against the detached `signature` with the pinned key; the
/// signer on success, else what did not verify.
pub fn verify(
    kind: &str,
    public_key: &str,
    signature: &[u8],
    data: &mut dyn Read,
) -> Result<String, String> {
    match kind {
        "openpgp" => verify_openpgp(public_key, signature, data),
        "minisign" => verify_minisign(public_key, signature, data),
        other => Err(format!("unknown signature kind {}", other.escape_debug())),
    }
}

fn openpgp_key(public_key: &str) -> Result<SignedPublicKey, String> {
    let text = public_key.trim();
    if !text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        return Err("the key is not an armored OpenPGP public key: paste the vendor's key block, from -----BEGIN PGP PUBLIC KEY BLOCK----- to -----END PGP PUBLIC KEY BLOCK----- (gpg --armor --export KEYID)".to_owned());
    }
    let (key, _) = SignedPublicKey::from_string(text)
        .map_err(|error| format!("the OpenPGP public key cannot be read: {error}. Paste the vendor's key block exactly as published"))?;
    key.verify_bindings().map_err(|error| {
        format!("the OpenPGP public key's self-signatures do not verify ({error}): it is damaged or not the vendor's; get it again from the vendor")
    })?;
    Ok(key)
}

fn verify_openpgp(
    public_key: &str,
    signature: &[u8],
    data: &mut dyn Read,
) -> Result<String, String> {
    let key = openpgp_key(public_key)?;
    let signature = if signature
        .trim_ascii_start()
        .starts_with(b"-----BEGIN PGP SIGNATURE-----")
    {
        let text = std::str::from_utf8(signature)
            .map_err(|_| "the armored signature is not text".to_owned())?;
        DetachedSignature::from_string(text).map(|(signature, _)| signature)
    } else {
        DetachedSignature::from_bytes(BufReader::new(signature))
    }
    .map_err(|error| format!("the signature file is not an OpenPGP signature: {error}"))?
    .signature;
    let ids = signature.issuer_key_id();
    let fingerprints = signature.issuer_fingerprint();
    let names = |details: &dyn KeyDetails| {
        (ids.is_empty() && fingerprints.is_empty())
            || ids.iter().any(|id| **id == details.legacy_key_id())
            || fingerprints.iter().any(|fp| **fp == details.fingerprint())
    };
    let primary = &key.primary_key;
    let fingerprint = format!("{:X}", primary.fingerprint());
    if names(primary) {
        signature
            .verify(primary, data)
            .map_err(|error| format!("the signature does not match the file ({error})"))?;
        return Ok(format!("OpenPGP {fingerprint}"));
    }
    if let Some(subkey) = key.public_subkeys.iter().find(|subkey| names(&subkey.key)) {
        signature
            .verify(&subkey.key, data)
            .map_err(|error| format!("the signature does not match the file ({error})"))?;
        return Ok(format!("OpenPGP {fingerprint}"));
    }
    let issuer = fingerprints
        .first()
        .map(hex::encode_upper)
        .or_else(|| ids.first().map(hex::encode_upper))
        .unwrap_or_default();
    Err(format!(
        "it was made with another key ({issuer}), not the pinned key {fingerprint}"
    ))
}

/// The minisign key, and its raw bytes (algorithm, key id, key).
fn minisign_key(public_key: &str) -> Result<(minisign_verify::PublicKey, Vec<u8>), String> {
    use base64::Engine as _;
    let line = public_key
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("untrusted comment:"))
        .unwrap_or_default();
    let key = minisign_verify::PublicKey::from_base64(line).map_err(|error| {
        format!("the minisign public key cannot be read ({error}): paste the vendor's .pub file, or its second line (RWQ…)")
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|error| format!("the minisign public key is not base64: {error}"))?;
    Ok((key, bytes))
}

/// The key id as minisign prints it (the little-endian id in upper-case hex).
fn minisign_key_id(bytes: &[u8]) -> Result<String, String> {
    let id = bytes
        .get(2..10)
        .ok_or_else(|| "the minisign public key is too short".to_owned())?;
    Ok(id.iter().rev().map(|byte| format!("{byte:02X}")).collect())
}

fn verify_minisign(
    public_key: &str,
    signature: &[u8],
    data: &mut dyn Read,
) -> Result<String, String> {
    let (key, bytes) = minisign_key(public_key)?;
    let text = std::str::from_utf8(signature)
        .map_err(|_| "the signature file is not a minisign signature (not text)".to_owned())?;
    let signature = minisign_verify::Signature::decode(text)
        .map_err(|error| format!("the signature file is not a minisign signature: {error}"))?;
    let mut verifier = key.verify_stream(&signature).map_err(|error| {
        format!("the signature cannot be checked ({error}); only pre-hashed signatures (minisign's default since 0.8) are accepted")
    })?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = data
            .read(&mut buffer)
            .map_err(|error| format!("the file could not be read: {error}"))?;
        if read == 0 {
            break;
        }
        verifier.update(&buffer[..read]);
    }
    verifier
        .finalize()
        .map_err(|error| format!("the signature does not match the file ({error})"))?;
    Ok(format!("minisign key {}", minisign_key_id(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // minisign's own example (minisign-verify's tests): the key and a pre-hashed signature of
    // the bytes "test".
    const MINISIGN_KEY: &str = "untrusted comment: minisign public key E7620F1842B4E81F\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\ntrusted comment: timestamp:1556193335\tfile:test\ny/rUw2y8/hOUYjZU71eHp/Wo1KZ40fGy2VJEDl34XMJM+TX48Ss/17u3IvIfbVR1FkZZSNCisQbuQY+bHwhEBg==";

    #[test]
    fn a_minisign_signature_verifies_with_its_key_only() {
        assert_eq!(
            signer_of("minisign", MINISIGN_KEY).expect("key"),
            "minisign key E7620F1842B4E81F"
        );
        let signer = verify(
            "minisign",
            MINISIGN_KEY,
            MINISIGN_SIG.as_bytes(),
            &mut &b"test"[..],
        );
        assert_eq!(signer.as_deref(), Ok("minisign key E7620F1842B4E81F"));
        let tampered = verify(
            "minisign",
            MINISIGN_KEY,
            MINISIGN_SIG.as_bytes(),
            &mut &b"tesT"[..],
        );
        assert!(tampered.expect_err("refused").contains("does not match"));
    }

    #[test]
    fn keys_that_do_not_parse_are_explained() {
        let error = signer_of("openpgp", "ssh-ed25519 AAAA…").expect_err("refused");
        assert!(error.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{error}");
        let error = signer_of(
            "openpgp",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----",
        )
        .expect_err("refused");
        assert!(error.contains("cannot be read"), "{error}");
        assert!(signer_of("minisign", "RWQnope").is_err());
        assert!(signer_of("gpg", "x")
            .expect_err("refused")
            .contains("openpgp or minisign"));
    }
}
