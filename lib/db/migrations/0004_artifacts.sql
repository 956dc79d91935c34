-- Large artifacts (a Flatyard extension to the flat-manager API): flatpak bundles uploaded into a
-- build in resumable Content-Range chunks, verified by sha256, then imported into the build's
-- upload repository.

CREATE TABLE artifacts (
  id serial PRIMARY KEY,
  build_id integer NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  name text NOT NULL,
  size bigint NOT NULL CHECK (size > 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  -- Bytes stored durably (fsynced) in the part file: where an interrupted upload resumes.
  received bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
  status text NOT NULL DEFAULT 'uploading' CHECK (status IN ('uploading', 'complete', 'failed')),
  error text,
  -- Read from the bundle's header once it is complete.
  ref text,
  commit text,
  -- The latest import job, which a build token can poll through the artifact.
  import_job_id integer REFERENCES jobs (id),
  -- Who created it: `token:<name>#<jti>`, as in the audit log.
  uploader text NOT NULL,
  -- The one request allowed to write the part file, and until when (renewed while bytes flow):
  -- a lease, not a row lock, because a chunk can stream for minutes.
  writer text,
  writer_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  CHECK (status <> 'complete' OR (received = size AND ref IS NOT NULL AND commit IS NOT NULL))
);
CREATE INDEX artifacts_build_id ON artifacts (build_id);
