//! The shared secret: read from its file, or made there on first start (the file format and
//! the making are sigma_link's, shared with compute and report).

use std::io;
use std::path::Path;

pub use sigma_link::token::TokenError;

/// Reads the shared secret from `path`, or, when `create` is set and the file does not exist,
/// makes a new random one there (mode 0600). Warns when other users can read it.
pub fn load_or_create_token(path: &Path, create: bool) -> Result<String, TokenError> {
    match sigma_link::token::read(path) {
        Ok(file) => {
            if file.open_to_others() {
                log::warn!(
                    "{} can be read by other users (mode {:o})",
                    path.display(),
                    file.mode
                );
            }
            Ok(file.token)
        }
        Err(TokenError::Read { source, .. })
            if create && source.kind() == io::ErrorKind::NotFound =>
        {
            sigma_link::token::create(path)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
