/**
 * @module GLib key files (ostree's `config`, `.flatpakrepo`, `.flatpakref`): parse, change keys,
 * and write back keeping every group, key and comment Flatyard does not manage.
 */

type Line = { kind: "raw"; text: string } | {
  kind: "entry";
  key: string;
  value: string;
};
interface Group {
  name: string;
  lines: Line[];
}

/** Escapes a value as g_key_file_set_string does: backslash, newline, tab, CR, leading space. */
export function escapeValue(v: string): string {
  const body = v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll(
    "\t",
    "\\t",
  )
    .replaceAll("\r", "\\r");
  return body.startsWith(" ") ? "\\s" + body.slice(1) : body;
}

/** Reverses {@link escapeValue}. */
export function unescapeValue(v: string): string {
  return v.replace(
    /\\(.)/g,
    (_m, c: string) =>
      ({ s: " ", n: "\n", t: "\t", r: "\r", "\\": "\\" } as Record<
        string,
        string
      >)[c] ?? c,
  );
}

/** A parsed key file that round-trips what it does not touch. */
export class KeyFile {
  private head: Line[] = [];
  private groups: Group[] = [];

  /** Parses key-file text. Lines before the first group are kept as they are. */
  static parse(text: string): KeyFile {
    const kf = new KeyFile();
    let current: Line[] = kf.head;
    for (const raw of text.split("\n")) {
      const line = raw.replace(/\r$/, "");
      const group = /^\[([^\]]+)\]\s*$/.exec(line);
      if (group) {
        const g = { name: group[1]!, lines: [] };
        kf.groups.push(g);
        current = g.lines;
        continue;
      }
      const eq = line.indexOf("=");
      if (!line.startsWith("#") && eq > 0 && kf.groups.length > 0) {
        current.push({
          kind: "entry",
          key: line.slice(0, eq).trim(),
          value: line.slice(eq + 1).trimStart(),
        });
      } else {
        current.push({ kind: "raw", text: line });
      }
    }
    // A trailing newline leaves one empty raw line at the end; serialization adds it back.
    const last = kf.groups.at(-1)?.lines ?? kf.head;
    if (
      last.at(-1)?.kind === "raw" &&
      (last.at(-1) as { text: string }).text === ""
    ) last.pop();
    return kf;
  }

  /** The unescaped value, or undefined. */
  get(group: string, key: string): string | undefined {
    const g = this.groups.find((x) => x.name === group);
    const e = g?.lines.find((l) => l.kind === "entry" && l.key === key);
    return e?.kind === "entry" ? unescapeValue(e.value) : undefined;
  }

  /** Sets a value (escaped), or with undefined removes the key. Creates the group if needed. */
  set(group: string, key: string, value: string | undefined): void {
    let g = this.groups.find((x) => x.name === group);
    if (!g) {
      if (value === undefined) return;
      g = { name: group, lines: [] };
      this.groups.push(g);
    }
    const i = g.lines.findIndex((l) => l.kind === "entry" && l.key === key);
    if (value === undefined) {
      if (i >= 0) g.lines.splice(i, 1);
      return;
    }
    const entry: Line = { kind: "entry", key, value: escapeValue(value) };
    if (i >= 0) g.lines[i] = entry;
    else {
      // Before trailing blank lines, so groups stay visually apart.
      let at = g.lines.length;
      while (
        at > 0 && g.lines[at - 1]!.kind === "raw" &&
        (g.lines[at - 1] as { text: string }).text === ""
      ) at--;
      g.lines.splice(at, 0, entry);
    }
  }

  /** The text, ending in a newline. */
  toString(): string {
    const out: string[] = this.head.map((l) =>
      l.kind === "raw" ? l.text : `${l.key}=${l.value}`
    );
    for (const g of this.groups) {
      out.push(`[${g.name}]`);
      for (const l of g.lines) {
        out.push(l.kind === "raw" ? l.text : `${l.key}=${l.value}`);
      }
    }
    return out.join("\n") + "\n";
  }
}
