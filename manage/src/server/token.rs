//! The shared secret's file: read, or made on first start.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the token cannot be had. Display gives the one-line message.
#[derive(Debug)]
pub enum TokenError {
    /// The file holds something else than a hex token of 32 digits or more.
    NotAToken(PathBuf),
    /// The file cannot be read.
    Read {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No random bytes for a new token.
    Random(io::Error),
    /// The new file cannot be created.
    Create {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The new token cannot be written.
    Write {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::NotAToken(path) => write!(
                f,
                "{} does not hold a hex token of 32+ digits",
                path.display()
            ),
            TokenError::Read { path, source } => {
                write!(f, "cannot read the token file {}: {source}", path.display())
            }
            TokenError::Random(source) => {
                write!(f, "cannot read random bytes for a token: {source}")
            }
            TokenError::Create { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            TokenError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// Reads the shared secret from `path`, or, when `create` is set and the file does not exist,
/// makes a new random one there with mode 0600. The token is 64 hex digits.
pub fn load_or_create_token(path: &Path, create: bool) -> Result<String, TokenError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TokenError::NotAToken(path.to_path_buf()));
            }
            let mode = fs::metadata(path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                log::warn!(
                    "{} can be read by other users (mode {:o})",
                    path.display(),
                    mode & 0o777
                );
            }
            Ok(token)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            let mut bytes = [0u8; 32];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
                .map_err(TokenError::Random)?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| TokenError::Create {
                    path: path.to_path_buf(),
                    source,
                })?;
            std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| TokenError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok(token)
        }
        Err(source) => Err(TokenError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(load_or_create_token(&path, false).is_err());
        let token = load_or_create_token(&path, true).unwrap();
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&path, false).unwrap(), token);
        fs::write(&path, "short").unwrap();
        assert!(load_or_create_token(&path, false).is_err());
    }
}
