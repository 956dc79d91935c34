-- CDN purge hooks (issue 5): per repository, the requests to make after each publish so a CDN
-- drops its copies of the files a publish changes; and, per repository, the digests of the
-- mutable files last announced, so only the ones that changed are purged the next time.

ALTER TABLE repos ADD COLUMN cdn_purge jsonb NOT NULL DEFAULT '[]'::jsonb;

CREATE TABLE cdn_purge_state (
  repo_id integer PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
  -- {"<repo-relative path>": "<sha256 or commit>"} as of the last update-repo run
  digests jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
