//! Random bytes from the operating system (getrandom(2) through the getrandom crate): for
//! tokens, nonces, sessions and seeds.

use std::fmt;

/// The operating system gave no random bytes.
#[derive(Clone, Copy, Debug)]
pub struct RandomError(getrandom::Error);

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot get random bytes from the system: {}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// Fills `bytes` with random bytes.
pub fn fill(bytes: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(bytes).map_err(RandomError)
}

/// `bytes` random bytes in lowercase hex (two digits a byte).
pub fn hex(bytes: usize) -> Result<String, RandomError> {
    let mut raw = vec![0u8; bytes];
    fill(&mut raw)?;
    let mut text = String::with_capacity(2 * bytes);
    xmlwire::protocol::Hex::encode_into(&raw, &mut text);
    Ok(text)
}

/// A random u64, such as a seed.
pub fn u64() -> Result<u64, RandomError> {
    getrandom::u64().map_err(RandomError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_length_asked_and_differs_each_time() {
        let a = hex(16).unwrap();
        let b = hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // Equal only once in 2^128.
        assert_ne!(a, b);
        assert_ne!(u64().unwrap(), u64().unwrap());
    }
}
