//! Running chizu as a service: accounts in their own file beside the map
//! file, readiness for load balancers, and a SIGTERM that lets the requests
//! in flight finish.

mod common;
use common::*;
use std::io::Read;

#[test]
fn accounts_readiness_and_a_graceful_stop() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let token = city.user_with_token("kato", &["staff", "planning"]);
    let store = city.store();
    // The map file (what planners open in QGIS) holds map data only. (On
    // PostgreSQL the accounts are tables of the database: postgis_e2e.rs.)
    if !on_postgres() {
        let tables = run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                "-sql",
                "SELECT name FROM sqlite_master WHERE name LIKE 'chizu%'",
                store.to_str().unwrap(),
            ],
        );
        assert!(tables.contains("chizu_layers"), "{tables}");
        for table in [
            "chizu_users",
            "chizu_sessions",
            "chizu_tokens",
            "chizu_audit",
        ] {
            assert!(!tables.contains(table), "{table} in the map file: {tables}");
        }
        let accounts = city.path().join("city.accounts.sqlite");
        assert!(accounts.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&accounts).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the accounts file is its owner's only");
        }
    }

    let mut server = Server::start(&store);
    let ready = server.get("/ready");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    // The token made by the CLI works against the server (same accounts file).
    let bearer = format!("Bearer {token}");
    let me = server
        .get_with("/auth/me", &[("authorization", &bearer)])
        .json();
    assert_eq!(me["user"], "kato");

    // SIGTERM while a whole-layer export streams: the export is complete.
    let url = format!("{}/ogc/collections/parcels/items?f=csv", server.base);
    let response = ureq::get(&url)
        .set("authorization", &bearer)
        .call()
        .expect("export starts");
    let expected: usize = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT COUNT(*) AS n FROM parcels",
            store.to_str().unwrap(),
        ],
    )
    .lines()
    .find_map(|l| l.split_once(" = ").map(|(_, v)| v.trim().parse().unwrap()))
    .unwrap();
    server.terminate();
    let mut body = String::new();
    response
        .into_reader()
        .read_to_string(&mut body)
        .expect("the export finishes after SIGTERM");
    // A header line and one line per parcel (values hold no newlines).
    assert_eq!(body.trim_end().lines().count(), expected + 1);
    let status = server.wait();
    assert!(
        status.success(),
        "chizu exits cleanly on SIGTERM: {status:?}"
    );
}
