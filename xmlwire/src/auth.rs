//! The challenge-response of sigma's authentication: the shared token never travels; a peer
//! proves it holds it by answering a fresh nonce with HMAC-SHA-256(key = token, message = the
//! nonce's bytes), in lowercase hex. See docs/protocol.md, "Authentication".

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::protocol::Hex;

type HmacSha256 = Hmac<Sha256>;

fn keyed(token: &str, nonce: Hex<'_>) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    for byte in nonce.bytes() {
        mac.update(&[byte]);
    }
    mac
}

/// The answer to `nonce`: 64 lowercase hex digits.
pub fn answer(token: &str, nonce: Hex<'_>) -> String {
    let digest = keyed(token, nonce).finalize().into_bytes();
    let mut text = String::with_capacity(64);
    Hex::encode_into(&digest, &mut text);
    text
}

/// Whether `mac` answers `nonce` for `token`, compared in constant time.
pub fn verify(token: &str, nonce: Hex<'_>, mac: Hex<'_>) -> bool {
    let given: Vec<u8> = mac.bytes().collect();
    keyed(token, nonce).verify_slice(&given).is_ok()
}

/// The token in a token file's text: 32 or more hex digits, surrounding whitespace ignored.
pub fn parse_token(text: &str) -> Option<&str> {
    let token = text.trim();
    (token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let data_hex: String = b"what do ya want for nothing?"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let nonce = Hex::new(&data_hex).unwrap();
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(answer("Jefe", nonce), expected);
        assert!(verify("Jefe", nonce, Hex::new(expected).unwrap()));
    }

    #[test]
    fn token_files_hold_hex() {
        let good = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_token(&format!("  {good}\n")), Some(good));
        assert_eq!(parse_token("0123"), None);
        assert_eq!(parse_token(&format!("{good}zz")), None);
    }

    #[test]
    fn a_wrong_token_nonce_or_mac_fails() {
        let nonce = Hex::new("00112233445566778899aabbccddeeff").unwrap();
        let mac = answer("secret", nonce);
        let mac = Hex::new(&mac).unwrap();
        assert!(verify("secret", nonce, mac));
        assert!(!verify("Secret", nonce, mac));
        assert!(!verify(
            "secret",
            Hex::new("00112233445566778899aabbccddeefe").unwrap(),
            mac
        ));
        assert!(!verify("secret", nonce, Hex::new("00").unwrap()));
    }
}
