//! Counted nouns for messages: "1 package", "2 packages".

/// `n` and the noun, plural when `n` is not 1 (`entry` → `entries`).
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plurals() {
        assert_eq!(super::count(1, "package"), "1 package");
        assert_eq!(super::count(0, "package"), "0 packages");
        assert_eq!(super::count(2, "entry"), "2 entries");
        assert_eq!(super::count(3u64, "key"), "3 keys");
    }
}
