//! The durable job queue: one table of videos (migrations/), in SQLite (embedded, the
//! default) or PostgreSQL (several servers, one database). A request's row is committed
//! before the reply; workers claim rows with a lease they keep renewing, so a job whose
//! worker dies goes back to the queue when its lease lapses.
//!
//! The trait is synchronous: the HTTP handlers call it through `spawn_blocking`, the
//! workers from their own threads.

use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};

/// The migrations, in order; each runs once per database (table `schema_migrations`).
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_videos.sql"))];

/// A job gives up after this many claims (a job that kills its worker every time must not
/// take the service down in a loop).
pub const MAX_ATTEMPTS: i64 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub id: String,
    pub owner: String,
    pub model: String,
    pub status: String,
    pub progress: i64,
    pub prompt: String,
    pub request: String,
    pub seconds: String,
    pub size: String,
    pub created_ms: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub remixed_from_video_id: Option<String>,
    pub worker: Option<String>,
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub output: Option<String>,
}

impl Video {
    /// A new job's row: queued, no attempt yet, created at `created_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn queued(
        id: &str,
        owner: &str,
        model: &str,
        prompt: &str,
        request: String,
        seconds: String,
        size: String,
        created_ms: i64,
    ) -> Video {
        Video {
            id: id.into(),
            owner: owner.into(),
            model: model.into(),
            status: "queued".into(),
            progress: 0,
            prompt: prompt.into(),
            request,
            seconds,
            size,
            created_ms,
            created_at: created_ms / 1000,
            completed_at: None,
            expires_at: None,
            error_code: None,
            error_message: None,
            remixed_from_video_id: None,
            worker: None,
            lease_until: None,
            attempts: 0,
            output: None,
        }
    }
}

const COLUMNS: &str = "id, owner, model, status, progress, prompt, request, seconds, size, created_ms, created_at, completed_at, expires_at, error_code, error_message, remixed_from_video_id, worker, lease_until, attempts, output";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    Asc,
    Desc,
}

/// What a lease-holding worker reports; `false` from these means the lease is gone (the
/// job was deleted, or reclaimed after this worker stalled): stop and discard the work.
pub trait Queue: Send + Sync {
    fn insert(&self, v: &Video) -> Result<()>;
    fn get(&self, id: &str) -> Result<Option<Video>>;
    /// One page of `owner`'s videos after the one with id `after`, and whether more follow.
    fn list(&self, owner: &str, after: Option<&str>, limit: usize, order: Order) -> Result<(Vec<Video>, bool)>;
    fn delete(&self, id: &str) -> Result<bool>;
    /// The oldest job for one of `models` that is queued or whose lease has lapsed, now
    /// leased to `worker` until `lease_until` (unix ms). (Servers of one service may run
    /// different models: a worker takes only jobs it can run.)
    fn claim(&self, worker: &str, now_ms: i64, lease_until: i64, models: &[String]) -> Result<Option<Video>>;
    fn renew(&self, id: &str, worker: &str, progress: i64, lease_until: i64) -> Result<bool>;
    fn complete(&self, id: &str, worker: &str, output: &str, completed_at: i64, expires_at: i64) -> Result<bool>;
    fn fail(&self, id: &str, worker: &str, code: &str, message: &str, at: i64) -> Result<bool>;
    /// The worker is shutting down: the job goes back to the queue now (not after its
    /// lease), and this attempt does not count.
    fn release(&self, id: &str, worker: &str) -> Result<bool>;
    /// Jobs over MAX_ATTEMPTS whose lease lapsed: failed, and returned.
    fn give_up(&self, now_ms: i64) -> Result<Vec<String>>;
    /// Count of videos by status.
    fn counts(&self) -> Result<Vec<(String, i64)>>;
    /// `owner`'s queued and running jobs.
    fn active(&self, owner: &str) -> Result<i64>;
    /// Completed videos whose files expired before `now` (seconds), for the sweeper.
    fn expired(&self, now: i64, limit: usize) -> Result<Vec<Video>>;
    /// The sweeper deleted the files: the row stays (its id, prompt, status) without them.
    fn clear_output(&self, id: &str) -> Result<()>;
    fn describe(&self) -> String;
}

/// Opens the queue a URL names: `sqlite://PATH` (or a plain path) or `postgres://...`.
/// Runs the migrations. Call from a blocking context (not inside an async task).
pub fn open(url: &str) -> Result<Box<dyn Queue>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(Postgres::open(url)?))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(Box::new(Sqlite::open(path)?))
    }
}

// ---------------------------------------------------------------------------------------
// SQLite

pub struct Sqlite {
    conn: Mutex<rusqlite::Connection>,
    path: String,
}

impl Sqlite {
    pub fn open(path: &str) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).with_context(|| format!("cannot open SQLite database {path}"))?;
        // WAL lets readers go on while a worker writes; FULL sync makes an accepted job
        // survive a crash of the machine, not only of the process. Several processes on
        // one machine may share the file: wait for each other's locks.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")?;
        for (version, sql) in MIGRATIONS {
            let tx = conn.unchecked_transaction()?;
            let done: i64 =
                tx.query_row("SELECT COUNT(*) FROM schema_migrations WHERE version = ?1", [version], |r| r.get(0))?;
            if done == 0 {
                tx.execute_batch(sql).with_context(|| format!("migration {version}"))?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES (?1)", [version])?;
            }
            tx.commit()?;
        }
        Ok(Sqlite { conn: Mutex::new(conn), path: path.to_string() })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn sqlite_row(r: &rusqlite::Row) -> rusqlite::Result<Video> {
    Ok(Video {
        id: r.get(0)?,
        owner: r.get(1)?,
        model: r.get(2)?,
        status: r.get(3)?,
        progress: r.get(4)?,
        prompt: r.get(5)?,
        request: r.get(6)?,
        seconds: r.get(7)?,
        size: r.get(8)?,
        created_ms: r.get(9)?,
        created_at: r.get(10)?,
        completed_at: r.get(11)?,
        expires_at: r.get(12)?,
        error_code: r.get(13)?,
        error_message: r.get(14)?,
        remixed_from_video_id: r.get(15)?,
        worker: r.get(16)?,
        lease_until: r.get(17)?,
        attempts: r.get(18)?,
        output: r.get(19)?,
    })
}

impl Queue for Sqlite {
    fn insert(&self, v: &Video) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO videos ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"),
            rusqlite::params![
                v.id, v.owner, v.model, v.status, v.progress, v.prompt, v.request, v.seconds, v.size, v.created_ms, v.created_at,
                v.completed_at, v.expires_at, v.error_code, v.error_message, v.remixed_from_video_id, v.worker, v.lease_until,
                v.attempts, v.output
            ],
        )?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Video>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM videos WHERE id = ?1"))?;
        let mut rows = st.query_map([id], sqlite_row)?;
        Ok(rows.next().transpose()?)
    }

    fn list(&self, owner: &str, after: Option<&str>, limit: usize, order: Order) -> Result<(Vec<Video>, bool)> {
        let conn = self.conn();
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        // Keyset pagination on (created_ms, id): stable while rows are added.
        let sql = format!(
            "SELECT {COLUMNS} FROM videos WHERE owner = ?1 AND (?2 IS NULL OR (created_ms, id) {cmp} (SELECT created_ms, id FROM videos WHERE id = ?2)) ORDER BY created_ms {dir}, id {dir} LIMIT ?3"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params![owner, after, (limit + 1) as i64], sqlite_row)?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM videos WHERE id = ?1", [id])? > 0)
    }

    fn claim(&self, worker: &str, now_ms: i64, lease_until: i64, models: &[String]) -> Result<Option<Video>> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock first, so two processes sharing the file cannot
        // claim the same row.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: Option<String> = {
            let marks: Vec<String> = (0..models.len()).map(|i| format!("?{}", i + 3)).collect();
            let mut st = tx.prepare_cached(&format!(
                "SELECT id FROM videos WHERE (status = 'queued' OR (status = 'in_progress' AND lease_until < ?1)) AND attempts < ?2 AND model IN ({}) ORDER BY created_ms, id LIMIT 1",
                marks.join(", ")
            ))?;
            let mut params: Vec<&dyn rusqlite::ToSql> = vec![&now_ms, &MAX_ATTEMPTS];
            params.extend(models.iter().map(|m| m as &dyn rusqlite::ToSql));
            let mut rows = st.query_map(params.as_slice(), |r| r.get(0))?;
            rows.next().transpose()?
        };
        let Some(id) = id else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE videos SET status = 'in_progress', progress = 0, worker = ?2, lease_until = ?3, attempts = attempts + 1 WHERE id = ?1",
            rusqlite::params![id, worker, lease_until],
        )?;
        let v = tx.query_row(&format!("SELECT {COLUMNS} FROM videos WHERE id = ?1"), [&id], sqlite_row)?;
        tx.commit()?;
        Ok(Some(v))
    }

    fn renew(&self, id: &str, worker: &str, progress: i64, lease_until: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE videos SET progress = ?3, lease_until = ?4 WHERE id = ?1 AND worker = ?2 AND status = 'in_progress'",
            rusqlite::params![id, worker, progress, lease_until],
        )? > 0)
    }

    fn complete(&self, id: &str, worker: &str, output: &str, completed_at: i64, expires_at: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE videos SET status = 'completed', progress = 100, output = ?3, completed_at = ?4, expires_at = ?5, lease_until = NULL WHERE id = ?1 AND worker = ?2 AND status = 'in_progress'",
            rusqlite::params![id, worker, output, completed_at, expires_at],
        )? > 0)
    }

    fn fail(&self, id: &str, worker: &str, code: &str, message: &str, at: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE videos SET status = 'failed', error_code = ?3, error_message = ?4, completed_at = ?5, lease_until = NULL WHERE id = ?1 AND worker = ?2 AND status = 'in_progress'",
            rusqlite::params![id, worker, code, message, at],
        )? > 0)
    }

    fn release(&self, id: &str, worker: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE videos SET status = 'queued', progress = 0, worker = NULL, lease_until = NULL, attempts = attempts - 1 WHERE id = ?1 AND worker = ?2 AND status = 'in_progress'",
            rusqlite::params![id, worker],
        )? > 0)
    }

    fn give_up(&self, now_ms: i64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "UPDATE videos SET status = 'failed', error_code = 'worker_lost', error_message = 'the job stopped its worker ' || attempts || ' times; giving up', completed_at = ?3, lease_until = NULL WHERE status = 'in_progress' AND lease_until < ?1 AND attempts >= ?2 RETURNING id",
        )?;
        let rows = st.query_map(rusqlite::params![now_ms, MAX_ATTEMPTS, now_ms / 1000], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn counts(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT status, COUNT(*) FROM videos GROUP BY status")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn active(&self, owner: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM videos WHERE owner = ?1 AND status IN ('queued', 'in_progress')",
            [owner],
            |r| r.get(0),
        )?)
    }

    fn expired(&self, now: i64, limit: usize) -> Result<Vec<Video>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM videos WHERE status = 'completed' AND output IS NOT NULL AND expires_at < ?1 ORDER BY expires_at LIMIT ?2"
        ))?;
        let rows = st.query_map(rusqlite::params![now, limit as i64], sqlite_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn clear_output(&self, id: &str) -> Result<()> {
        self.conn().execute("UPDATE videos SET output = NULL WHERE id = ?1", [id])?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.path)
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

pub struct Postgres {
    /// `postgres::Client` runs its own small tokio runtime; it is dropped on a plain thread
    /// (see Drop), as tokio forbids dropping a runtime inside an async context.
    client: Mutex<Option<postgres::Client>>,
    url: String,
}

impl Postgres {
    pub fn open(url: &str) -> Result<Self> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        // Several servers may start at once against one database: one migrates at a time.
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(7415)", &[])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")?;
        for (version, sql) in MIGRATIONS {
            let done: i64 =
                tx.query_one("SELECT COUNT(*) FROM schema_migrations WHERE version = $1", &[version])?.get(0);
            if done == 0 {
                tx.batch_execute(sql).with_context(|| format!("migration {version}"))?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])?;
            }
        }
        tx.commit()?;
        Ok(Postgres { client: Mutex::new(Some(client)), url: url.to_string() })
    }

    fn with<T>(&self, f: impl Fn(&mut postgres::Client) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let client = guard.as_mut().ok_or_else(|| anyhow!("database closed"))?;
        match f(client) {
            Ok(v) => Ok(v),
            // A dropped connection (database restart, network): reconnect once and retry.
            Err(e) if client.is_closed() => {
                let mut fresh = postgres::Client::connect(&self.url, postgres::NoTls)
                    .with_context(|| format!("lost PostgreSQL ({e}) and cannot reconnect to {}", redact(&self.url)))?;
                let out = f(&mut fresh);
                if let Some(old) = guard.replace(fresh) {
                    drop_off_runtime(old);
                }
                Ok(out?)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn drop_off_runtime(c: postgres::Client) {
    let _ = std::thread::spawn(move || drop(c)).join();
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(c) = self.client.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            drop_off_runtime(c);
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn pg_row(r: &postgres::Row) -> Video {
    Video {
        id: r.get(0),
        owner: r.get(1),
        model: r.get(2),
        status: r.get(3),
        progress: r.get::<_, i32>(4) as i64,
        prompt: r.get(5),
        request: r.get(6),
        seconds: r.get(7),
        size: r.get(8),
        created_ms: r.get(9),
        created_at: r.get(10),
        completed_at: r.get(11),
        expires_at: r.get(12),
        error_code: r.get(13),
        error_message: r.get(14),
        remixed_from_video_id: r.get(15),
        worker: r.get(16),
        lease_until: r.get(17),
        attempts: r.get::<_, i32>(18) as i64,
        output: r.get(19),
    }
}

impl Queue for Postgres {
    fn insert(&self, v: &Video) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO videos ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"),
                &[
                    &v.id, &v.owner, &v.model, &v.status, &(v.progress as i32), &v.prompt, &v.request, &v.seconds, &v.size,
                    &v.created_ms, &v.created_at, &v.completed_at, &v.expires_at, &v.error_code, &v.error_message,
                    &v.remixed_from_video_id, &v.worker, &v.lease_until, &(v.attempts as i32), &v.output,
                ],
            )
        })?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Video>> {
        let rows = self.with(|c| c.query(&format!("SELECT {COLUMNS} FROM videos WHERE id = $1"), &[&id]))?;
        Ok(rows.first().map(pg_row))
    }

    fn list(&self, owner: &str, after: Option<&str>, limit: usize, order: Order) -> Result<(Vec<Video>, bool)> {
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM videos WHERE owner = $1 AND ($2::TEXT IS NULL OR (created_ms, id) {cmp} (SELECT created_ms, id FROM videos WHERE id = $2)) ORDER BY created_ms {dir}, id {dir} LIMIT $3"
        );
        let n = (limit + 1) as i64;
        let rows = self.with(|c| c.query(&sql, &[&owner, &after, &n]))?;
        let mut out: Vec<Video> = rows.iter().map(pg_row).collect();
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.with(|c| c.execute("DELETE FROM videos WHERE id = $1", &[&id]))? > 0)
    }

    fn claim(&self, worker: &str, now_ms: i64, lease_until: i64, models: &[String]) -> Result<Option<Video>> {
        // SKIP LOCKED: concurrent workers on other machines pass over the row one of them
        // is claiming instead of waiting for it (the queue pattern PostgreSQL documents
        // under SELECT ... FOR UPDATE).
        let sql = format!(
            "UPDATE videos SET status = 'in_progress', progress = 0, worker = $1, lease_until = $2, attempts = attempts + 1
             WHERE id = (SELECT id FROM videos WHERE (status = 'queued' OR (status = 'in_progress' AND lease_until < $3)) AND attempts < $4 AND model = ANY($5)
                         ORDER BY created_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        );
        let max = MAX_ATTEMPTS as i32;
        let rows = self.with(|c| c.query(&sql, &[&worker, &lease_until, &now_ms, &max, &models]))?;
        Ok(rows.first().map(pg_row))
    }

    fn renew(&self, id: &str, worker: &str, progress: i64, lease_until: i64) -> Result<bool> {
        let p = progress as i32;
        Ok(self.with(|c| {
            c.execute(
                "UPDATE videos SET progress = $3, lease_until = $4 WHERE id = $1 AND worker = $2 AND status = 'in_progress'",
                &[&id, &worker, &p, &lease_until],
            )
        })? > 0)
    }

    fn complete(&self, id: &str, worker: &str, output: &str, completed_at: i64, expires_at: i64) -> Result<bool> {
        Ok(self.with(|c| {
            c.execute(
                "UPDATE videos SET status = 'completed', progress = 100, output = $3, completed_at = $4, expires_at = $5, lease_until = NULL WHERE id = $1 AND worker = $2 AND status = 'in_progress'",
                &[&id, &worker, &output, &completed_at, &expires_at],
            )
        })? > 0)
    }

    fn fail(&self, id: &str, worker: &str, code: &str, message: &str, at: i64) -> Result<bool> {
        Ok(self.with(|c| {
            c.execute(
                "UPDATE videos SET status = 'failed', error_code = $3, error_message = $4, completed_at = $5, lease_until = NULL WHERE id = $1 AND worker = $2 AND status = 'in_progress'",
                &[&id, &worker, &code, &message, &at],
            )
        })? > 0)
    }

    fn release(&self, id: &str, worker: &str) -> Result<bool> {
        Ok(self.with(|c| {
            c.execute(
                "UPDATE videos SET status = 'queued', progress = 0, worker = NULL, lease_until = NULL, attempts = attempts - 1 WHERE id = $1 AND worker = $2 AND status = 'in_progress'",
                &[&id, &worker],
            )
        })? > 0)
    }

    fn give_up(&self, now_ms: i64) -> Result<Vec<String>> {
        let max = MAX_ATTEMPTS as i32;
        let rows = self.with(|c| {
            c.query(
                "UPDATE videos SET status = 'failed', error_code = 'worker_lost', error_message = 'the job stopped its worker ' || attempts || ' times; giving up', completed_at = $3, lease_until = NULL WHERE status = 'in_progress' AND lease_until < $1 AND attempts >= $2 RETURNING id",
                &[&now_ms, &max, &(now_ms / 1000)],
            )
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = self.with(|c| c.query("SELECT status, COUNT(*) FROM videos GROUP BY status", &[]))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn active(&self, owner: &str) -> Result<i64> {
        Ok(self
            .with(|c| {
                c.query_one(
                    "SELECT COUNT(*) FROM videos WHERE owner = $1 AND status IN ('queued', 'in_progress')",
                    &[&owner],
                )
            })?
            .get(0))
    }

    fn expired(&self, now: i64, limit: usize) -> Result<Vec<Video>> {
        let n = limit as i64;
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM videos WHERE status = 'completed' AND output IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2"),
                &[&now, &n],
            )
        })?;
        Ok(rows.iter().map(pg_row).collect())
    }

    fn clear_output(&self, id: &str) -> Result<()> {
        self.with(|c| c.execute("UPDATE videos SET output = NULL WHERE id = $1", &[&id]))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", redact(&self.url))
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Checks an id before it goes anywhere (database, storage keys, paths): `video_` and 32
/// lowercase hex digits, as the server makes them.
pub fn check_id(id: &str) -> Result<()> {
    let hex = id.strip_prefix("video_").unwrap_or("");
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!("{id:?} is not a video id");
    }
    Ok(())
}

pub fn new_id() -> String {
    let n: u128 = rand::random();
    format!("video_{n:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(id: &str, owner: &str, ms: i64) -> Video {
        Video::queued(id, owner, "m", "p", "{}".into(), "2".into(), "64x64".into(), ms)
    }

    /// The queue's contract, run against any backend (the Postgres test runs it too).
    pub fn contract(q: &dyn Queue) {
        let ids: Vec<String> = (0..5).map(|_| new_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            q.insert(&video(id, if i == 4 { "other" } else { "me" }, 1000 + i as i64)).unwrap();
        }
        // Pages, both orders.
        let (p1, more) = q.list("me", None, 2, Order::Asc).unwrap();
        assert_eq!(p1.iter().map(|v| &v.id).collect::<Vec<_>>(), vec![&ids[0], &ids[1]]);
        assert!(more);
        let (p2, more) = q.list("me", Some(&ids[1]), 2, Order::Asc).unwrap();
        assert_eq!(p2.iter().map(|v| &v.id).collect::<Vec<_>>(), vec![&ids[2], &ids[3]]);
        assert!(!more);
        let (d, _) = q.list("me", None, 10, Order::Desc).unwrap();
        assert_eq!(d[0].id, ids[3]);
        assert_eq!(q.active("me").unwrap(), 4);
        // Claims in order; a lease keeps others off; a lapsed lease gives it back.
        let m = vec!["m".to_string()];
        assert!(
            q.claim("w0", 5000, 6000, &["other-model".to_string()]).unwrap().is_none(),
            "only jobs for the worker's models"
        );
        let a = q.claim("w1", 5000, 6000, &m).unwrap().unwrap();
        assert_eq!(a.id, ids[0]);
        assert_eq!(a.attempts, 1);
        let b = q.claim("w2", 5000, 6000, &m).unwrap().unwrap();
        assert_eq!(b.id, ids[1]);
        assert!(q.renew(&a.id, "w1", 40, 9000).unwrap());
        assert!(!q.renew(&a.id, "w2", 40, 9000).unwrap(), "only the lease holder renews");
        // w2 stalls: at 7000 its lease (6000) has lapsed and w3 takes the job over.
        let c = q.claim("w3", 7000, 8000, &m).unwrap().unwrap();
        assert_eq!(c.id, ids[1]);
        assert_eq!(c.attempts, 2);
        assert!(!q.complete(&b.id, "w2", "x", 7, 100).unwrap(), "a stale worker cannot complete");
        assert!(q.complete(&c.id, "w3", "videos/x/2", 7, 100).unwrap());
        // A worker that shuts down hands its job back at once, attempt not counted.
        assert!(q.release(&a.id, "w1").unwrap());
        let again = q.claim("w1", 8000, 9000, &m).unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (a.id.as_str(), 1));
        assert!(q.fail(&a.id, "w1", "boom", "it broke", 8).unwrap());
        let a = q.get(&a.id).unwrap().unwrap();
        assert_eq!((a.status.as_str(), a.error_code.as_deref()), ("failed", Some("boom")));
        let c = q.get(&c.id).unwrap().unwrap();
        assert_eq!((c.status.as_str(), c.progress, c.output.as_deref()), ("completed", 100, Some("videos/x/2")));
        assert_eq!(q.expired(101, 10).unwrap().len(), 1);
        q.clear_output(&c.id).unwrap();
        assert_eq!(q.expired(101, 10).unwrap().len(), 0, "swept once");
        assert_eq!(q.expired(99, 10).unwrap().len(), 0);
        let counts: std::collections::HashMap<_, _> = q.counts().unwrap().into_iter().collect();
        assert_eq!(counts["queued"], 3);
        // Give up after MAX_ATTEMPTS lapsed leases.
        let mut t = 10_000;
        let id = loop {
            let j = q.claim("crashy", t, t + 1, &m).unwrap().unwrap();
            t += 10;
            if j.attempts == MAX_ATTEMPTS {
                break j.id;
            }
        };
        assert_eq!(q.give_up(t).unwrap(), vec![id.clone()]);
        assert_eq!(q.get(&id).unwrap().unwrap().status, "failed");
        assert!(q.delete(&ids[4]).unwrap());
        assert!(q.get(&ids[4]).unwrap().is_none());
        assert!(!q.delete(&ids[4]).unwrap());
    }

    #[test]
    fn sqlite_queue_contract() {
        let dir = std::env::temp_dir().join(format!("tessera-db-{}", new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.sqlite");
        let q = Sqlite::open(path.to_str().unwrap()).unwrap();
        contract(&q);
        // Migrations run once: reopening keeps the rows.
        drop(q);
        let q = Sqlite::open(path.to_str().unwrap()).unwrap();
        assert!(!q.counts().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn postgres_queue_contract() {
        let Some(url) = crate::testing::postgres_url() else { return };
        // A schema of its own, so the test can run beside others on one database.
        let schema = format!("t{}", &new_id()[6..18]);
        {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        let q = Postgres::open(&format!("{url}{sep}options=-csearch_path%3D{schema}")).unwrap();
        contract(&q);
        drop(q);
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id(&new_id()).is_ok());
        for bad in [
            "",
            "video_",
            "video_../../etc/passwd",
            "VIDEO_0123456789abcdef0123456789abcdef",
            "video_0123456789ABCDEF0123456789abcdef",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
