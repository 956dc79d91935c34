import assert from "node:assert/strict";
import { parseManifest } from "./manifest.ts";

const good = {
  "app-id": "org.example.Hello",
  runtime: "org.example.Platform",
  "runtime-version": "1.0",
  sdk: "org.example.Sdk",
  command: "hello",
  "finish-args": ["--share=network", "--socket=x11", "--socket=wayland"],
  "appstream-compose": false,
  modules: [
    {
      name: "hello",
      buildsystem: "simple",
      "build-commands": ["install -D hello.sh /app/bin/hello"],
      sources: [
        { type: "file", path: "hello.sh" },
        {
          type: "archive",
          url: "https://example.org/lib-1.0.tar.gz",
          sha256: "a".repeat(64),
        },
        {
          type: "git",
          url: "https://example.org/lib.git",
          commit: "0123456789abcdef0123456789abcdef01234567",
        },
      ],
      modules: [{ name: "dep", buildsystem: "meson", sources: [] }],
    },
    "shared-modules/extra.json",
  ],
};

Deno.test("a valid JSON manifest parses and is summarized", () => {
  const r = parseManifest(JSON.stringify(good));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
  assert.deepEqual(r.summary, {
    appId: "org.example.Hello",
    runtime: "org.example.Platform",
    runtimeVersion: "1.0",
    sdk: "org.example.Sdk",
    command: "hello",
    branch: null,
    permissions: { share: ["network"], socket: ["x11", "wayland"] },
    moduleCount: 3,
  });
  // Keys flatpak-builder knows and we do not check are kept.
  assert.equal(r.manifest["appstream-compose"], false);
});

Deno.test("the same manifest in YAML parses the same", () => {
  const yaml = `
id: org.example.Hello
runtime: org.example.Platform
runtime-version: '1.0'
sdk: org.example.Sdk
command: hello
finish-args:
  - --share=network
modules:
  - name: hello
    buildsystem: simple
    build-commands:
      - install -D hello.sh /app/bin/hello
    sources:
      - type: file
        path: hello.sh
`;
  const r = parseManifest(yaml);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
  assert.equal(r.summary.appId, "org.example.Hello");
  assert.equal(r.summary.moduleCount, 1);
  assert.deepEqual(r.summary.permissions, { share: ["network"] });
});

Deno.test("a runtime manifest needs no command", () => {
  const { command: _, ...rest } = good;
  const r = parseManifest({ ...rest, "build-runtime": true });
  assert.ok(r.ok);
  assert.equal(r.summary.command, null);
});

const bad: [string, unknown, string, RegExp][] = [
  ["not JSON", "{ nope", "(manifest)", /not valid JSON/],
  ["not YAML", "a: [1, 2", "(manifest)", /not valid YAML/],
  ["duplicate YAML keys", "id: a.b.c\nid: a.b.d\n", "(manifest)", /YAML/],
  ["an array", "[1, 2]", "(manifest)", /must be an object/],
  ["no id", { ...good, "app-id": undefined }, "id", /required/],
  ["a two-element id", { ...good, "app-id": "org.Hello" }, "app-id", /three/],
  [
    "an id with a dash in its last element",
    { ...good, "app-id": "org.example.hello-world" },
    "app-id",
    /valid application id/,
  ],
  ["no runtime", { ...good, runtime: undefined }, "runtime", /expected string/],
  ["a bad sdk", { ...good, sdk: "../sdk" }, "sdk", /valid application id/],
  ["no command", { ...good, command: undefined }, "command", /required/],
  [
    "a bad runtime-version",
    { ...good, "runtime-version": "1 0" },
    "runtime-version",
    /branch/,
  ],
  ["no modules", { ...good, modules: [] }, "modules", /at least one module/],
  [
    "a finish-arg that is not an option",
    { ...good, "finish-args": ["share=network"] },
    "finish-args[0]",
    /option/,
  ],
  [
    "a module without a name",
    { ...good, modules: [{ buildsystem: "meson" }] },
    "modules[0].name",
    /expected string/,
  ],
  [
    "an unknown buildsystem",
    { ...good, modules: [{ name: "m", buildsystem: "make" }] },
    "modules[0].buildsystem",
    /Invalid option/,
  ],
  [
    "a simple module without build-commands",
    { ...good, modules: [{ name: "m", buildsystem: "simple" }] },
    "modules[0].build-commands",
    /required when buildsystem is simple/,
  ],
  [
    "an unknown source type",
    { ...good, modules: [{ name: "m", sources: [{ type: "ftp" }] }] },
    "modules[0].sources[0].type",
    /unknown source type/,
  ],
  [
    "a downloaded archive without sha256",
    {
      ...good,
      modules: [{
        name: "m",
        sources: [{ type: "archive", url: "https://x.org/a.tgz" }],
      }],
    },
    "modules[0].sources[0].sha256",
    /required for a downloaded archive/,
  ],
  [
    "a source path that escapes",
    {
      ...good,
      modules: [{ name: "m", sources: [{ type: "file", path: "../etc/x" }] }],
    },
    "modules[0].sources[0].path",
    /relative path/,
  ],
  [
    "an absolute source path",
    {
      ...good,
      modules: [{ name: "m", sources: [{ type: "dir", path: "/etc" }] }],
    },
    "modules[0].sources[0].path",
    /relative path/,
  ],
  [
    "a git source without a URL",
    { ...good, modules: [{ name: "m", sources: [{ type: "git" }] }] },
    "modules[0].sources[0].url",
    /exactly one of url and path/,
  ],
  [
    "a bad nested module",
    {
      ...good,
      modules: [{
        name: "m",
        modules: [{ name: "n", sources: [{ type: "shell" }] }],
      }],
    },
    "modules[0].modules[0].sources[0].commands",
    /expected array/,
  ],
  [
    "an external module file outside the sources",
    { ...good, modules: ["../other.json"] },
    "modules[0]",
    /Invalid input|relative path/,
  ],
];

for (const [what, input, path, message] of bad) {
  Deno.test(`refused with the field named: ${what}`, () => {
    const r = parseManifest(
      typeof input === "string" ? input : JSON.stringify(input),
    );
    assert.ok(!r.ok, "accepted");
    const issue = r.issues.find((i) => i.path === path);
    assert.ok(issue, `no issue at ${path}: ${JSON.stringify(r.issues)}`);
    assert.match(issue.message, message);
  });
}

Deno.test("an oversized manifest is refused before parsing", () => {
  const r = parseManifest(`{"x": "${"a".repeat(1024 * 1024)}"}`);
  assert.ok(!r.ok);
  assert.match(r.issues[0]!.message, /larger than/);
});
