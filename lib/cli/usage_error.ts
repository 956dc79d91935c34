/** A command line the command cannot run: its message is printed and the exit status is 2. */
export class UsageError extends Error {}
