//! Helpers for end-to-end tests: a sample city in a temporary directory, the real
//! `chizu` binary, and a server on a free port that is stopped when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn chizu_bin() -> &'static str {
    env!("CARGO_BIN_EXE_chizu")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`, present beside the project on developer machines and in CI.
pub fn shared_data() -> PathBuf {
    repo().join("../shared/data")
}

/// Runs `chizu args...` in `dir`, returning its output.
pub fn chizu(dir: &Path, args: &[&str]) -> Output {
    Command::new(chizu_bin())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("chizu runs")
}

pub fn chizu_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(chizu_bin())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chizu runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A working directory laid out like the repository: `layers/` (copied) and
/// `data-samples/` (generated), so the layer files' relative paths hold.
pub struct City {
    pub dir: tempfile::TempDir,
    /// The database of a PostGIS store (`CHIZU_TEST_STORE=postgres`).
    pub postgres: Option<Postgres>,
}

/// Whether the suite runs on PostGIS (`CHIZU_TEST_STORE=postgres`) rather
/// than on the embedded GeoPackage store.
pub fn on_postgres() -> bool {
    std::env::var("CHIZU_TEST_STORE").is_ok_and(|v| v == "postgres")
}

impl City {
    /// A city on the store the suite runs on.
    pub fn new() -> City {
        let mut city = City::on_gpkg();
        if on_postgres() {
            city.postgres = Some(Postgres::start());
        }
        city
    }

    /// A city on a throwaway PostgreSQL/PostGIS cluster of its own.
    pub fn on_postgis() -> City {
        let mut city = City::on_gpkg();
        city.postgres = Some(Postgres::start());
        city
    }

    /// A city on a GeoPackage store.
    pub fn on_gpkg() -> City {
        let dir = tempfile::tempdir().expect("temp dir");
        let layers = dir.path().join("layers");
        std::fs::create_dir_all(&layers).unwrap();
        for entry in std::fs::read_dir(repo().join("layers")).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, layers.join(p.file_name().unwrap())).unwrap();
        }
        let samples = dir.path().join("data-samples");
        std::fs::create_dir_all(&samples).unwrap();
        std::fs::copy(
            repo().join("data-samples/kashima_outline.geojson"),
            samples.join("kashima_outline.geojson"),
        )
        .unwrap();
        let out = chizu(dir.path(), &["samples"]);
        assert!(out.status.success(), "{}", text(&out));
        City {
            dir,
            postgres: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `--store` of this city: a GeoPackage file, or a PostgreSQL URL
    /// (as a path, so that the tests pass either the same way).
    pub fn store(&self) -> PathBuf {
        match &self.postgres {
            Some(pg) => PathBuf::from(&pg.url),
            None => self.path().join("city.gpkg"),
        }
    }

    /// Adds a user with `roles` and returns an API token for it.
    pub fn user_with_token(&self, name: &str, roles: &[&str]) -> String {
        let store = self.store();
        let mut args = vec!["user", "add", name, "--store", store.to_str().unwrap()];
        for r in roles {
            args.extend(["--role", r]);
        }
        let out = chizu_with_stdin(self.path(), &args, &format!("{name}-secret-password\n"));
        assert!(out.status.success(), "{}", text(&out));
        let out = chizu(
            self.path(),
            &[
                "token",
                "create",
                "--user",
                name,
                "--store",
                store.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn ingest(&self, args: &[&str]) -> Output {
        let store = self.store();
        let mut all = vec!["ingest", "--store", store.to_str().unwrap()];
        all.extend_from_slice(args);
        chizu(self.path(), &all)
    }
}

/// `chizu serve` on a free port; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(store: &Path) -> Server {
        Server::start_with_log(store, None)
    }

    /// Like [`start`](Self::start), with the server's log written to `log`.
    pub fn start_with_log(store: &Path, log: Option<&Path>) -> Server {
        Server::start_with_args(store, &[], log)
    }

    /// Like [`start`](Self::start), with more `chizu serve` arguments.
    pub fn start_with_args(store: &Path, extra: &[&str], log: Option<&Path>) -> Server {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(chizu_bin())
            .args([
                "serve",
                "--store",
                store.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("chizu listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server { child, base }
    }

    pub fn get(&self, path: &str) -> Response {
        get(&format!("{}{path}", self.base), &[])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a service manager does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the server to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("the server exits")
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(&format!("{}{path}", self.base), headers)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers, None)
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Response {
    request("POST", url, headers, Some(body))
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let mut req = ureq::request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    Response {
        status,
        headers,
        body,
    }
}

/// Decodes MVT files with Python's mapbox-vector-tile (tests/decode_mvt.py).
pub fn decode_with_python(files: &[PathBuf]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/decode_mvt.py"))
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("decoder prints JSON")
}

/// Runs a command and returns its stdout, failing the test on error.
pub fn run(cmd: &str, args: &[&str]) -> String {
    // GDAL opens a PostgreSQL store by its own name for it: the `chizu`
    // schema's views (one per layer, its current version), `fid` as the FID.
    let args: Vec<String> = (args.iter())
        .map(|a| match a.strip_prefix("postgres://postgres@127.0.0.1:") {
            Some(rest) if cmd.starts_with("ogr") => {
                let (port, db) = rest.split_once('/').unwrap();
                format!("PG:host=127.0.0.1 port={port} dbname={db} user=postgres schemas=chizu")
            }
            _ => a.to_string(),
        })
        .collect();
    let out = Command::new(cmd)
        .args(&args)
        .env("PGSQL_OGR_FID", "fid")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tile (z, x, y) holding longitude/latitude.
pub fn tile_of(lon: f64, lat: f64, z: u8) -> (u8, u32, u32) {
    let (mx, my) = chizu_core::tile::lonlat_to_mercator(lon, lat);
    let t = chizu_core::TileCoord::containing(z, mx, my);
    (z, t.x(), t.y())
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A throwaway PostgreSQL 15 cluster with PostGIS on a free port, in a
/// temporary directory; stopped and removed on drop. Runs the server as the
/// `postgres` user when the tests run as root (initdb refuses root).
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        if is_root() {
            run("chmod", &["755", dir.path().to_str().unwrap()]);
            run(
                "install",
                &[
                    "-d",
                    "-o",
                    "postgres",
                    "-g",
                    "postgres",
                    data.to_str().unwrap(),
                ],
            );
            run(
                "chown",
                &["postgres:postgres", dir.path().to_str().unwrap()],
            );
        }
        let status = as_postgres("initdb")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
            ])
            .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs (apt-get install postgresql-15-postgis-3)");
        assert!(status.success(), "initdb failed");
        let log = dir.path().join("server.log");
        // A free port can be taken by another test's server between the
        // probe and PostgreSQL's bind: then another port is tried.
        let mut attempts = 0;
        let port = loop {
            attempts += 1;
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c log_statement=all",
                dir.path().display()
            );
            let status = as_postgres("pg_ctl")
                .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()])
                .args(["-o", &options, "-w", "start"])
                .stdout(Stdio::null())
                .status()
                .expect("pg_ctl runs");
            if status.success() {
                break port;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempts < 5 && text.contains("Address already in use"),
                "PostgreSQL did not start: {text}"
            );
        };
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Postgres { dir, port, url }
    }

    /// The server's log: with `log_statement = all`, every statement it ran.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL with psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        run(
            "psql",
            &[
                &self.url,
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The value of `n` in a line of `ogrinfo -sql "SELECT COUNT(*) AS n ..."`
/// (`Integer` from SQLite, `Integer64` from PostgreSQL).
pub fn sql_count(line: &str) -> Option<&str> {
    let line = line.trim();
    (line.strip_prefix("n (Integer) = ")).or_else(|| line.strip_prefix("n (Integer64) = "))
}
