/** @module The audit log: who did what to which object, and when. Append-only. */
import type { Db, Queryable } from "./db/db.ts";

/** One audit event. */
export interface AuditEvent {
  /** `user:<name>`, `token:<name>#<jti>`, or `cli`. */
  actor: string;
  actorUserId?: number | null;
  /** `<object>.<verb>`, e.g. `user.create`, `token.revoke`. */
  action: string;
  objectType: string;
  objectId: string;
  details?: Record<string, unknown>;
  requestId?: string | null;
}

/** A stored event. */
export interface AuditEntry extends Required<AuditEvent> {
  id: number;
  at: Date;
}

/** Writes and reads the audit log. */
export class AuditLog {
  constructor(private readonly db: Db) {}

  /** Records an event; pass `q` to record it in the same transaction as the change. */
  async record(e: AuditEvent, q: Queryable = this.db): Promise<void> {
    await q.query(
      `INSERT INTO audit_log (actor, actor_user_id, action, object_type, object_id, details, request_id)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)`,
      [
        e.actor,
        e.actorUserId ?? null,
        e.action,
        e.objectType,
        e.objectId,
        JSON.stringify(e.details ?? {}),
        e.requestId ?? null,
      ],
    );
  }

  /** Newest first; every filter optional; `beforeId` pages. */
  async list(
    f: {
      objectType?: string;
      objectId?: string;
      action?: string;
      actor?: string;
      beforeId?: number;
      limit?: number;
    } = {},
  ): Promise<AuditEntry[]> {
    const rows = await this.db.query<{
      id: number;
      at: Date;
      actor: string;
      actor_user_id: number | null;
      action: string;
      object_type: string;
      object_id: string;
      details: Record<string, unknown>;
      request_id: string | null;
    }>(
      `SELECT * FROM audit_log
       WHERE ($1::text IS NULL OR object_type = $1) AND ($2::text IS NULL OR object_id = $2)
         AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR actor = $4)
         AND ($5::bigint IS NULL OR id < $5)
       ORDER BY id DESC LIMIT $6`,
      [
        f.objectType ?? null,
        f.objectId ?? null,
        f.action ?? null,
        f.actor ?? null,
        f.beforeId ?? null,
        f.limit ?? 100,
      ],
    );
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      actorUserId: r.actor_user_id,
      action: r.action,
      objectType: r.object_type,
      objectId: r.object_id,
      details: r.details,
      requestId: r.request_id,
    }));
  }
}
