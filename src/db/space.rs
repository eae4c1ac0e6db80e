//! A registry's kind (SPEC section 15): the public registry, or a private
//! organisation's own. Every rule that differs between them is asked of
//! this one value (its name space in the tables, its events, whether it
//! is pushed and purged outward, its owners, what fsck compares). The tables keyed by package hold
//! both: a private organisation's keys are `@{slug}/{canonical name}`, and
//! no canonical name starts with `@`, so the spaces never meet.

/// The SQL condition "`$column` holds a key of the space whose
/// [`Space::key_prefix`] is bound as parameter `?$n`", as a literal: every
/// query names its space with a bound value, none is assembled at run time.
/// (The public registry's keys are those without the `@` no canonical name
/// starts with.)
macro_rules! in_space {
    ($column:literal, $n:literal) => {
        concat!(
            "(CASE WHEN ?",
            $n,
            " = '' THEN ",
            $column,
            " NOT LIKE '@%' ELSE substr(",
            $column,
            ", 1, length(?",
            $n,
            ")) = ?",
            $n,
            " END)"
        )
    };
}
pub(crate) use in_space;

/// Whose packages: the public registry's, or a private organisation's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Space {
    #[default]
    Public,
    /// A private organisation, by slug.
    Org(String),
}

impl Space {
    /// The package's key in this space (the tables' `package`/`key`).
    pub fn key(&self, name: &str) -> String {
        self.within(crate::name::canonical(name))
    }

    /// The look-alike key of a name in this space.
    pub fn confusable(&self, name: &str) -> String {
        self.within(crate::name::confusable(name))
    }

    fn within(&self, key: String) -> String {
        match self {
            Space::Public => key,
            Space::Org(slug) => format!("@{slug}/{key}"),
        }
    }

    /// What its keys start with: nothing for the public registry,
    /// `@{slug}/` for an organisation's; bound as the parameter of
    /// [`in_space!`].
    pub fn key_prefix(&self) -> String {
        self.within(String::new())
    }

    /// Whether its changes are public events (the event log, webhooks,
    /// the event stream): a private organisation's never are.
    pub fn emits_events(&self) -> bool {
        matches!(self, Space::Public)
    }

    /// Whether its files go out to the world beyond its own URLs: purged
    /// from a CDN in front (which serves only public reads) and its index
    /// pushed to `[index] remotes`.
    pub fn published_outward(&self) -> bool {
        matches!(self, Space::Public)
    }

    /// Whether its packages' owners are listed one by one: a private
    /// organisation owns every package of its registry, and its admins act.
    pub fn has_own_owners(&self) -> bool {
        matches!(self, Space::Public)
    }

    /// Whether accounts are managed here (deleted, say): the public
    /// registry's, never a private organisation's.
    pub fn keeps_accounts(&self) -> bool {
        matches!(self, Space::Public)
    }

    /// Whether fsck compares its derived files (through the static job's
    /// check): a private registry's are rewritten on every repair instead.
    pub fn derived_files_checked(&self) -> bool {
        matches!(self, Space::Public)
    }

    /// An audit row's target, naming a private organisation's registry.
    pub fn audit_target(&self, target: String) -> String {
        match self {
            Space::Public => target,
            Space::Org(slug) => format!("org:{slug} {target}"),
        }
    }

    /// The private organisation's slug; `None` for the public registry.
    pub fn org(&self) -> Option<&str> {
        match self {
            Space::Public => None,
            Space::Org(slug) => Some(slug),
        }
    }

    /// A key of the effects' pending table in this space (the same
    /// prefix as a package's key).
    pub fn pending_key(&self, key: &str) -> String {
        self.within(key.to_string())
    }

    /// A key of the tables (a package's, a pending effect's) without the
    /// space's prefix, if it is this space's.
    pub fn own<'k>(&self, key: &'k str) -> Option<&'k str> {
        match self {
            Space::Public => (!key.starts_with('@')).then_some(key),
            Space::Org(slug) => key.strip_prefix('@')?.strip_prefix(slug.as_str())?.strip_prefix('/'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Space;

    #[test]
    fn spaces_never_share_a_key() {
        let acme = Space::Org("acme".into());
        assert_eq!(Space::Public.key("Foo_Bar"), "foo-bar");
        assert_eq!(acme.key("Foo_Bar"), "@acme/foo-bar");
        assert_eq!(acme.own(&acme.pending_key("fo/o-/foo")), Some("fo/o-/foo"));
        assert_eq!(Space::Public.own(&acme.pending_key("x")), None);
        assert_eq!(Space::Org("acm".into()).own("@acme/x"), None);
        assert_eq!(acme.own("owners:x"), None);
        assert_eq!((acme.key_prefix(), Space::Public.key_prefix()), ("@acme/".to_string(), String::new()));
    }
}
