/**
 * @module Build hooks, as flat-manager's `hooks` repository setting (specs/flat-manager-api.md
 * §6.2, §6.3, §9): per repository, a publish hook (an argv run in the build repo before the
 * import) and named check hooks (an argv run after a commit; the build stays Validating until
 * every check has finished). Hooks run programs on the server, so they come from a file the
 * operator controls (`FLATYARD_HOOKS_FILE`), never from the API.
 */
import { z } from "zod";
import { CommandError, run } from "../ostree/cli.ts";

const Argv = z.array(z.string().min(1)).min(1, "must name a program");

/** One check hook (§9 `hooks.checks.<name>`). */
export const CheckHookSchema = z.object({
  command: Argv,
  reviewable: z.boolean().default(false),
});

/** One repository's hooks; unknown keys are refused, as flat-manager's config does (§9). */
export const RepoHooksSchema = z.object({
  publish: Argv.nullable().default(null),
  checks: z.record(
    z.string().regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
      "check names are letters, digits, '.', '_' and '-'",
    ),
    CheckHookSchema,
  ).default({}),
}).strict();

/** The hooks file: `{"<repo name>": RepoHooks}`. */
export const HooksFileSchema = z.record(z.string().min(1), RepoHooksSchema);

export type CheckHook = z.infer<typeof CheckHookSchema>;
export type RepoHooks = z.infer<typeof RepoHooksSchema>;
export type HooksConfig = z.infer<typeof HooksFileSchema>;

export const noHooks: RepoHooks = { publish: null, checks: {} };

/** A repository's hooks (none when it has no entry). */
export function hooksFor(config: HooksConfig, repo: string): RepoHooks {
  return config[repo] ?? noHooks;
}

/** Parses the text of a hooks file; the messages name the bad field's path. */
export function parseHooksFile(
  text: string,
): { ok: true; hooks: HooksConfig } | { ok: false; problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [`not JSON: ${(e as Error).message}`] };
  }
  const r = HooksFileSchema.safeParse(json);
  if (!r.success) {
    return {
      ok: false,
      problems: r.error.issues.map((i) =>
        `${i.path.join(".") || "(top level)"}: ${i.message}`
      ),
    };
  }
  return { ok: true, hooks: r.data };
}

/** How a hook ended: its exit code and the tail of its stderr. */
export interface HookOutcome {
  code: number;
  stderr: string;
}

/**
 * Runs a hook's argv with no shell and stdin closed, in `cwd`, its output lines going to `log`.
 * The server's environment (secrets included) is not passed on: the hook gets PATH, HOME, LANG
 * and `env`. Throws when the program cannot be started; a non-zero exit is an outcome.
 */
export async function runHook(
  argv: string[],
  opts: {
    cwd: string;
    env: Record<string, string>;
    signal?: AbortSignal;
    log: (line: string) => Promise<void> | void;
  },
): Promise<HookOutcome> {
  const [program, ...args] = argv as [string, ...string[]];
  const inherited: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "LANG"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) inherited[k] = v;
  }
  try {
    await run(program, args, {
      cwd: opts.cwd,
      env: { ...inherited, ...opts.env },
      clearEnv: true,
      log: opts.log,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { code: 0, stderr: "" };
  } catch (e) {
    if (e instanceof CommandError) {
      return { code: e.code, stderr: e.stderr.slice(-4000) };
    }
    throw e;
  }
}

/**
 * Runs the repository's publish hook, if it has one (§6.3 step 1, §6.5 step 3), in `cwd` (the
 * build repo, or republish's scratch repo); a non-zero exit throws, failing the job before the
 * main repository is touched.
 */
export async function runPublishHook(
  hooks: RepoHooks,
  opts: {
    cwd: string;
    buildId: number | null;
    signal?: AbortSignal;
    log: (line: string) => Promise<void> | void;
  },
): Promise<void> {
  if (!hooks.publish) return;
  await opts.log(`Running publish hook ${JSON.stringify(hooks.publish)}`);
  let outcome: HookOutcome;
  try {
    outcome = await runHook(hooks.publish, {
      cwd: opts.cwd,
      env: {
        FLAT_MANAGER_IS_REPUBLISH: opts.buildId === null ? "true" : "false",
        ...(opts.buildId === null
          ? {}
          : { FLAT_MANAGER_BUILD_ID: String(opts.buildId) }),
      },
      log: opts.log,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    throw new Error(
      `Publish hook ${JSON.stringify(hooks.publish)} could not start: ${
        (e as Error).message
      }`,
    );
  }
  if (outcome.code !== 0) {
    throw new Error(
      `Publish hook ${
        JSON.stringify(hooks.publish)
      } exited unsuccessfully: ${outcome.code}, stderr: ${outcome.stderr}`,
    );
  }
}
