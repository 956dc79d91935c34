/**
 * @module The CPU architectures flatpak fixtures are built for: a static busybox for each (the
 * host's own, or one downloaded from Debian and cached) and whether the kernel can run a foreign
 * one through qemu-user.
 */
import { dirname, join } from "node:path";
import { exec } from "./fixture_exec.ts";

/** Flatpak's names for the architectures the fixtures support. */
export type FixtureArch = "x86_64" | "aarch64";

/** Every supported architecture, in the order fixtures build them. */
export const FIXTURE_ARCHES: readonly FixtureArch[] = ["x86_64", "aarch64"];

const DEBIAN_ARCH: Record<FixtureArch, string> = {
  x86_64: "amd64",
  aarch64: "arm64",
};

/** The architecture this process runs on (Deno and flatpak use the same two names). */
export function hostArch(): FixtureArch {
  return Deno.build.arch;
}

/** Whether a precondition holds, and if not, what to do about it. */
export interface Support {
  ok: boolean;
  reason?: string;
}

const BINFMT = "/proc/sys/fs/binfmt_misc";

/**
 * Whether this machine can run `arch` binaries: always for the host's own, through a qemu-user
 * binfmt_misc entry otherwise. That entry needs the F (fix-binary) flag, because inside flatpak's
 * sandbox the interpreter's path on the host is not visible; Debian's qemu-user-static sets it.
 */
export async function archSupport(arch: FixtureArch): Promise<Support> {
  if (arch === hostArch()) return { ok: true };
  const fix =
    "run `scripts/setup.sh test` as root, which installs qemu-user-static and " +
    "registers it with binfmt_misc";
  const status = await readOrNull(`${BINFMT}/status`);
  if (status === null) {
    return { ok: false, reason: `${BINFMT} is not mounted: ${fix}` };
  }
  if (status.trim() !== "enabled") {
    return { ok: false, reason: `binfmt_misc is disabled: ${fix}` };
  }
  const entry = `${BINFMT}/qemu-${arch}`;
  const text = await readOrNull(entry);
  if (text === null) {
    return { ok: false, reason: `${entry} does not exist: ${fix}` };
  }
  if (text.split("\n")[0] !== "enabled") {
    return { ok: false, reason: `${entry} is disabled: ${fix}` };
  }
  const flags = /^flags: *(\S*)$/m.exec(text)?.[1] ?? "";
  if (!flags.includes("F")) {
    return {
      ok: false,
      reason:
        `${entry} lacks the F flag, so its interpreter cannot be found inside ` +
        `flatpak's sandbox: re-register it with fix_binary (Debian's qemu-user-static does)`,
    };
  }
  return { ok: true };
}

/** {@link archSupport} for aarch64: the check tests use to fail with a clear message. */
export function aarch64Support(): Promise<Support> {
  return archSupport("aarch64");
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function debInstalled(pkg: string): Promise<boolean> {
  const out = await new Deno.Command("dpkg-query", {
    args: ["-W", "-f=${Status}", pkg],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).includes("install ok installed");
}

/**
 * A statically linked busybox for `arch`. The host's own comes from the installed busybox-static
 * (a plain `busybox` package would give a dynamic binary the runtime has no libc for). Other
 * arches are fetched on demand with `apt-get download busybox-static:<debian arch>`, which needs
 * that foreign architecture added to dpkg (scripts/setup.sh test does it), and cached under
 * `cacheDir` so later runs neither download nor extract again.
 */
export async function staticBusybox(
  arch: FixtureArch,
  cacheDir: string,
): Promise<string> {
  const debArch = DEBIAN_ARCH[arch];
  if (arch === hostArch() && await debInstalled("busybox-static")) {
    return "/bin/busybox";
  }
  const target = join(cacheDir, "busybox", `busybox-${debArch}`);
  if (await exists(target)) return target;
  await Deno.mkdir(dirname(target), { recursive: true });
  const tmp = await Deno.makeTempDir({
    dir: dirname(target),
    prefix: ".download-",
  });
  try {
    // apt downloads as the _apt user; it needs to write here, or it warns and falls back to root.
    await Deno.chmod(tmp, 0o777);
    try {
      await exec("apt-get", ["download", `busybox-static:${debArch}`], {
        cwd: tmp,
      });
    } catch (e) {
      throw new Error(
        `Cannot download busybox-static:${debArch} (does dpkg know the ${debArch} ` +
          `architecture? scripts/setup.sh test adds it): ${
            (e as Error).message
          }`,
      );
    }
    const deb = [...Deno.readDirSync(tmp)].find((f) => f.name.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download left no .deb in ${tmp}`);
    await exec("dpkg-deb", ["-x", join(tmp, deb.name), join(tmp, "root")]);
    // rename(2) is atomic: a concurrent test process sees no binary or a whole one.
    await Deno.rename(join(tmp, "root", "bin", "busybox"), target);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  return target;
}
