/** Every matching rule of specs/flat-manager-api.md §2.4 and §2.6, as tables. */
import assert from "node:assert/strict";
import type { Claims } from "./claims.ts";
import {
  checkBuildAccess,
  checkSubAndScope,
  hasTokenPrefix,
  hasTokenRepo,
  idMatchesPrefix,
  subHasPrefix,
  subsetClaims,
} from "./matching.ts";

function claims(over: Partial<Claims> = {}): Claims {
  return {
    sub: "build",
    exp: 2_000_000_000,
    name: "default",
    jti: "j1",
    scope: ["build", "upload", "download", "publish", "jobs"],
    prefixes: [""],
    apps: [],
    repos: [""],
    branches: ["stable"],
    token_type: "app",
    ...over,
  };
}

Deno.test("sub_has_prefix(required, claimed)", async (t) => {
  const table: [string, string, boolean][] = [
    ["build", "build", true],
    ["build/12", "build", true],
    ["build/12", "build/12", true],
    ["build/12", "build/1", false], // no "/" boundary
    ["build/1", "build/12", false],
    ["build", "build/12", false],
    ["buildx", "build", false],
    ["", "", true],
    ["build", "", false], // "" only matches ""
    ["build/12", "", false],
    ["", "build", false],
  ];
  for (const [required, claimed, want] of table) {
    await t.step(
      `required ${JSON.stringify(required)} claimed ${
        JSON.stringify(claimed)
      } → ${want}`,
      () => {
        assert.equal(subHasPrefix(required, claimed), want);
      },
    );
  }
});

Deno.test("required sub per endpoint kind accepts exactly the documented claims", async (t) => {
  const table: [string, string, boolean][] = [
    // "build": create/list builds, GET /job, review, republish
    ["build", "build", true],
    ["build", "build/5", false],
    ["build", "", false],
    // "build/<id>": per-build endpoints
    ["build/5", "build", true],
    ["build/5", "build/5", true],
    ["build/5", "build/6", false],
    ["build/5", "", false],
    // "": tokens/*
    ["", "", true],
    ["", "build", false],
  ];
  for (const [required, claimed, want] of table) {
    await t.step(
      `${JSON.stringify(required)} with sub ${JSON.stringify(claimed)}`,
      () => {
        const denial = checkSubAndScope(claims({ sub: claimed }), required, [
          "build",
        ]);
        assert.equal(denial === undefined, want);
        if (!want) {
          assert.equal(denial, `Not matching sub '${required}' in token`);
        }
      },
    );
  }
});

Deno.test("scope: the required scope must be present; any one of two accepted scopes", async (t) => {
  const table: [string[], string[], string | undefined][] = [
    [["build"], ["build"], undefined],
    [["upload"], ["build"], "Not matching scope 'build' in token"],
    [[], ["jobs"], "Not matching scope 'jobs' in token"],
    [["upload"], ["build", "upload"], undefined], // get build: build or upload
    [["build"], ["build", "upload"], undefined],
    [["download"], ["build", "download"], undefined], // list builds: build or download
    [
      ["publish"],
      ["build", "download"],
      "Not matching scope 'download' in token",
    ],
    [["Build"], ["build"], "Not matching scope 'build' in token"], // case-sensitive
    [["unknown-scope"], ["build"], "Not matching scope 'build' in token"],
    [["tokenmanagement"], ["tokenmanagement"], undefined],
  ];
  for (const [have, accepted, want] of table) {
    await t.step(
      `scope ${JSON.stringify(have)} for ${accepted.join(" or ")}`,
      () => {
        assert.equal(
          checkSubAndScope(claims({ scope: have }), "build", accepted),
          want,
        );
      },
    );
  }
});

Deno.test("prefixes and apps (has_token_prefix)", async (t) => {
  const table: [string[], string[], string, boolean][] = [
    [[], [], "org.anything.App", true], // empty prefixes allow everything
    [[""], [], "org.anything.App", true],
    [["org.foo"], [], "org.foo", true], // exact
    [["org.foo"], [], "org.foo.Bar", true], // dot boundary
    [["org.foo"], [], "org.foo.Bar.Baz", true],
    [["org.foo"], [], "org.foobar", false], // no dot boundary
    [["org.foo"], [], "org.fo", false],
    [["org.foo"], [], "org", false],
    [["org.foo", "com.x"], [], "com.x.Y", true],
    [["org.foo"], ["com.exact.App"], "com.exact.App", true], // apps add exact ids
    [["org.foo"], ["com.exact.App"], "com.exact.App.Plugin", false], // apps are not prefixes
    [["org.foo"], ["com.exact.App"], "com.exact", false],
    [[], ["com.exact.App"], "org.other", true], // apps only consulted with prefixes
  ];
  for (const [prefixes, apps, id, want] of table) {
    await t.step(
      `prefixes ${JSON.stringify(prefixes)} apps ${
        JSON.stringify(apps)
      } id ${id}`,
      () => {
        assert.equal(hasTokenPrefix({ prefixes, apps }, id), want);
      },
    );
  }
  assert.equal(idMatchesPrefix("", "x"), true);
});

Deno.test("repos (has_token_repo)", async (t) => {
  const table: [string[], string, boolean][] = [
    [[""], "stable", true],
    [["stable"], "stable", true],
    [["stable"], "beta", false],
    [["stable", "beta"], "beta", true],
    [[], "stable", false], // empty list allows nothing
    [["Stable"], "stable", false],
    [["stab"], "stable", false], // not a prefix match
  ];
  for (const [repos, repo, want] of table) {
    await t.step(`repos ${JSON.stringify(repos)} repo ${repo}`, () => {
      assert.equal(hasTokenRepo({ repos }, repo), want);
    });
  }
});

Deno.test("per-build check: repo first, then the app prefix", async (t) => {
  const table: [
    Partial<Claims>,
    { repo: string; appId: string | null },
    string | undefined,
  ][] = [
    [{}, { repo: "stable", appId: "org.x.App" }, undefined],
    [
      { repos: ["beta"] },
      { repo: "stable", appId: "org.x.App" },
      "Not matching repo in token",
    ],
    [
      { repos: ["beta"], prefixes: ["org.y"] },
      { repo: "stable", appId: "org.x.App" },
      "Not matching repo in token",
    ],
    [
      { prefixes: ["org.y"] },
      { repo: "stable", appId: "org.x.App" },
      "Build's app ID not matching prefix in token",
    ],
    [{ prefixes: ["org.y"] }, { repo: "stable", appId: null }, undefined], // no app id: no prefix check
    [
      { prefixes: ["org.x"] },
      { repo: "stable", appId: "org.x.App" },
      undefined,
    ],
  ];
  for (const [over, build, want] of table) {
    await t.step(`${JSON.stringify(over)} on ${JSON.stringify(build)}`, () => {
      assert.equal(checkBuildAccess(claims(over), build), want);
    });
  }
});

Deno.test("token_subset grants only within the parent (§2.6)", async (t) => {
  const now = 1_000_000;
  const parent = claims({
    exp: now + 3600,
    sub: "build",
    scope: ["build", "upload", "publish"],
    prefixes: ["org.foo"],
    apps: ["com.app.One"],
    repos: ["stable", "beta"],
    name: "ci",
  });
  const base = {
    sub: "build/7",
    scope: ["upload"],
    duration: 600,
    name: "child",
  };
  const table: [string, Record<string, unknown>, boolean][] = [
    ["narrower sub, scope, duration", {}, true],
    ["same sub", { sub: "build" }, true],
    ["wider sub", { sub: "" }, false],
    ["unrelated sub", { sub: "buildx" }, false],
    ["duration up to the parent's exp", { duration: 3600 }, true],
    ["duration past the parent's exp", { duration: 3601 }, false],
    ["negative duration counts as 0", { duration: -5 }, true],
    ["scope not in parent", { scope: ["upload", "download"] }, false],
    ["no scope at all", { scope: [] }, true],
    ["prefix below parent's", { prefixes: ["org.foo.Bar"] }, true],
    ["prefix equal to parent's", { prefixes: ["org.foo"] }, true],
    ["prefix wider than parent's", { prefixes: ["org"] }, false],
    ["prefix beside parent's", { prefixes: ["org.foobar"] }, false],
    ["all prefixes", { prefixes: [""] }, false],
    ["app in parent's apps", { apps: ["com.app.One"] }, true],
    ["app not in parent's apps", { apps: ["com.app.Two"] }, false],
    ["repo in parent's", { repos: ["beta"] }, true],
    ["repo not in parent's", { repos: ["other"] }, false],
    ["all repos", { repos: [""] }, false],
  ];
  for (const [what, over, want] of table) {
    await t.step(`${what} → ${want ? "granted" : "refused"}`, () => {
      const got = subsetClaims(parent, { ...base, ...over } as never, now);
      assert.equal(got !== undefined, want);
    });
  }
  await t.step(
    "the child's claims: chained name, parent's jti, inherited lists, exp",
    () => {
      const got = subsetClaims(parent, base, now)!;
      assert.deepEqual(got, {
        sub: "build/7",
        exp: now + 600,
        name: "ci/child",
        jti: "j1",
        scope: ["upload"],
        prefixes: ["org.foo"],
        apps: ["com.app.One"],
        repos: ["stable", "beta"],
        branches: ["stable"],
        token_type: "app",
      });
    },
  );
  await t.step("a parent without name chains from the empty string", () => {
    assert.equal(
      subsetClaims({ ...parent, name: null }, base, now)?.name,
      "/child",
    );
  });
  await t.step(
    "a parent with empty prefixes cannot grant explicit prefixes but can inherit",
    () => {
      const open = { ...parent, prefixes: [] };
      assert.equal(
        subsetClaims(open, { ...base, prefixes: ["org.foo"] }, now),
        undefined,
      );
      assert.deepEqual(subsetClaims(open, base, now)?.prefixes, []);
    },
  );
  await t.step("a parent with repos [''] grants any repo", () => {
    assert.deepEqual(
      subsetClaims({ ...parent, repos: [""] }, { ...base, repos: ["x"] }, now)
        ?.repos,
      ["x"],
    );
  });
});
