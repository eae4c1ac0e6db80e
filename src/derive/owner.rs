//! A package as listings and owners' pages show it ([`Summary`]), and an
//! owner's document, `api/v1/users/{login}.json`: the formats the static
//! job writes for every owner and a write group for an owner whose page
//! does not exist yet (`crate::package_files`).

use serde::Serialize;

use super::{to_bytes, Doc};
use crate::index::IndexLine;
use crate::layout::Layout;

/// A row of the listings and owners' pages (fields in key order, see
/// [`super::PackageDoc`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    created_at: &'a Option<String>,
    pub description: &'a Option<String>,
    downloads: u64,
    kind: &'a Option<String>,
    pub latest_version: &'a str,
    pub name: &'a str,
    updated_at: &'a Option<String>,
}

impl<'a> Summary<'a> {
    /// The row of a package whose newest line (see
    /// [`super::latest_version`]; else its last) is `latest`.
    pub fn new(
        latest: &'a IndexLine,
        created_at: &'a Option<String>,
        updated_at: &'a Option<String>,
        downloads: u64,
    ) -> Summary<'a> {
        Summary {
            created_at,
            description: &latest.description,
            downloads,
            kind: &latest.kind,
            latest_version: &latest.vers,
            name: &latest.name,
            updated_at,
        }
    }
}

/// `/api/v1/users/{login}.json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDoc<'a> {
    created_at: &'a str,
    login: &'a str,
    packages: &'a [Summary<'a>],
}

/// A user's document: its packages in name order.
pub fn user_doc(l: &Layout, login: &str, since: &str, packages: &[Summary]) -> Doc {
    Doc { key: l.user(login), bytes: to_bytes(&UserDoc { created_at: since, login, packages }) }
}
