/**
 * @module The `flatpak` client as the end-to-end tests drive it, in an isolated installation
 * (`isolatedFlatpakEnv`): add a remote from a served `.flatpakrepo` and install from it.
 */
import { run } from "../../lib/ostree/cli.ts";

/** `flatpak --user remote-add --from <name> <flatpakrepoUrl>`. */
export async function addRemote(
  env: Record<string, string>,
  name: string,
  flatpakrepoUrl: string,
): Promise<void> {
  await run(
    "flatpak",
    ["--user", "remote-add", "--from", name, flatpakrepoUrl],
    {
      env,
    },
  );
}

/** `flatpak --user install -y --noninteractive [extra…] <remote> <ref>`. */
export async function installFrom(
  env: Record<string, string>,
  remote: string,
  ref: string,
  extra: string[] = [],
): Promise<void> {
  await run("flatpak", [
    "--user",
    "install",
    "-y",
    "--noninteractive",
    ...extra,
    remote,
    ref,
  ], { env });
}
