//! The state database's functions on both engines (testdb runs each body
//! on SQLite and on a real Postgres), the writers' exclusion across
//! connections, and the migrations.

const P: super::Space = super::Space::Public;
use super::testdb::{each, each_target, pg::Postgres};
use super::*;

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).unwrap()
}

/// A caller for a user, as a password session would be.
fn person(user: &User) -> Caller {
    Caller {
        user: user.clone(),
        token_id: None,
        scopes: vec![],
        packages: vec![],
        org: None,
        provenance: None,
    }
}

#[test]
fn users_tokens_packages_versions_and_counters() {
    each(|conn| {
        let token = add_user(conn, "ann", Some("ann@example.org")).unwrap();
        let ann = authenticate(conn, &token).unwrap().expect("the first token authenticates");
        assert_eq!((ann.user.login.as_str(), ann.scopes.len()), ("ann", ALL_SCOPES.len()));
        add_user(conn, "bob", None).unwrap();
        let bob = find_user(conn, "BOB").unwrap().unwrap();

        create_package(conn, &P, "Web_Kit", &ann, None).unwrap();
        assert_eq!(find_package(conn, &P, "web-kit").unwrap().as_deref(), Some("Web_Kit"));
        assert_eq!(
            find_confusable(conn, &P, "web-klt").unwrap().as_deref(),
            Some("Web_Kit"),
            "l looks like i"
        );
        assert_eq!(find_confusable(conn, &P, "web_kit").unwrap(), None, "the same package");
        assert!(
            create_package(conn, &P, "web-kit", &person(&bob), None).is_err(),
            "a name is registered once"
        );
        add_owner(conn, &P, "web-kit", bob.id).unwrap();
        add_owner(conn, &P, "web-kit", bob.id).unwrap();
        assert_eq!(owners(conn, &P, "web_kit").unwrap(), ["ann", "bob"]);
        remove_owner(conn, &P, "web-kit", ann.user.id).unwrap();
        assert!(
            !is_owner(conn, &P, "web-kit", ann.user.id).unwrap()
                && is_owner(conn, &P, "web-kit", bob.id).unwrap()
        );

        assert_eq!(counts(conn).unwrap(), (0, 0));
        for (i, vers) in ["1.0.0", "1.1.0", "2.0.0+build"].into_iter().enumerate() {
            record_version(conn, &P, "web-kit", &v(vers), &format!("{i:064}"), &now(), bob.id).unwrap();
        }
        assert!(version_burned(conn, &P, "web-kit", "2.0.0").unwrap());
        assert!(record_version(conn, &P, "web-kit", &v("2.0.0"), "x", &now(), bob.id).is_err(), "burned");
        assert_eq!(counts(conn).unwrap(), (1, 3));
        let recent: Vec<String> = recent_versions(conn, &P, 2).unwrap().into_iter().map(|r| r.vers).collect();
        assert_eq!(recent, ["2.0.0+build", "1.1.0"], "newest first, in the order recorded");
        mark_version_deleted(conn, &P, "web-kit", "1.0.0").unwrap();
        assert_eq!(counts(conn).unwrap(), (1, 2));
        assert_eq!(recently_deleted(conn, &P, 5).unwrap()[0].vers, "1.0.0");
        assert!(version_burned(conn, &P, "web-kit", "1.0.0").unwrap(), "a deleted number stays burned");
        unmark_version_deleted(conn, &P, "web-kit", "1.0.0").unwrap();
        assert!(blob_in_use(conn, &P, &format!("{:064}", 0)).unwrap());
        forget_version(conn, "web-kit", "2.0.0").unwrap();
        forget_version(conn, "web-kit", "1.1.0").unwrap();
        forget_version(conn, "web-kit", "1.0.0").unwrap();
        assert_eq!(counts(conn).unwrap(), (0, 0), "the last version gone, the package is no longer live");

        let id = audit(
            conn,
            &AuditEntry {
                user_id: Some(bob.id),
                token_id: None,
                action: "yank",
                target: "t",
                addr: None,
                outcome: "ok",
            },
        )
        .unwrap();
        let second = audit(
            conn,
            &AuditEntry {
                user_id: None,
                token_id: None,
                action: "a",
                target: "t",
                addr: None,
                outcome: "ok",
            },
        )
        .unwrap();
        assert!(second > id);
        forget_audit(conn, second).unwrap();

        add_pending_effect(conn, &P, "web-kit", "first").unwrap();
        add_pending_effect(conn, &P, "web-kit", "second").unwrap();
        add_pending_effect(conn, &P, "owners:web-kit", "x").unwrap();
        assert_eq!(
            pending_effects(conn, &P).unwrap(),
            [("owners:web-kit".to_string(), "x".to_string()), ("web-kit".to_string(), "second".to_string())]
        );
        clear_pending_effect(conn, &P, "web-kit").unwrap();
        clear_pending_effect(conn, &P, "owners:web-kit").unwrap();
        assert!(pending_effects(conn, &P).unwrap().is_empty());
    });
}

#[test]
fn tokens_export_and_erasure() {
    each(|conn| {
        let first = add_user(conn, "ann", None).unwrap();
        let ann = authenticate(conn, &first).unwrap().unwrap();
        let mut spec = TokenSpec {
            label: "ci".into(),
            scopes: vec!["yank".into()],
            packages: vec!["web-*".into()],
            expires_at: Some("2999-01-01T00:00:00Z".into()),
        };
        spec.validate(&ann, ALL_SCOPES).unwrap();
        let (meta, key) = create_token(conn, ann.user.id, &spec).unwrap();
        assert_eq!((meta.label.as_str(), meta.packages.clone()), ("ci", vec!["web-*".to_string()]));
        let narrow = authenticate(conn, &key).unwrap().unwrap();
        assert_eq!(narrow.token_id, Some(meta.id));
        touch_tokens(conn, &[(meta.id, now())]).unwrap();
        assert!(list_tokens(conn, ann.user.id).unwrap().iter().any(|t| t.last_used_at.is_some()));
        assert!(revoke_token(conn, ann.user.id, meta.id).unwrap());
        assert!(!revoke_token(conn, ann.user.id, meta.id).unwrap());
        assert!(authenticate(conn, &key).unwrap().is_none());

        create_package(conn, &P, "kit", &ann, None).unwrap();
        record_version(conn, &P, "kit", &v("0.1.0"), "ab", &now(), ann.user.id).unwrap();
        record_version(conn, &P, "kit", &v("0.2.0"), "cd", &now(), ann.user.id).unwrap();
        let doc = export(conn, ann.user.id).unwrap();
        assert_eq!(doc["user"]["login"], "ann");
        assert_eq!(doc["user"]["disabled"], false);
        assert_eq!(doc["tokens"].as_array().unwrap().len(), 2);
        let versions: Vec<&str> = doc["packages"][0]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["0.1.0", "0.2.0"]);

        let (_, left) = mark_for_deletion(conn, ann.user.id).unwrap();
        assert_eq!(left, ["kit"]);
        assert!(authenticate(conn, &first).unwrap().is_none());
        conn.execute("UPDATE users SET delete_after = '2000-01-01T00:00:00Z'", params![]).unwrap();
        assert_eq!(purge_accounts(conn).unwrap(), ["ann"]);
        assert!(find_user(conn, "ann").unwrap().is_none());
    });
}

#[test]
fn listings_sort_bytewise_on_both_engines() {
    each(|conn| {
        for login in ["b_x", "b-x", "a", "B"] {
            add_user(conn, login, None).unwrap();
        }
        let logins: Vec<String> = list_users(conn).unwrap().into_iter().map(|(u, _)| u.login).collect();
        assert_eq!(logins, ["B", "a", "b-x", "b_x"]);
    });
}

#[test]
fn blobs_and_upserts_of_the_stats_tables() {
    each(|conn| {
        let put = "INSERT INTO stats_seen (day, bucket, fps) VALUES (?1, ?2, ?3)
                   ON CONFLICT (day, bucket) DO UPDATE SET fps = excluded.fps";
        conn.execute(put, params![20_000u32, 255u8, vec![1u8, 2, 3]]).unwrap();
        conn.execute(put, params![20_000u32, 255u8, vec![0u8, 255, 7, 9]]).unwrap();
        let fps: Vec<u8> = conn
            .query_row(
                "SELECT fps FROM stats_seen WHERE day = ?1 AND bucket = ?2",
                params![20_000u32, 255u8],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fps, [0, 255, 7, 9]);
        let add = "INSERT INTO stats_daily (day, package, vers, count) VALUES (?1, ?2, ?3, ?4)
                   ON CONFLICT (day, package, vers) DO UPDATE SET count = stats_daily.count + excluded.count";
        conn.execute(add, params![1i64, "kit", "1.0.0", 2i64]).unwrap();
        conn.execute(add, params![1i64, "kit", "1.0.0", 3i64]).unwrap();
        let n: i64 = conn.query_row("SELECT count FROM stats_daily", params![], |r| r.get(0)).unwrap();
        assert_eq!(n, 5);
        let through: Option<i64> =
            conn.query_row("SELECT MAX(day) FROM stats_seen WHERE day < 0", params![], |r| r.get(0)).unwrap();
        assert_eq!(through, None);
    });
}

/// What publish relies on: a writer's transaction sees every earlier
/// writer's rows, and a second writer waits for the first, on one database
/// from two connections (two servers).
#[test]
fn writers_take_turns_and_a_version_is_burned_once() {
    each_target(|target| {
        let a = open(target).unwrap();
        add_user(&a, "ann", None).unwrap();
        let ann = find_user(&a, "ann").unwrap().unwrap();
        create_package(&a, &P, "kit", &person(&ann), None).unwrap();
        let ann = ann.id;

        let txn = a.transaction_exclusive().unwrap();
        assert!(!version_burned(&txn, &P, "kit", "1.0.0").unwrap());
        record_version(&txn, &P, "kit", &v("1.0.0"), "aa", &now(), ann).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = target.clone();
        let b = std::thread::spawn(move || {
            let b = open(&other).unwrap();
            let txn = b.transaction_exclusive().unwrap();
            tx.send("began").unwrap();
            let burned = version_burned(&txn, &P, "kit", "1.0.0").unwrap();
            // The primary key refuses the number whatever a writer checked.
            let again = record_version(&txn, &P, "kit", &v("1.0.0+other"), "bb", &now(), ann);
            (burned, again.is_err())
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(rx.try_recv().is_err(), "the second writer began while the first was open ({target:?})");
        txn.commit().unwrap();
        assert_eq!(b.join().unwrap(), (true, true), "{target:?}");
        assert_eq!(counts(&a).unwrap(), (1, 1));
    });
}

#[test]
fn a_failed_statement_makes_the_commit_fail_not_a_silent_rollback() {
    each(|conn| {
        add_user(conn, "ann", None).unwrap();
        let txn = conn.transaction().unwrap();
        txn.execute("UPDATE users SET email = 'x'", params![]).unwrap();
        assert!(txn
            .execute("INSERT INTO users (login, created_at) VALUES ('ann', 'now')", params![])
            .is_err());
        match conn.engine() {
            // Postgres aborts the whole transaction: its commit must fail.
            Engine::Postgres => assert!(txn.commit().is_err()),
            // SQLite took back the one statement: the rest commits.
            Engine::Sqlite => txn.commit().unwrap(),
        }
        let email: Option<String> =
            conn.query_row("SELECT email FROM users", params![], |r| r.get(0)).unwrap();
        assert_eq!(email.is_some(), conn.engine() == Engine::Sqlite);
    });
}

#[test]
fn migrations_are_recorded_once_and_reopening_changes_nothing() {
    each_target(|target| {
        let first = open(target).unwrap();
        add_user(&first, "ann", None).unwrap();
        let second = open(target).unwrap();
        let latest = migrate::latest(second.engine());
        assert_eq!(migrate::version(&second).unwrap(), latest);
        let n: i64 =
            second.query_row("SELECT COUNT(*) FROM schema_migrations", params![], |r| r.get(0)).unwrap();
        assert_eq!(n, migrate::known(second.engine()));
        assert!(find_user(&second, "ann").unwrap().is_some());
        second
            .execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')", params![])
            .unwrap();
        let err = open(target).err().expect("a database newer than the code is refused");
        assert!(format!("{err:#}").contains("newer than this cairn"), "{err:#}");
    });
}

/// Several servers starting at once on one new Postgres database: one
/// migrates, the others wait on the advisory lock and find it done.
#[test]
fn concurrent_migrators_on_postgres_apply_each_version_once() {
    let url = Postgres::shared().create_database();
    let target = Target::postgres(&url);
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let t = target.clone();
            std::thread::spawn(move || {
                open(&t).map(|c| migrate::version(&c).unwrap()).map_err(|e| format!("{e:#}"))
            })
        })
        .collect();
    for h in opened {
        assert_eq!(h.join().unwrap(), Ok(migrate::latest(Engine::Postgres)));
    }
    let conn = open(&target).unwrap();
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM schema_migrations", params![], |r| r.get(0)).unwrap();
    assert_eq!(n, migrate::known(Engine::Postgres));
}

/// A database made by cairn before versioned migrations (the schema text it
/// ran at every open, testdata/legacy_schema.sql) with rows in every kind
/// of table: it migrates to the newest version with nothing lost, the order
/// versions were recorded in kept.
#[test]
fn a_database_of_the_unversioned_schema_migrates_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(include_str!("testdata/legacy_schema.sql")).unwrap();
        old.execute_batch(
            "INSERT INTO users (login, created_at, password_hash) VALUES ('ann', '2024-01-01T00:00:00Z', 'phc');
             INSERT INTO tokens (user_id, hash, label, scopes, packages, created_at)
                 VALUES (1, 'h', 'first', '[\"yank\"]', '[]', '2024-01-01T00:00:00Z');
             INSERT INTO packages VALUES ('kit', 'Kit', 'kit', '2024-01-01T00:00:00Z');
             INSERT INTO owners VALUES ('kit', 1, '2024-01-01T00:00:00Z');
             INSERT INTO versions (package, version, vers, sha256, published_at, publisher)
                 VALUES ('kit', '0.2.0', '0.2.0', 'b', '2024-01-02T00:00:00Z', 1),
                        ('kit', '0.1.0', '0.1.0', 'a', '2024-01-01T00:00:00Z', 1),
                        ('kit', '0.3.0', '0.3.0', 'c', '2024-01-03T00:00:00Z', 1);
             UPDATE counters SET value = 3 WHERE name = 'versions';
             UPDATE counters SET value = 1 WHERE name = 'packages';
             INSERT INTO stats_seen VALUES (19000, 7, x'00ff10');
             INSERT INTO pending_effects VALUES ('kit', 'e', '2024-01-01T00:00:00Z');
             INSERT INTO sessions (hash, user_id, created_at, seen) VALUES ('s', 1, 'now', 5);",
        )
        .unwrap();
    }
    let conn = open_sqlite(&path).unwrap();
    assert_eq!(migrate::version(&conn).unwrap(), migrate::latest(Engine::Sqlite));
    let (user, hash) = account::find_with_password(&conn, "ANN").unwrap().unwrap();
    assert_eq!((user.id, hash.as_deref()), (1, Some("phc")));
    assert_eq!(owners(&conn, &P, "kit").unwrap(), ["ann"]);
    assert_eq!(counts(&conn).unwrap(), (1, 3));
    let order: Vec<String> = recent_versions(&conn, &P, 10).unwrap().into_iter().map(|r| r.vers).collect();
    assert_eq!(order, ["0.3.0", "0.1.0", "0.2.0"], "newest recorded first, as the rowid had it");
    record_version(&conn, &P, "kit", &v("0.4.0"), "d", &now(), 1).unwrap();
    assert_eq!(recent_versions(&conn, &P, 1).unwrap()[0].vers, "0.4.0");
    let fps: Vec<u8> = conn.query_row("SELECT fps FROM stats_seen", params![], |r| r.get(0)).unwrap();
    assert_eq!(fps, [0x00, 0xff, 0x10]);
    assert_eq!(pending_effects(&conn, &P).unwrap().len(), 1);
    let sessions: i64 = conn.query_row("SELECT COUNT(*) FROM sessions", params![], |r| r.get(0)).unwrap();
    assert_eq!(sessions, 1);
    drop(conn);
    // Reopened: nothing more to apply, and the rows are still there.
    let conn = open_sqlite(&path).unwrap();
    assert_eq!(counts(&conn).unwrap(), (1, 4));
}

#[test]
fn the_configuration_names_the_database() {
    let data = std::path::Path::new("/srv/cairn");
    let mut config = crate::config::Config::default();
    assert_eq!(Target::of(data, &config).unwrap(), Target::Sqlite(data.join("state.db")));
    config.database.url = Some("postgres://cairn:secret@db:5432/cairn".into());
    let target = Target::of(data, &config).unwrap();
    assert_eq!(target, Target::postgres("postgres://cairn:secret@db:5432/cairn"));
    assert_eq!(target.describe(), "postgres://cairn@db:5432/cairn", "no password in logs");
    config.database.url = Some("mysql://db".into());
    assert!(Target::of(data, &config).is_err());
}

/// A Postgres connection that was lost answers as unavailable (publish's
/// 503), stops being writable (its holder opens a new one), and a new one
/// works; a refusal of the data (a constraint) is no unavailability.
#[test]
fn a_lost_postgres_connection_is_unavailable_and_replaced() {
    let target = Target::postgres(&Postgres::shared().create_database());
    let conn = open(&target).unwrap();
    add_user(&conn, "ann", None).unwrap();
    let dup = add_user(&conn, "ann", None).unwrap_err();
    assert_eq!(conn::unavailable(&dup), None, "{dup:#}");
    let pid: i32 = conn.query_row("SELECT pg_backend_pid()", params![], |r| r.get::<i32>(0)).unwrap();
    let other = open(&target).unwrap();
    other.query_row("SELECT pg_terminate_backend(?1)", params![pid], |_| Ok(())).unwrap();
    let lost = find_user(&conn, "ann").unwrap_err();
    assert!(conn::unavailable(&lost).is_some(), "{lost:#}");
    assert!(!conn.writable(), "the failed call marks the connection lost");
    let again = open(&target).unwrap();
    assert!(again.writable() && find_user(&again, "ann").unwrap().is_some());
}

/// Organisations on both engines: roles, the last owner, owners listed with
/// `org:`, acting through an organisation, and organisation tokens.
#[test]
fn organisations_roles_owners_and_tokens() {
    each(|conn| {
        let token = add_user(conn, "ann", None).unwrap();
        let ann = authenticate(conn, &token).unwrap().unwrap();
        add_user(conn, "bob", None).unwrap();
        let bob = find_user(conn, "bob").unwrap().unwrap();
        let acme = org::create(conn, "acme", "Acme", false, ann.user.id).unwrap().unwrap();
        assert!(org::create(conn, "acme", "Again", false, bob.id).unwrap().is_none(), "a slug is taken once");
        assert!(org::add_member(conn, acme.id, bob.id, org::Role::Member).unwrap());
        assert!(!org::add_member(conn, acme.id, bob.id, org::Role::Admin).unwrap(), "a member once");
        assert_eq!(org::role(conn, acme.id, bob.id).unwrap(), Some(org::Role::Member));
        let last = org::set_role(conn, acme.id, ann.user.id, Some(org::Role::Admin)).unwrap();
        assert_eq!(last, Err(org::Refusal::LastOwner));
        assert_eq!(org::sole_owner_of(conn, ann.user.id).unwrap(), ["acme"]);

        create_package(conn, &P, "kit", &ann, None).unwrap();
        org::add_package(conn, &P, "kit", acme.id).unwrap();
        assert_eq!(owners(conn, &P, "kit").unwrap().len(), 2);
        assert!(owners(conn, &P, "kit").unwrap().contains(&"org:acme".to_string()));
        assert!(!org::acts_for(conn, &P, "kit", bob.id).unwrap(), "a member does not act as owner");
        org::set_role(conn, acme.id, bob.id, Some(org::Role::Admin)).unwrap().unwrap();
        assert!(org::acts_for(conn, &P, "kit", bob.id).unwrap());
        assert!(org::has_published(conn, acme.id).is_ok_and(|p| !p));

        let mut spec = TokenSpec {
            label: "ci".into(),
            scopes: vec!["publish-update".into(), "read".into()],
            packages: vec![],
            expires_at: None,
        };
        spec.validate(&ann, org::TOKEN_SCOPES).unwrap();
        let (meta, key) = org::create_token(conn, acme.id, ann.user.id, &spec).unwrap();
        let ci = authenticate(conn, &key).unwrap().unwrap();
        assert_eq!(ci.org.as_ref().map(|o| o.slug.as_str()), Some("acme"));
        assert_eq!(ci.login(), "org:acme");
        assert!(list_tokens(conn, ann.user.id).unwrap().iter().all(|t| t.id != meta.id), "not the admin's");
        assert!(!revoke_token(conn, ann.user.id, meta.id).unwrap(), "revoked through the organisation only");
        assert_eq!(org::tokens(conn, acme.id).unwrap().len(), 1);
        assert!(org::revoke_token(conn, acme.id, meta.id).unwrap());
        assert!(authenticate(conn, &key).unwrap().is_none());
        let export = export(conn, bob.id).unwrap();
        assert_eq!(export["organisations"][0]["role"], "admin");
    });
}

#[test]
fn quota_usage_sums_an_owners_live_versions_on_both_engines() {
    each(|conn| {
        let token = add_user(conn, "ann", None).unwrap();
        let ann = authenticate(conn, &token).unwrap().unwrap();
        create_package(conn, &P, "kit", &ann, None).unwrap();
        let owner = quota::Owner::User { id: ann.user.id, login: "ann".into() };
        assert_eq!(quota::usage(conn, &owner).unwrap(), 0);
        for (i, vers) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
            record_version(conn, &P, "kit", &v(vers), &format!("{i:064}"), &now(), ann.user.id).unwrap();
        }
        assert_eq!(quota::unsized_versions(conn, &P).unwrap().len(), 2);
        quota::record_size(conn, &P, "kit", "1.0.0", 3_000_000_000).unwrap();
        quota::record_size(conn, &P, "kit", "1.1.0", 5).unwrap();
        assert_eq!(quota::usage(conn, &owner).unwrap(), 3_000_000_005, "a sum past 32 bits");
        assert_eq!(quota::owners(conn, &P, "kit").unwrap(), std::slice::from_ref(&owner));
        assert!(quota::unsized_versions(conn, &P).unwrap().is_empty());
    });
}

#[test]
fn invitations_wait_are_replaced_withdrawn_and_expire_on_both_engines() {
    use super::invitation;
    each(|conn| {
        let token = add_user(conn, "ann", None).unwrap();
        let ann = authenticate(conn, &token).unwrap().unwrap();
        let acme = org::create(conn, "acme", "Acme", true, ann.user.id).unwrap().unwrap();
        let (first, _) =
            invitation::create(conn, acme.id, "bob@x.test", org::Role::Member, ann.user.id).unwrap();
        let (second, expires) =
            invitation::create(conn, acme.id, "bob@x.test", org::Role::Admin, ann.user.id).unwrap();
        assert!(invitation::find(conn, &first).unwrap().is_none(), "inviting again replaces the link");
        let found = invitation::find(conn, &second).unwrap().unwrap();
        assert_eq!(
            (found.org_slug.as_str(), found.role, found.invited_by.as_str()),
            ("acme", org::Role::Admin, "ann")
        );
        assert!(!found.expired() && found.expires_at == expires);
        let pending = invitation::pending(conn, acme.id).unwrap();
        assert_eq!(
            pending.iter().map(|p| (p.email.as_str(), p.role)).collect::<Vec<_>>(),
            [("bob@x.test", "admin")]
        );

        conn.execute("UPDATE invitations SET expires_at = ?1", params!["2020-01-01T00:00:00Z"]).unwrap();
        assert!(invitation::find(conn, &second).unwrap().unwrap().expired());
        assert!(invitation::pending(conn, acme.id).unwrap().is_empty());
        assert!(
            !invitation::withdraw(conn, acme.id, "bob@x.test").unwrap(),
            "an expired one is not withdrawn"
        );
        // A new invitation clears the expired ones.
        let (third, _) =
            invitation::create(conn, acme.id, "cy@x.test", org::Role::Member, ann.user.id).unwrap();
        assert!(invitation::find(conn, &second).unwrap().is_none());
        assert!(invitation::withdraw(conn, acme.id, "cy@x.test").unwrap());
        assert!(invitation::find(conn, &third).unwrap().is_none());
        invitation::create(conn, acme.id, "dee@x.test", org::Role::Member, ann.user.id).unwrap();
        invitation::remove_all(conn, acme.id).unwrap();
        org::delete(conn, acme.id).unwrap();
    });
}
