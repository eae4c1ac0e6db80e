//! The web site's static files, copied into the static root by `init`.

pub const INDEX_HTML: &str = include_str!("../site/index.html");
