//! Base64 (RFC 4648, standard alphabet, `=` padding), written for sigma: program output is
//! arbitrary bytes, and XML text can carry neither NUL nor most control characters.
//!
//! Only the canonical form is accepted: length a multiple of 4, padding only at the end, and the
//! unused low bits of the last character zero. So two base64 strings are equal exactly when
//! their bytes are, and `encode(decode(s)) == s`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of an alphabet character.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Whether `s` is canonical base64.
pub(crate) fn is_canonical(s: &[u8]) -> bool {
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let pad = s.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    let body = &s[..s.len() - pad];
    if !body.iter().all(|&c| sextet(c).is_some()) {
        return false;
    }
    // With one `=` the last character holds 2 unused bits; with two, 4 unused bits.
    let unused_mask = match pad {
        1 => 0b11,
        2 => 0b1111,
        _ => 0,
    };
    match body.last() {
        Some(&c) => sextet(c).is_some_and(|v| v & unused_mask == 0),
        None => true,
    }
}

/// Number of bytes that canonical `s` decodes to.
pub(crate) fn decoded_len(s: &[u8]) -> usize {
    let pad = s.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    s.len() / 4 * 3 - pad
}

/// Appends the bytes of `s` to `out`. `s` must be canonical; any other character counts as zero
/// bits (never a panic).
pub(crate) fn decode_into(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(decoded_len(s));
    for quad in s.chunks(4) {
        let mut bits: u32 = 0;
        let mut chars = 0;
        for &c in quad {
            if c == b'=' {
                break;
            }
            bits = bits << 6 | u32::from(sextet(c).unwrap_or(0));
            chars += 1;
        }
        // `chars` characters hold chars * 6 bits, of which whole bytes are (chars * 6) / 8.
        let bytes = chars * 6 / 8;
        bits <<= 6 * (4 - chars);
        let group = bits.to_be_bytes();
        out.extend_from_slice(&group[1..1 + bytes]);
    }
}

/// Appends the base64 of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut three = [0u8; 3];
        three[..group.len()].copy_from_slice(group);
        let bits = u32::from(three[0]) << 16 | u32::from(three[1]) << 8 | u32::from(three[2]);
        // 1 byte -> 2 characters, 2 -> 3, 3 -> 4; the rest is padding.
        let chars = group.len() + 1;
        for i in 0..4 {
            if i < chars {
                let index = (bits >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut s = String::new();
        encode_into(bytes, &mut s);
        s
    }

    fn decode(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        decode_into(s.as_bytes(), &mut v);
        v
    }

    #[test]
    fn rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert!(is_canonical(coded.as_bytes()), "{coded}");
            assert_eq!(decode(coded), plain.as_bytes());
            assert_eq!(decoded_len(coded.as_bytes()), plain.len());
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..bytes.len() {
            let coded = encode(&bytes[..len]);
            assert!(is_canonical(coded.as_bytes()));
            assert_eq!(decode(&coded), &bytes[..len]);
        }
    }

    #[test]
    fn non_canonical_is_rejected() {
        for bad in [
            "Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zm9v\n", " Zm9", "Zm-v", "Zm_v",
            "Z=g=", "=Zg=",
        ] {
            assert!(!is_canonical(bad.as_bytes()), "{bad:?}");
        }
    }
}
