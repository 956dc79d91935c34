-- Repositories and their signing keys.

CREATE TABLE repos (
  id serial PRIMARY KEY,
  name text NOT NULL,
  title text,
  description text,
  homepage text,
  icon_url text,
  collection_id text,
  default_branch text NOT NULL DEFAULT 'stable',
  public boolean NOT NULL DEFAULT true,
  delta_policy jsonb NOT NULL,
  min_free_space text NOT NULL DEFAULT '500MB',
  base_url text,
  redirect_url text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Set when deletion is asked: the repo is hidden at once, a job removes its data.
  deleted_at timestamptz
);
CREATE UNIQUE INDEX repos_name_live ON repos (name) WHERE deleted_at IS NULL;

-- One row per distinct OpenPGP key; the private key is sealed (AES-GCM) under the master key.
CREATE TABLE signing_keys (
  id serial PRIMARY KEY,
  fingerprint text NOT NULL UNIQUE,
  key_id text NOT NULL,
  algorithm text NOT NULL,
  user_ids text[] NOT NULL,
  key_created_at timestamptz NOT NULL,
  expires_at timestamptz,
  public_key text NOT NULL,   -- base64 of the binary export
  sealed_private text NOT NULL, -- base64 of the sealed unencrypted private key
  added_at timestamptz NOT NULL DEFAULT now()
);

-- Which keys a repository uses: `repo` keys sign the main repository, `build` keys sign its build
-- repositories. One active key per purpose signs from now on; retired keys stay exportable.
CREATE TABLE repo_keys (
  repo_id integer NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  key_id integer NOT NULL REFERENCES signing_keys (id),
  purpose text NOT NULL CHECK (purpose IN ('repo', 'build')),
  active boolean NOT NULL DEFAULT true,
  added_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  PRIMARY KEY (repo_id, key_id, purpose)
);
CREATE UNIQUE INDEX repo_keys_one_active ON repo_keys (repo_id, purpose) WHERE active;
