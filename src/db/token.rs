//! API tokens: `cairn_` + 40 base62 characters, the last 6 of which encode a
//! CRC32 of the first 34, so secret scanners match them with few false
//! positives and a mistyped token is refused before any database lookup.

use sha2::Digest;

const PREFIX: &str = "cairn_";
const BODY: usize = 34;
const CHECK: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new random token.
pub fn generate() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..BODY).map(|_| ALPHABET[rng.gen_range(0..62)] as char).collect();
    format!("{PREFIX}{body}{}", checksum(&body))
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// True when the token has the right prefix, length, alphabet and checksum.
pub fn well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != BODY + CHECK || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, check) = rest.split_at(BODY);
    checksum(body) == check
}

/// What the database stores: the SHA-256 of the token, hex.
pub fn hash(token: &str) -> String {
    crate::store::hex(&sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed() {
        let t = generate();
        assert_eq!(t.len(), 46);
        assert!(well_formed(&t));
    }

    #[test]
    fn a_changed_character_fails_the_checksum() {
        let t = generate();
        let mut b = t.into_bytes();
        b[10] = if b[10] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&String::from_utf8(b).unwrap()));
        assert!(!well_formed("cairn_short"));
        assert!(!well_formed(&format!("ghp_{}", "a".repeat(40))));
    }
}
