//! Percent-decoding of URL path segments and query values, one decoder for
//! the whole server (lenient, as browsers and cargo expect: a `%` not
//! followed by two hex digits stays as it is, and bytes that are not UTF-8
//! become U+FFFD: no file or package can have such a name); and a URL's
//! origin, which session writes must come from.

/// Decodes a path segment (cargo sends the `+` of build metadata as `%2B`).
pub fn decode_segment(s: &str) -> String {
    percent_decode(s, false)
}

/// Decodes an `application/x-www-form-urlencoded` query value.
pub fn decode_form(s: &str) -> String {
    percent_decode(s, true)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The origin (RFC 6454) of an absolute URL as a browser sends it in
/// `Origin`: scheme and host in lowercase, the port only when it is not
/// the scheme's default, no path.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("").to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host.to_string(),
        _ => authority,
    };
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode_segment("1.0.0%2Bbuild.1"), "1.0.0+build.1");
        assert_eq!(decode_segment("a+b"), "a+b");
        assert_eq!(decode_form("two+words%20here"), "two words here");
        assert_eq!(decode_form("100%"), "100%");
        assert_eq!(decode_form("%4"), "%4");
        assert_eq!(decode_form("%zz"), "%zz");
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https://Reg.Example.org/cairn/"), "https://reg.example.org");
        assert_eq!(origin("https://reg.example.org:443"), "https://reg.example.org");
        assert_eq!(origin("http://127.0.0.1:7878"), "http://127.0.0.1:7878");
        assert_eq!(origin("http://[::1]:80/x"), "http://[::1]");
        assert_eq!(origin("http://[::1]"), "http://[::1]");
    }
}
