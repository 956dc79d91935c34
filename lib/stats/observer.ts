/**
 * @module The seam between repository file serving and download statistics: the file routes
 * tell the observer about every file they served in full or in part (200 or 206 to a GET), and
 * the observer decides what counts as a download (specs/ecosystem.md §3.3).
 */

/** The request headers an observer reads, by lower-case name (a `Headers` is one). */
export interface HeaderReader {
  get(name: string): string | null;
}

/** Hears served repository files; must not block or throw (it runs on the request path). */
export interface DownloadObserver {
  /** `repo` is the repository name, `path` the repository-relative file path. */
  observe(repo: string, path: string, headers: HeaderReader): void;
}
