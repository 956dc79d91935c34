/**
 * @module A repository's signing keys (ARCHITECTURE.md §5): stored once per fingerprint with
 * the private key sealed under the master key; linked to repositories by purpose (`repo` for
 * the main repository, `build` for its build repositories), one active per purpose. Keys never
 * leave this module except as public keys and as a {@link Signer}.
 */
import { fromBase64, toBase64 } from "../base64.ts";
import type { Db, Queryable } from "../db/db.ts";
import {
  createSigner,
  type Signer,
  type SigningKeyMaterial,
} from "../pgp/keys.ts";
import { seal, unseal } from "../pgp/sealed.ts";

export type KeyPurpose = "repo" | "build";

/** What the API shows of a repository key (public parts only). */
export interface RepoKeyInfo {
  fingerprint: string;
  keyId: string;
  algorithm: string;
  userIds: string[];
  createdAt: Date;
  expiresAt: Date | null;
  purpose: KeyPurpose;
  active: boolean;
  addedAt: Date;
  retiredAt: Date | null;
}

// Binds a sealed key to its fingerprint: a sealed blob copied onto another row will not open.
const sealContext = (fingerprint: string) => `signing-key:${fingerprint}`;

/** The keys of all repositories. */
export class RepoKeys {
  private signers = new Map<string, Promise<Signer>>();

  constructor(
    private readonly db: Db,
    private readonly masterKey: Uint8Array,
  ) {}

  /**
   * Adds a key to a repository for `purpose`; with `activate`, it signs from now on and the
   * previously active key is retired (kept, still exportable). Adding a key the repository
   * already has changes nothing but its activation: `added` tells whether anything was new.
   */
  async add(
    tx: Queryable,
    repoId: number,
    material: SigningKeyMaterial,
    purpose: KeyPurpose,
    activate: boolean,
  ): Promise<{ info: RepoKeyInfo; added: boolean }> {
    const sealed = await seal(
      this.masterKey,
      material.privateKey,
      sealContext(material.fingerprint),
    );
    await tx.query(
      `INSERT INTO signing_keys (fingerprint, key_id, algorithm, user_ids, key_created_at, expires_at,
         public_key, sealed_private)
       VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8) ON CONFLICT (fingerprint) DO NOTHING`,
      [
        material.fingerprint,
        material.keyId,
        material.algorithm,
        material.userIds,
        material.createdAt,
        material.expiresAt,
        toBase64(material.publicKey),
        toBase64(sealed),
      ],
    );
    const [key] = await tx.query<{ id: number }>(
      "SELECT id FROM signing_keys WHERE fingerprint = $1",
      [
        material.fingerprint,
      ],
    );
    const [link] = await tx.query<{ active: boolean }>(
      "SELECT active FROM repo_keys WHERE repo_id = $1 AND key_id = $2 AND purpose = $3",
      [repoId, key!.id, purpose],
    );
    if (activate && link?.active !== true) {
      await tx.query(
        `UPDATE repo_keys SET active = false, retired_at = now()
         WHERE repo_id = $1 AND purpose = $2 AND active`,
        [repoId, purpose],
      );
    }
    if (!link) {
      await tx.query(
        `INSERT INTO repo_keys (repo_id, key_id, purpose, active, retired_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $4 THEN NULL ELSE now() END)`,
        [repoId, key!.id, purpose, activate],
      );
    } else if (activate && !link.active) {
      await tx.query(
        "UPDATE repo_keys SET active = true, retired_at = NULL WHERE repo_id = $1 AND key_id = $2 AND purpose = $3",
        [repoId, key!.id, purpose],
      );
    }
    const info = (await this.list(repoId, tx)).find((k) =>
      k.fingerprint === material.fingerprint && k.purpose === purpose
    )!;
    return { info, added: !link };
  }

  /** The repository's keys, active first, then newest first. */
  async list(repoId: number, q: Queryable = this.db): Promise<RepoKeyInfo[]> {
    const rows = await q.query<{
      fingerprint: string;
      key_id: string;
      algorithm: string;
      user_ids: string[];
      key_created_at: Date;
      expires_at: Date | null;
      purpose: KeyPurpose;
      active: boolean;
      added_at: Date;
      retired_at: Date | null;
    }>(
      `SELECT k.fingerprint, k.key_id, k.algorithm, k.user_ids, k.key_created_at, k.expires_at,
         rk.purpose, rk.active, rk.added_at, rk.retired_at
       FROM repo_keys rk JOIN signing_keys k ON k.id = rk.key_id
       WHERE rk.repo_id = $1 ORDER BY rk.purpose DESC, rk.active DESC, rk.added_at DESC, k.fingerprint`,
      [repoId],
    );
    return rows.map((r) => ({
      fingerprint: r.fingerprint,
      keyId: r.key_id,
      algorithm: r.algorithm,
      userIds: r.user_ids,
      createdAt: r.key_created_at,
      expiresAt: r.expires_at,
      purpose: r.purpose,
      active: r.active,
      addedAt: r.added_at,
      retiredAt: r.retired_at,
    }));
  }

  /** The binary public key of one of the repository's keys. */
  async publicKey(
    repoId: number,
    fingerprint: string,
  ): Promise<Uint8Array | undefined> {
    const [row] = await this.db.query<{ public_key: string }>(
      `SELECT k.public_key FROM repo_keys rk JOIN signing_keys k ON k.id = rk.key_id
       WHERE rk.repo_id = $1 AND k.fingerprint = $2 LIMIT 1`,
      [repoId, fingerprint.toUpperCase()],
    );
    return row ? fromBase64(row.public_key) : undefined;
  }

  /**
   * Every key of `purpose`, active and retired, as one binary keyring (binary OpenPGP keys
   * concatenate). Clients that trust it verify old commits and new ones across a rotation.
   */
  async keyring(
    repoId: number,
    purpose: KeyPurpose,
  ): Promise<Uint8Array | undefined> {
    const rows = await this.db.query<{ public_key: string }>(
      `SELECT k.public_key FROM repo_keys rk JOIN signing_keys k ON k.id = rk.key_id
       WHERE rk.repo_id = $1 AND rk.purpose = $2 ORDER BY rk.active DESC, rk.added_at DESC`,
      [repoId, purpose],
    );
    if (rows.length === 0) return undefined;
    const parts = rows.map((r) => fromBase64(r.public_key));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** A signer for the active key of `purpose`, or undefined when the repository has none. */
  async signer(
    repoId: number,
    purpose: KeyPurpose,
  ): Promise<Signer | undefined> {
    const [row] = await this.db.query<
      { fingerprint: string; sealed_private: string }
    >(
      `SELECT k.fingerprint, k.sealed_private FROM repo_keys rk JOIN signing_keys k ON k.id = rk.key_id
       WHERE rk.repo_id = $1 AND rk.purpose = $2 AND rk.active`,
      [repoId, purpose],
    );
    if (!row) return undefined;
    const cached = this.signers.get(row.fingerprint);
    if (cached) return cached;
    const signer = unseal(
      this.masterKey,
      fromBase64(row.sealed_private),
      sealContext(row.fingerprint),
    ).then(createSigner);
    this.signers.set(row.fingerprint, signer);
    signer.catch(() => this.signers.delete(row.fingerprint));
    return signer;
  }
}
