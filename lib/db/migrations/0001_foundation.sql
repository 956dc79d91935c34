-- Foundation: users and roles, sessions, tokens (flat-manager's table plus ownership and usage),
-- the audit log, and the job queue with its dependencies and logs.

CREATE TABLE users (
  id serial PRIMARY KEY,
  username text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'maintainer', 'viewer')),
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_repo_roles (
  user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  repo text NOT NULL,
  role text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
  PRIMARY KEY (user_id, repo)
);

-- Sessions are stored by the sha256 of their opaque value: a database leak reveals no session.
CREATE TABLE sessions (
  id_hash text PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  user_agent text,
  ip text
);
CREATE INDEX sessions_user ON sessions (user_id);

-- specs/flat-manager-api.md §2.7: one row per jti seen or minted; revoked_at set by revocation.
CREATE TABLE tokens (
  jti text PRIMARY KEY,
  expires timestamptz,
  last_used timestamptz,
  revoked_at timestamptz,
  use_count bigint NOT NULL DEFAULT 0,
  owner_user_id integer REFERENCES users (id) ON DELETE SET NULL,
  name text,
  claims jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_owner ON tokens (owner_user_id);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  actor_user_id integer,
  action text NOT NULL,
  object_type text NOT NULL,
  object_id text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}',
  request_id text
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE jobs (
  id serial PRIMARY KEY,
  kind text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  priority integer NOT NULL DEFAULT 0,
  run_after timestamptz NOT NULL DEFAULT now(),
  -- At most one running job per key, across processes (the unique index below enforces it).
  serial_key text,
  -- 'finished': run once every dependency ended, however; 'succeeded': cancel if one did not.
  dep_policy text NOT NULL DEFAULT 'finished' CHECK (dep_policy IN ('finished', 'succeeded')),
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  retry_base_seconds integer NOT NULL DEFAULT 5,
  lease_owner text,
  lease_expires_at timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  result jsonb,
  error text,
  log_bytes bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX jobs_queued ON jobs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs (serial_key)
  WHERE status = 'running' AND serial_key IS NOT NULL;

CREATE TABLE job_deps (
  job_id integer NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  depends_on integer NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  PRIMARY KEY (job_id, depends_on),
  CHECK (job_id <> depends_on)
);
CREATE INDEX job_deps_depends_on ON job_deps (depends_on);

-- Log chunks keyed by their byte offset in the whole log: reading from an offset is one range scan.
CREATE TABLE job_logs (
  job_id integer NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  start_byte bigint NOT NULL,
  text text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, start_byte)
);
