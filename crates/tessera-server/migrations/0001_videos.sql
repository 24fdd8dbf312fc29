-- Jobs and their videos: one row per accepted request, written before the reply.
-- Portable between SQLite and PostgreSQL (the same file runs on both).
CREATE TABLE videos (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,                 -- the API key's id ('' without keys)
    model TEXT NOT NULL,
    status TEXT NOT NULL,                -- queued, in_progress, completed, failed
    progress INTEGER NOT NULL DEFAULT 0,
    prompt TEXT NOT NULL,
    request TEXT NOT NULL,               -- the validated job as JSON (jobs::JobSpec)
    seconds TEXT NOT NULL,
    size TEXT NOT NULL,
    created_ms BIGINT NOT NULL,          -- ordering of lists (created_at is in seconds)
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    expires_at BIGINT,
    error_code TEXT,
    error_message TEXT,
    remixed_from_video_id TEXT,
    worker TEXT,                         -- who holds the lease
    lease_until BIGINT,                  -- unix ms; a lapsed lease puts the job back in the queue
    attempts INTEGER NOT NULL DEFAULT 0,
    output TEXT                          -- storage prefix of the finished files
);
CREATE INDEX videos_queue ON videos (status, created_ms);
CREATE INDEX videos_owner ON videos (owner, created_ms);
