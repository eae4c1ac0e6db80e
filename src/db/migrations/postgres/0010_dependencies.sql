-- Each package's newest version's dependencies in its own registry (SPEC
-- section 19's dependents), keyed like packages (db::Space). Derived from
-- the index by the package derivation's callers (a write group, the
-- retries, recovery, the static job), which keep it current.
CREATE TABLE package_dependencies (
    key TEXT NOT NULL,             -- the dependent's key
    name TEXT NOT NULL,            -- the dependent as the index spells it
    dependency TEXT NOT NULL,      -- the dependency's key
    dependency_name TEXT NOT NULL, -- as the dependent names it (its index file's name)
    PRIMARY KEY (key, dependency)
);
CREATE INDEX package_dependencies_dependency ON package_dependencies (dependency);
