//! manage's token file: 32 or more hex digits, kept in manage's state folder with mode 0600.
//! Reading it (and telling whether other users can), making a new one, and answering
//! manage's challenge with it. The answer itself is `xmlwire::auth`'s.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use xmlwire::protocol::Hex;

use crate::random::{self, RandomError};

/// Random bytes in a new token (64 hex digits).
const TOKEN_BYTES: usize = 32;

/// A token file that cannot be read, or made.
#[derive(Debug)]
pub enum TokenError {
    /// The file cannot be read.
    Read {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file holds no token.
    NotAToken {
        /// The token file.
        path: PathBuf,
    },
    /// No random bytes for a new token.
    Random(RandomError),
    /// The new file cannot be created or written.
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
            TokenError::Read { path, source } => {
                write!(f, "cannot read the token file {}: {source}", path.display())
            }
            TokenError::NotAToken { path } => write!(
                f,
                "{} does not hold a token (32+ hex digits)",
                path.display()
            ),
            TokenError::Random(e) => write!(f, "no token: {e}"),
            TokenError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// A token read from its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFile {
    /// The token, without surrounding whitespace.
    pub token: String,
    /// The file's permission bits (as `ls -l` shows them, 0o600 for manage's own).
    pub mode: u32,
}

impl TokenFile {
    /// Whether users other than the owner may read or write the file: anyone who reads the
    /// token can stop the cluster and claim work.
    pub fn open_to_others(&self) -> bool {
        self.mode & 0o077 != 0
    }
}

/// Reads the token in `path`.
pub fn read(path: &Path) -> Result<TokenFile, TokenError> {
    let read_error = |source| TokenError::Read {
        path: path.to_owned(),
        source,
    };
    let text = fs::read_to_string(path).map_err(read_error)?;
    let mode = fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o777;
    let token = xmlwire::auth::parse_token(&text).ok_or_else(|| TokenError::NotAToken {
        path: path.to_owned(),
    })?;
    Ok(TokenFile {
        token: token.to_owned(),
        mode,
    })
}

/// Makes a new random token in `path`, which must not exist yet, readable by its owner only.
pub fn create(path: &Path) -> Result<String, TokenError> {
    let token = random::hex(TOKEN_BYTES).map_err(TokenError::Random)?;
    let write_error = |source| TokenError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    Ok(token)
}

/// The answer to manage's challenge `nonce` (hex) with `token`: what goes in a `mac`
/// attribute. None when the nonce is not hex.
pub fn answer(token: &str, nonce: &str) -> Option<String> {
    Hex::new(nonce).map(|nonce| xmlwire::auth::answer(token, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_private_and_reads_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("token");
        let token = create(&path).unwrap();
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        let file = read(&path).unwrap();
        assert_eq!(file.token, token);
        assert_eq!(file.mode, 0o600);
        assert!(!file.open_to_others());
        // Never over an existing file.
        assert!(matches!(create(&path), Err(TokenError::Write { .. })));
    }

    #[test]
    fn bad_files_say_why() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("token");
        let error = read(&path).unwrap_err();
        assert!(
            error.to_string().starts_with("cannot read the token file "),
            "{error}"
        );
        fs::write(&path, "0123\n").unwrap();
        let error = read(&path).unwrap_err();
        assert!(matches!(error, TokenError::NotAToken { .. }), "{error}");
        let good = "0123456789abcdef0123456789abcdef";
        fs::write(&path, format!("  {good}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.token, good);
        assert!(file.open_to_others());
    }

    #[test]
    fn answers_are_the_hmac_of_hex_nonces_only() {
        let nonce = "00112233445566778899aabbccddeeff";
        let mac = answer("secret", nonce).unwrap();
        assert!(xmlwire::auth::verify(
            "secret",
            Hex::new(nonce).unwrap(),
            Hex::new(&mac).unwrap()
        ));
        assert_eq!(answer("secret", "not hex"), None);
    }
}
