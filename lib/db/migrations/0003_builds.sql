-- flat-manager builds (specs/flat-manager-api.md §1.1, §1.2, §4.5): upload repos that are
-- committed and published into a main repository.

CREATE TABLE builds (
  id serial PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- 0 Uploading, 1 Committing, 2 Ready, 3 Failed, 4 Purging, 5 Purged, 6 Validating
  repo_state smallint NOT NULL DEFAULT 0 CHECK (repo_state BETWEEN 0 AND 6),
  repo_state_reason text,
  -- 0 Unpublished, 1 Publishing, 2 Published, 3 Failed
  published_state smallint NOT NULL DEFAULT 0 CHECK (published_state BETWEEN 0 AND 3),
  published_state_reason text,
  commit_job_id integer REFERENCES jobs (id),
  publish_job_id integer REFERENCES jobs (id),
  repo text NOT NULL,
  extra_ids text[] NOT NULL DEFAULT '{}',
  app_id text,
  public_download boolean NOT NULL,
  build_log_url text,
  token_name text,
  token_type text
);
CREATE INDEX builds_app_id ON builds (app_id) WHERE repo_state <> 5;

CREATE TABLE build_refs (
  id serial PRIMARY KEY,
  build_id integer NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  ref_name text NOT NULL,
  commit text NOT NULL,
  build_log_url text,
  UNIQUE (build_id, ref_name)
);
