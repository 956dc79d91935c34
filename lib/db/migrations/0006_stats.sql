-- Download statistics (specs/ecosystem.md §3.3): counters per repository, UTC day and ref, added
-- to by every server process's batched flush (INSERT … ON CONFLICT DO UPDATE SET n = n + …).

CREATE TABLE download_stats (
  repo_id integer NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  day date NOT NULL,
  kind text NOT NULL CHECK (kind IN ('app', 'runtime')),
  -- The app or runtime id, arch and branch of the ref `<kind>/<name>/<arch>/<branch>`.
  name text NOT NULL,
  arch text NOT NULL,
  branch text NOT NULL,
  installs bigint NOT NULL DEFAULT 0,
  updates bigint NOT NULL DEFAULT 0,
  -- Downloads (installs or updates) that came through a from→to static delta.
  delta_downloads bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (repo_id, day, kind, name, arch, branch)
);
CREATE INDEX download_stats_by_name ON download_stats (repo_id, name, day);

-- The client versions of the same downloads, from the User-Agent ('' when it names none).
CREATE TABLE download_clients (
  repo_id integer NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  day date NOT NULL,
  ostree_version text NOT NULL,
  flatpak_version text NOT NULL,
  downloads bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (repo_id, day, ostree_version, flatpak_version)
);
