/**
 * @module Sources and flatpak-builder manifest of the fixture app: a shell script that prints its
 * id and `uname -m` (so a test sees which architecture really ran), with the metainfo, desktop
 * file and icons a published app carries.
 */
import { join } from "node:path";
import { solidPng } from "./png.ts";

/** What the app is built against. */
export interface HelloAppOptions {
  appId: string;
  runtimeVersion: string;
}

/** The runtime and SDK every fixture provides. */
export const PLATFORM_ID = "org.example.BusyBoxPlatform";
export const SDK_ID = "org.example.BusyBoxSdk";

/** The line `hello` prints on `arch`: what tests look for after `flatpak run`. */
export function helloOutput(appId: string, arch: string): string {
  return `Hello from ${appId} on ${arch}`;
}

/** Writes the app's sources into `dir` and returns the manifest's file name (relative to it). */
export async function writeHelloApp(
  dir: string,
  { appId, runtimeVersion }: HelloAppOptions,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const files: Record<string, string | Uint8Array> = {
    "hello.sh": `#!/bin/sh\necho "Hello from ${appId} on $(uname -m)"\n`,
    [`${appId}.desktop`]: [
      "[Desktop Entry]",
      "Type=Application",
      "Name=Hello",
      "Exec=hello",
      `Icon=${appId}`,
      "Categories=Utility;",
      "",
    ].join("\n"),
    [`${appId}.metainfo.xml`]: metainfo(appId),
    "icon64.png": await solidPng(64, [200, 50, 50]),
    "icon128.png": await solidPng(128, [50, 50, 200]),
  };
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  const manifest = `${appId}.json`;
  await Deno.writeTextFile(
    join(dir, manifest),
    JSON.stringify(
      helloManifest(appId, runtimeVersion, Object.keys(files)),
      null,
      2,
    ),
  );
  return manifest;
}

function metainfo(appId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<component type="desktop-application">
  <id>${appId}</id>
  <metadata_license>CC0-1.0</metadata_license>
  <project_license>MIT</project_license>
  <name>Hello</name>
  <summary>Says hello from a busybox runtime</summary>
  <description><p>Test application of Flatyard's fixtures.</p></description>
  <launchable type="desktop-id">${appId}.desktop</launchable>
  <releases><release version="1.0" date="2024-01-01"/></releases>
</component>
`;
}

function helloManifest(
  appId: string,
  runtimeVersion: string,
  sources: string[],
): unknown {
  const icons = "/app/share/icons/hicolor";
  return {
    "app-id": appId,
    runtime: PLATFORM_ID,
    "runtime-version": runtimeVersion,
    sdk: SDK_ID,
    command: "hello",
    // flatpak-builder 1.2 runs appstream-compose inside the SDK, and busybox has none.
    "appstream-compose": false,
    modules: [{
      name: "hello",
      buildsystem: "simple",
      // busybox has no `install` applet, hence mkdir/cp/chmod.
      "build-commands": [
        `mkdir -p /app/bin /app/share/metainfo /app/share/applications ${icons}/64x64/apps ${icons}/128x128/apps`,
        "cp hello.sh /app/bin/hello && chmod 755 /app/bin/hello",
        `cp ${appId}.metainfo.xml /app/share/metainfo/`,
        `cp ${appId}.desktop /app/share/applications/`,
        `cp icon64.png ${icons}/64x64/apps/${appId}.png`,
        `cp icon128.png ${icons}/128x128/apps/${appId}.png`,
      ],
      sources: sources.map((path) => ({ type: "file", path })),
    }],
  };
}
