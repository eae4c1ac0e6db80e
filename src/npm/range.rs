//! Whether a dependency's requirement is an npm range (node-semver's
//! grammar, with its usual leniencies: a `v` prefix, spaces after an
//! operator) or a dist-tag. A URL, a git or file spec or an `npm:` alias
//! is refused: an npm package here depends on registry packages.

/// The longest requirement accepted (npm's own ranges are a few dozen bytes).
const MAX_LEN: usize = 256;

pub fn check(req: &str) -> Result<(), String> {
    if req.len() > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} bytes"));
    }
    let trimmed = req.trim();
    if is_tag(trimmed) {
        return Ok(());
    }
    for range in trimmed.split("||") {
        range_ok(range.trim()).map_err(|e| format!("not an npm range or dist-tag: {e}"))?;
    }
    Ok(())
}

/// A dist-tag: a word that is not a version (`latest`, `next`, `beta-2`).
fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() && c != 'x' && c != 'v')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.contains(':')
}

fn range_ok(range: &str) -> Result<(), String> {
    if range.is_empty() {
        return Ok(());
    }
    let words: Vec<&str> = range.split_whitespace().collect();
    // `a - b`, a hyphen range.
    if let [low, "-", high] = words.as_slice() {
        return partial(low).and(partial(high));
    }
    // An operator may stand apart from its version (`>= 1.2.3`).
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let op_len = operator_len(w);
        if op_len == w.len() && op_len > 0 {
            let next = words.get(i + 1).ok_or_else(|| format!("`{w}` without a version"))?;
            partial(next)?;
            i += 2;
        } else {
            partial(&w[op_len..])?;
            i += 1;
        }
    }
    Ok(())
}

fn operator_len(w: &str) -> usize {
    ["~>", ">=", "<=", "~", "^", ">", "<", "="].iter().find(|op| w.starts_with(**op)).map_or(0, |op| op.len())
}

/// `1`, `1.2`, `1.x`, `*`, `1.2.3-beta.1+build`, with an optional `v`.
fn partial(s: &str) -> Result<(), String> {
    let bad = || Err(format!("`{s}`"));
    let s = s.strip_prefix(['v', '=']).unwrap_or(s);
    let (core, qualifier) = match s.find(['-', '+']) {
        Some(at) => (&s[..at], Some(&s[at..])),
        None => (s, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return bad();
    }
    let x = |p: &&str| matches!(*p, "x" | "X" | "*");
    let number = |p: &&str| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_digit());
    if !parts.iter().all(|p| x(p) || number(p)) {
        return bad();
    }
    if let Some(q) = qualifier {
        // Prerelease and build identifiers: alphanumerics, hyphens and dots.
        let ok = q.len() > 1
            && q[1..].split(['.', '+']).all(|id| !id.is_empty())
            && q.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'+'));
        if !ok || parts.len() != 3 {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn npm_ranges_and_tags_pass_and_other_specs_do_not() {
        for ok in [
            "",
            "*",
            "latest",
            "next",
            "1",
            "1.2",
            "1.2.3",
            "^1.2.3",
            "~1.2",
            "1.x",
            "1.2.X",
            ">=1.0.0 <2.0.0",
            ">= 1.0.0",
            "1.0.0 - 2.0.0",
            "^1 || ^2",
            "v1.2.3",
            "=1.2.3",
            "1.2.3-beta.1",
            "^0.0.1-rc.1+sha.5",
            "~> 1.2",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "git+https://github.com/a/b.git",
            "file:../x",
            "npm:other@1",
            "https://x.example/a.tgz",
            "a/b",
            "1.2.3.4",
            "^1.2.3-",
            ">=",
            "1..2",
            &"1".repeat(300),
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
