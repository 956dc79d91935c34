-- Server-side builds: a flatpak-builder manifest built per architecture (one build task and one
-- job each), then committed and published through a flat-manager build like an upload.

-- Concurrency limits across processes: a job counts against every key in `limit_keys`, and is
-- not claimed while a key is at its `job_limits.max_running` (claims are serialized by an
-- advisory lock, so two workers cannot both take the last slot).
ALTER TABLE jobs ADD COLUMN limit_keys text[] NOT NULL DEFAULT '{}';
CREATE TABLE job_limits (
  key text PRIMARY KEY,
  max_running integer NOT NULL CHECK (max_running >= 1)
);

CREATE TABLE source_builds (
  id serial PRIMARY KEY,
  repo text NOT NULL,
  branch text NOT NULL,
  arches text[] NOT NULL,
  manifest jsonb NOT NULL,
  manifest_name text NOT NULL,
  app_id text NOT NULL,
  runtime text NOT NULL,
  runtime_version text,
  sdk text NOT NULL,
  command text,
  permissions jsonb NOT NULL,
  module_count integer NOT NULL,
  source jsonb NOT NULL,
  priority integer NOT NULL DEFAULT 0,
  publish text NOT NULL CHECK (publish IN ('auto', 'manual')),
  depends_on integer[] NOT NULL DEFAULT '{}',
  cpu text NOT NULL,
  memory text NOT NULL,
  timeout_seconds integer NOT NULL,
  -- The flat-manager build the builders upload into, and the jobs that finish it.
  fm_build_id integer NOT NULL REFERENCES builds (id),
  commit_job_id integer REFERENCES jobs (id),
  publish_job_id integer REFERENCES jobs (id),
  cancelled boolean NOT NULL DEFAULT false,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE build_tasks (
  id serial PRIMARY KEY,
  source_build_id integer NOT NULL REFERENCES source_builds (id) ON DELETE CASCADE,
  arch text NOT NULL,
  job_id integer NOT NULL REFERENCES jobs (id),
  UNIQUE (source_build_id, arch)
);
