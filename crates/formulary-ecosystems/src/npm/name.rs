//! npm package names, as the registry and `validate-npm-package-name` accept them: at most 214
//! characters, URL-safe, not starting with `.` or `_`, optionally scoped (`@scope/name`). Old
//! packages may have capital letters (`JSONStream`), so case is kept: the registry is
//! case-sensitive.

/// Characters `encodeURIComponent` leaves alone: the only ones a name may hold (besides the
/// scope's `@` and `/`).
fn url_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn check_part(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("a scope and a name must both be present, as in @scope/name");
    }
    if !part.bytes().all(url_safe) {
        return Err("only ASCII letters, digits and - _ . ! ~ * ' ( ) are allowed");
    }
    if part.starts_with('.') || part.starts_with('_') {
        return Err("it must not start with '.' or '_'");
    }
    Ok(())
}

/// Checks an npm package name and returns it as kept (scoped names with a `/`, never `%2f`).
pub fn check_name(name: &str) -> Result<String, &'static str> {
    let (scope, bare) = split_scope(name);
    if let Some(scope) = scope {
        check_part(scope)?;
    } else if name.starts_with('@') {
        return Err("a scoped name is written @scope/name");
    }
    check_part(bare)?;
    if scope.is_none()
        && matches!(
            bare.to_ascii_lowercase().as_str(),
            "node_modules" | "favicon.ico"
        )
    {
        return Err("that name is reserved");
    }
    Ok(name.to_owned())
}

/// Splits `@scope/name` into `(Some("scope"), "name")`; an unscoped name into `(None, name)`.
pub fn split_scope(name: &str) -> (Option<&str>, &str) {
    match name.strip_prefix('@').and_then(|rest| rest.split_once('/')) {
        Some((scope, bare)) => (Some(scope), bare),
        None => (None, name),
    }
}

/// The name as it appears in a packument URL path: `@scope%2fname` for scoped names.
pub fn path_name(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

/// The part of the name a tarball's file name starts with (`node` for `@types/node`).
pub fn tarball_basename(name: &str) -> &str {
    split_scope(name).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_registry_names_and_refuses_hostile_ones() {
        for good in [
            "lodash",
            "@types/node",
            "JSONStream",
            "left-pad",
            "a.b_c",
            "@babel/core",
        ] {
            assert_eq!(check_name(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "",
            "@types",
            "@/x",
            "@types/",
            ".hidden",
            "_under",
            "a b",
            "../x",
            "a/b",
            "@a/b/c",
            "naïve",
            "node_modules",
            "x%2fy",
            "@scope/.x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scoped_names_split_and_encode() {
        assert_eq!(split_scope("@types/node"), (Some("types"), "node"));
        assert_eq!(split_scope("lodash"), (None, "lodash"));
        assert_eq!(path_name("@types/node"), "@types%2fnode");
        assert_eq!(tarball_basename("@types/node"), "node");
    }
}
